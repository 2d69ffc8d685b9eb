# bevfuse: `make test` and `make demo` work from nothing on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := calib,viz,onnx,node,ros2,test
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
