"""recycled_empty: memory comes back only when nothing refers to the array, and never to two holders."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

from perception.ops import _recycle as R


@pytest.fixture(autouse=True)
def empty_pool():
    gc.collect()  # arrays of earlier tests still held by reference cycles come back first
    R.release_recycled()
    yield
    gc.collect()
    R.release_recycled()


def address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


class TestRecycledEmpty:
    def test_shape_dtype_layout(self):
        a = R.recycled_empty((3, 8, 16), np.float32)
        assert a.shape == (3, 8, 16) and a.dtype == np.float32
        assert a.flags.c_contiguous and a.flags.writeable
        assert address(a) % 16 == 0  # streaming stores need 16-byte alignment
        a[...] = 1.5
        assert float(a.sum()) == 1.5 * a.size

    def test_dropped_array_is_reused(self):
        a = R.recycled_empty((4, 1024), np.float32)
        first = address(a)
        del a
        assert R.recycled_bytes() == 4 * 1024 * 4
        b = R.recycled_empty((4, 1024), np.float32)
        assert address(b) == first and R.recycled_bytes() == 0

    def test_same_size_other_shape_and_dtype_reuses(self):
        a = R.recycled_empty((2, 512), np.float32)
        first = address(a)
        del a
        b = R.recycled_empty((4, 512), np.float16)
        assert address(b) == first and b.dtype == np.float16

    @pytest.mark.parametrize("keep", [
        lambda a: a[1:],
        lambda a: a.T,
        lambda a: a.reshape(-1)[::2],
        lambda a: memoryview(a),
        lambda a: np.frombuffer(a, np.uint8),
    ], ids=["slice", "transpose", "strided view", "memoryview", "frombuffer"])
    def test_not_reused_while_a_view_lives(self, keep):
        a = R.recycled_empty((4, 256), np.float32)
        a[...] = 7
        view = keep(a)
        before = np.array(view)  # a copy of what the view shows
        del a
        gc.collect()
        assert R.recycled_bytes() == 0
        b = R.recycled_empty((4, 256), np.float32)
        b[...] = -1  # writes to fresh memory, not under the live view
        np.testing.assert_array_equal(np.asarray(view), before)
        del b
        del view
        gc.collect()
        assert R.recycled_bytes() == 2 * 4 * 256 * 4  # both back now: b's and the one under the view

    def test_not_reused_while_a_torch_tensor_lives(self):
        torch = pytest.importorskip("torch")
        a = R.recycled_empty((64,), np.float32)
        a[...] = 3
        t = torch.from_numpy(a)[8:]
        del a
        b = R.recycled_empty((64,), np.float32)
        b[...] = 0
        assert bool((t == 3).all())
        del t
        assert R.recycled_bytes() == 64 * 4

    def test_pool_keeps_at_most_max_per_size(self):
        held = [R.recycled_empty((1000,), np.uint8) for _ in range(R.MAX_PER_SIZE + 3)]
        del held
        assert R.recycled_bytes() == R.MAX_PER_SIZE * R.size_class(1000)

    def test_pool_keeps_at_most_max_bytes_in_all(self, monkeypatch):
        monkeypatch.setattr(R, "MAX_BYTES", 3500)
        a, b, c = (R.recycled_empty((n,), np.uint8) for n in (1000, 2000, 3000))  # classes 1024, 2048, 3072
        del a
        del b
        del c
        assert R.recycled_bytes() == 1024 + 2048  # the third would pass 3,500 bytes

    def test_release(self):
        a = R.recycled_empty((1000,), np.uint8)
        del a
        assert R.recycled_bytes() == R.size_class(1000)
        R.release_recycled()
        assert R.recycled_bytes() == 0

    def test_threads_never_share_a_live_buffer(self):
        # Each thread writes its own id, holds the array a moment, checks nobody overwrote it.
        errors: list[str] = []

        def worker(k: int) -> None:
            for _ in range(300):
                a = R.recycled_empty((256,), np.int64)
                a[...] = k
                b = R.recycled_empty((256,), np.int64)
                b[...] = -k
                if not (a == k).all() or not (b == -k).all():
                    errors.append(f"thread {k}: a live array was handed out again")
                del a, b

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(1, 5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert R.recycled_bytes() <= R.MAX_PER_SIZE * 256 * 8


class TestSizeClass:
    def test_rounds_up_by_at_most_a_quarter(self):
        for n in [0, 1, 7, 100, 1000, 4096, 5000, 51_200_000, 64 << 20]:
            c = R.size_class(n)
            assert n <= c <= max(n * 1.25, 4)
        assert R.size_class(64 << 20) == 64 << 20  # the scatter's 64 MiB wastes nothing
        assert R.size_class(900) == R.size_class(1000) == 1024

    def test_a_smaller_output_reuses_a_larger_one_of_its_class(self):
        a = R.recycled_empty((1000,), np.uint8)
        first = address(a)
        del a
        b = R.recycled_empty((900,), np.uint8)
        assert address(b) == first and b.shape == (900,)


def _ops_with_recycled_outputs():
    """(name, call, the recycled array of a result): every op whose CPU output comes from the pool."""
    from perception.config import GridConfig
    from perception.ops import pillarize, scatter_pillars
    from tests.perception.ops.conftest import random_cloud

    grid = GridConfig(x_min=-4.0, x_max=4.0, y_min=-3.2, y_max=3.2, z_min=-2.0, z_max=2.0, cell_m=0.4)
    rng = np.random.default_rng(21)
    pts = random_cloud(rng, grid, 1500)
    pil = pillarize(pts, grid, max_points_per_pillar=8, max_pillars=120)
    pf = pil.features.max(axis=1)
    return [
        ("pillarize", lambda: pillarize(pts, grid, max_points_per_pillar=8, max_pillars=120).features),
        ("pillarize padded", lambda: pillarize(pts, grid, max_points_per_pillar=8, max_pillars=400, pad=True).features),
        ("scatter", lambda: scatter_pillars(pf, pil.coords, grid)),
    ]


@pytest.mark.parametrize("case", range(3), ids=["pillarize", "pillarize padded", "scatter"])
def test_op_outputs_show_nothing_of_the_memory_they_reuse(case):
    # Each op writes every element of its output: NaN left in the memory of a dropped result must
    # not show in the next one, which takes that memory.
    name, call = _ops_with_recycled_outputs()[case]
    first = call()
    ref = np.array(first, copy=True)
    assert not np.isnan(ref.astype(np.float32)).any(), name
    stale = address(first)
    first.view(np.uint8)[...] = 0xFF  # NaN in float32 and float16
    del first
    gc.collect()
    again = call()
    assert address(again) == stale, f"{name}: the dropped result's memory was not reused"
    np.testing.assert_array_equal(again, ref)
