"""The run-time compilation helper, as far as a machine without a GPU can check it."""

from __future__ import annotations

import importlib.util

import pytest

from perception.ops import _cuda


@pytest.mark.parametrize("name", sorted(p.stem for p in _cuda.KERNEL_DIR.glob("*.cu")))
def test_source_pastes_the_header(name):
    text = _cuda.source(name)
    assert '#include "common.cuh"' not in text and "#pragma once" not in text
    assert "bev_finite" in text and 'extern "C" __global__' in text


def test_missing_cupy_is_a_clear_error():
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here")
    with pytest.raises(ImportError, match=r"bevfuse\[gpu\]"):
        _cuda._cupy()
