"""Packaging promises: the on-vehicle core does not need open3d; kernel sources ship as package data."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_core_imports_without_open3d():
    # Import the runtime core and every reader; open3d must not be pulled in (it is only for
    # desktop calibration tools, and is heavy and absent on vehicles).
    code = (
        "import sys\n"
        "import perception.types, perception.config, perception.io.base, perception.cli\n"
        "from perception.io.base import _load_readers; _load_readers()\n"
        "import calib.se3, calib.camera, calib.rig, calib.geodesy\n"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'open3d']\n"
        "assert not bad, bad\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr


def test_kernel_sources_are_package_data():
    setup = (REPO / "setup.py").read_text()
    assert '"cuda_kernels": ["*.cu", "*.cuh"]' in setup
    assert list((REPO / "cuda_kernels").glob("*.cu")), "no CUDA kernel sources"


def test_constraints_pin_every_installed_distribution():
    from importlib import metadata

    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, ver = line.split("==")
            pins[name.strip().lower().replace("_", "-")] = ver.strip()
    for dist in ("numpy", "numba", "torch", "rosbags", "opencv-python-headless", "open3d", "onnx", "onnxruntime", "pyarrow", "pymap3d", "pytest"):
        assert dist in pins, f"constraints.txt does not pin {dist}"
        installed = metadata.version(dist).split("+")[0]
        assert installed == pins[dist], f"{dist}: installed {installed}, constraints.txt pins {pins[dist]}"
