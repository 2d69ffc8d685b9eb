#!/usr/bin/env bash
# GPU check: the gpu-marked tests, the CUDA kernel benchmark, then the base config's latency
# comparison (torch fp32, torch fp16, CUDA-graph fp16, interleaved), on a machine with an NVIDIA GPU.
#
#   tools/gpu_check.sh                 # results under out/gpu_check/
#   OUT=/some/dir tools/gpu_check.sh   # results under $OUT
#
# Needs a CUDA build of torch and CuPy (pip install 'bevfuse[gpu]') in $PYTHON (default: the
# project's .venv, else python3). On a machine that reaches no package index (the lent GPU
# machines), run tools/device_wheels.sh here first and carry .whl/: what lies in .whl/ is
# installed into a scratch folder on PYTHONPATH before anything runs. Only the test files that hold
# `gpu` tests are collected, so the test-only extras (mcap, zenoh, ROS 2, ...) are not needed.
# Writes env.txt (GPU, versions), gpu_tests.log, bench_cuda.json, bench_cuda.log, bench_base.json,
# bench_base.log and bench_base_plots/.
# Bounded to 7 minutes: the tests get 200 s, the kernel benchmark 100 s (1 s of timed runs per row),
# the base comparison 120 s (a 3 s simulated nuScenes-scale log, 60 frames per backend).
# Exit status: 0 when both pass, else the first failure's status (124: a step ran out of time).
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
DEST=${OUT:-out/gpu_check}
mkdir -p "$DEST"

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the checkout, installed or not
if compgen -G ".whl/*.whl" >/dev/null; then
  SITE=${TMPDIR:-/tmp}/bevfuse-site
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
    || { echo "gpu_check: installing .whl/ failed" >&2; exit 2; }
  export PYTHONPATH="$SITE:$PYTHONPATH"
fi
mapfile -t GPU_TEST_FILES < <(grep -rl --include='test_*.py' 'mark.gpu' tests | sort)

{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' + working tree')"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "nvidia-smi: not found"
  "$PY" -c 'import torch, sys; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available()); sys.exit(0 if torch.cuda.is_available() else 1)' \
    || { echo "torch sees no CUDA GPU (a CPU build of torch?): nothing to check"; exit 2; }
  "$PY" -c 'import cupy; print("cupy", cupy.__version__)' || { echo "CuPy is missing: pip install 'bevfuse[gpu]'"; exit 2; }
} 2>&1 | tee "$DEST/env.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 2

status=0
timeout 200 "$PY" -m pytest -m gpu -q -rs -p no:cacheprovider "${GPU_TEST_FILES[@]}" 2>&1 | tee "$DEST/gpu_tests.log"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || status=$rc

timeout 100 "$PY" tools/bench_kernels.py --device cuda --budget 1 --json "$DEST/bench_cuda.json" 2>&1 | tee "$DEST/bench_cuda.log"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || [ "$status" -ne 0 ] || status=$rc

timeout 120 "$PY" -m perception bench --config base --device cuda --compare torch:fp32,torch:fp16,cudagraph:fp16 \
  --frames 60 --warmup 5 --sim-seconds 3 --no-progress --json "$DEST/bench_base.json" --plots "$DEST/bench_base_plots" \
  2>&1 | tee "$DEST/bench_base.log"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || [ "$status" -ne 0 ] || status=$rc

echo "gpu_check: exit $status; results in $DEST"
exit "$status"
