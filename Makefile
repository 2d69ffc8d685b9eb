# bevfuse: `make test` and `make demo` work from nothing on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := calib,viz,onnx,test
STAMP := $(VENV)/.installed-stamp

.PHONY: install test lint demo clean debs

# Debian libraries that pip wheels need at import time (open3d links libusb and libgomp).
debs:
	@missing=""; for lib in libusb-1.0.so.0 libgomp.so.1; do \
	  ldconfig -p | grep -q "$$lib" || missing="$$missing $$lib"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages for:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 libgomp1 >/dev/null; \
	  else echo "warning: missing$$missing; run: sudo apt-get install libusb-1.0-0 libgomp1" >&2; fi; \
	fi

$(STAMP): setup.py pyproject.toml constraints.txt Makefile
	@$(MAKE) --no-print-directory debs
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=23" "setuptools>=68" wheel
	$(PY) -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	# test-only: the nuScenes devkit, the reference our evaluation is checked against (see setup.py)
	$(PY) -m pip install -q --no-deps -c constraints.txt nuscenes-devkit
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	@$(MAKE) --no-print-directory debs
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check perception calib tools tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
