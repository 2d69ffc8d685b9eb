"""float_order_key: an integer whose order is the float32's order, the sort key of decode and NMS."""

from __future__ import annotations

import numpy as np
from numba import njit

from perception.ops._common import float_order_key


@njit(cache=False)
def keys_of(bits):
    out = np.empty(bits.shape[0], np.int64)
    for i in range(bits.shape[0]):
        out[i] = float_order_key(bits[i])
    return out


def test_order_is_the_floats_order():
    tiny = np.float32(1e-45)  # the smallest denormal
    values = np.array([-np.inf, -3.4e38, -1.0, -tiny, 0.0, tiny, 1.0, 3.4e38, np.inf], np.float32)
    keys = keys_of(values.view(np.int32))
    assert (np.diff(keys) > 0).all()
    rng = np.random.default_rng(0)
    rand = (rng.standard_normal(10000) * 10.0 ** rng.integers(-30, 30, 10000)).astype(np.float32)
    np.testing.assert_array_equal(np.argsort(keys_of(rand.view(np.int32)), kind="stable"), np.argsort(rand, kind="stable"))


def test_signed_zeros_share_a_key():
    # Equal values tie, and ties are broken by index in every op that sorts: -0.0 must not rank below +0.0.
    zeros = np.array([-0.0, 0.0], np.float32)
    assert zeros.view(np.int32)[0] != zeros.view(np.int32)[1]
    assert keys_of(zeros.view(np.int32)).tolist() == [0, 0]
