"""Shared fixtures: where the real recordings are, and the GPU marker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# before pytest imports any test module (and torch or numba through it): see perception/__init__.py
import perception  # noqa: F401, I001

REPO = Path(__file__).resolve().parents[1]


def _realdata_dir() -> Path:
    env = os.environ.get("BEVFUSE_REALDATA")
    return Path(env) if env else REPO.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The folder of real recordings (../shared/realdata or $BEVFUSE_REALDATA), read in place.

    Absent: the test skips with the reason, except under CI=true, where absence fails the run.
    """
    path = _realdata_dir()
    if not path.is_dir():
        msg = f"real recordings not found at {path} (set BEVFUSE_REALDATA)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine (the gpu checks run through tools/gpu_check.sh)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
