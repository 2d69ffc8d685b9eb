# bevfuse: `make test` and `make demo` work from nothing on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := calib,viz,onnx,node,ros2,test
STAMP := $(VENV)/.installed-stamp

.PHONY: install test lint demo clean debs diskcheck

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

# The virtual environment takes about 3.6 GB once installed, and pip needs room to unpack wheels
# on top of that. A full disk makes pip fail deep inside a wheel with "[Errno 28] No space left on
# device"; saying so first makes the cause plain. It is a warning, not a stop: the estimate is rough.
NEEDED_FREE_GB := 6
diskcheck:
	@free_kb=$$(df -Pk . | awk 'NR==2 {print $$4}'); \
	if [ -n "$$free_kb" ] && [ "$$free_kb" -lt $$(( $(NEEDED_FREE_GB) * 1024 * 1024 )) ]; then \
	  echo "warning: $$(( free_kb / 1024 )) MB free on the disk holding $(CURDIR); installing the" \
	       "environment needs about $(NEEDED_FREE_GB) GB (see 'make clean')" >&2; fi

# --no-cache-dir: a second copy of every wheel in ~/.cache/pip would double the disk the install needs.
$(STAMP): setup.py pyproject.toml constraints.txt Makefile
	@$(MAKE) --no-print-directory debs diskcheck
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --no-cache-dir --upgrade "pip>=23" "setuptools>=68" wheel
	$(PY) -m pip install -q --no-cache-dir -c constraints.txt -e ".[$(EXTRAS)]"
	# test-only: the nuScenes devkit, the reference our evaluation is checked against (see setup.py)
	$(PY) -m pip install -q --no-cache-dir --no-deps -c constraints.txt nuscenes-devkit
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	@$(MAKE) --no-print-directory debs
	$(PY) -m pytest -q

# The demo: a 20 s simulated drive (fixed seed; generated once, then reused) replayed on the CPU with
# the shipped checkpoint. Outputs in build/demo/replay (build/ is ignored by git). The log is written
# to a .partial folder first, so an interrupted run never leaves a log that looks complete.
DEMO_DIR := build/demo
DEMO_SEED := 7
DEMO_SECONDS := 20
DEMO_LOG := $(DEMO_DIR)/sim-seed$(DEMO_SEED)-$(DEMO_SECONDS)s
DEMO_MODEL ?=

demo: $(STAMP)
	@$(MAKE) --no-print-directory debs
	@mkdir -p $(DEMO_DIR)
	@if [ -f $(DEMO_LOG)/metadata.yaml ]; then echo "reusing the simulated log $(DEMO_LOG)"; else \
	  echo "simulating $(DEMO_SECONDS) s of driving (seed $(DEMO_SEED)) into $(DEMO_LOG) ..."; \
	  rm -rf $(DEMO_LOG).partial && \
	  $(PY) -m perception sim --out $(DEMO_LOG).partial --seconds $(DEMO_SECONDS) --seed $(DEMO_SEED) --image-size 640x360 && \
	  mv $(DEMO_LOG).partial $(DEMO_LOG); fi
	$(PY) -m perception replay $(DEMO_LOG) --device cpu --backend onnxruntime --out $(DEMO_DIR)/replay --force \
	  $(if $(DEMO_MODEL),--model $(DEMO_MODEL))
	@echo "report: $(DEMO_DIR)/replay/report.md; video: $(DEMO_DIR)/replay/bev.mp4; open $(DEMO_DIR)/replay/detections.mcap in Foxglove"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
