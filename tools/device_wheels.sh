#!/usr/bin/env bash
# Download, here, the wheels tools/gpu_check.sh needs on a GPU machine that reaches no package index.
#
#   tools/device_wheels.sh            # into .whl/ (ignored by git), for CPython 3.12 on Linux x86_64
#   PYVER=3.10 tools/device_wheels.sh # another Python there
#
# The lent GPU machines (docs/BENCHMARKS.md, "GPU") have torch, CuPy, numba, NumPy, OpenCV, ONNX
# Runtime, pytest and matplotlib, but not these: the core's rosbags (and its apsw, lz4,
# backports.zstd, ruamel.yaml) and pymap3d, which the simulator behind `bevfuse bench` imports.
# gpu_check.sh installs whatever lies in .whl/ before it starts (pip --no-index). Versions are the
# ones constraints.txt pins, so the device runs what CI tests.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
PYVER=${PYVER:-3.12}
PACKAGES=(rosbags apsw lz4 backports.zstd ruamel.yaml pymap3d)

reqs=()
for name in "${PACKAGES[@]}"; do
  pin=$(grep -i -E "^${name//./[.]}==" constraints.txt || true)
  [ -n "$pin" ] || { echo "device_wheels: $name is not pinned in constraints.txt" >&2; exit 1; }
  reqs+=("$pin")
done

mkdir -p .whl
platforms=()
for n in 2_17 2_24 2_27 2_28 2_31 2_34 2_35; do platforms+=(--platform "manylinux_${n}_x86_64"); done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  "${platforms[@]}" --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${reqs[@]}"
ls -l .whl
du -sh .whl
