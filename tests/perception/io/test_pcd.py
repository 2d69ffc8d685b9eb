"""PCD v0.7 reader: ascii, binary and binary_compressed files written here, and damaged ones."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from perception.errors import FormatError, InputFileError
from perception.io.pcd import lzf_decompress, parse_pcd, read_pcd

# Every PCD type/size, a multi-valued field and two padding fields named "_".
FIELDS = [("x", "F", 4, 1), ("y", "F", 4, 1), ("z", "F", 8, 1), ("ring", "U", 2, 1), ("flag", "I", 1, 1),
          ("hist", "F", 4, 3), ("_", "U", 1, 1), ("big", "U", 8, 1), ("neg", "I", 8, 1), ("_", "I", 4, 1)]
_NP = {("F", 4): "<f4", ("F", 8): "<f8", ("U", 1): "u1", ("U", 2): "<u2", ("U", 8): "<u8", ("I", 1): "i1",
       ("I", 4): "<i4", ("I", 8): "<i8"}
NAMES = ["x", "y", "z", "ring", "flag", "hist", "_", "big", "neg", "_1"]


def _header(n: int, data: str) -> bytes:
    lines = ["# .PCD v0.7 - Point Cloud Data file format", "VERSION 0.7",
             "FIELDS " + " ".join(f[0] for f in FIELDS), "SIZE " + " ".join(str(f[2]) for f in FIELDS),
             "TYPE " + " ".join(f[1] for f in FIELDS), "COUNT " + " ".join(str(f[3]) for f in FIELDS),
             f"WIDTH {n}", "HEIGHT 1", "VIEWPOINT 0 0 0 1 0 0 0", f"POINTS {n}", f"DATA {data}"]
    return ("\n".join(lines) + "\n").encode()


def _dtype() -> np.dtype:
    return np.dtype([(name, _NP[(t, s)], (c,)) if c > 1 else (name, _NP[(t, s)]) for name, (_, t, s, c) in zip(NAMES, FIELDS)])


def _points(n: int = 37) -> np.ndarray:
    rng = np.random.default_rng(3)
    a = np.zeros(n, dtype=_dtype())
    a["x"] = rng.normal(size=n).astype(np.float32)
    a["y"] = rng.normal(size=n).astype(np.float32)
    a["z"] = rng.normal(size=n)
    a["ring"] = rng.integers(0, 65535, n)
    a["flag"] = rng.integers(-128, 127, n)
    a["hist"] = rng.normal(size=(n, 3)).astype(np.float32)
    a["_"] = 7
    a["big"] = np.uint64(2**64 - 1) - rng.integers(0, 1000, n).astype(np.uint64)  # beyond float64's exact range
    a["neg"] = -rng.integers(0, 2**62, n)
    a["_1"] = -1
    return a


def _lzf_literals(data: bytes) -> bytes:
    """A valid LZF stream made of literal runs only (control byte n-1, then n <= 32 bytes)."""
    out = bytearray()
    for i in range(0, len(data), 32):
        chunk = data[i:i + 32]
        out.append(len(chunk) - 1)
        out += chunk
    return bytes(out)


def _assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype.names == want.dtype.names
    for name in want.dtype.names:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_ascii_all_types_and_counts(tmp_path: Path) -> None:
    pts = _points()
    rows = []
    for p in pts:
        vals = [repr(float(p["x"])), repr(float(p["y"])), repr(float(p["z"])), str(p["ring"]), str(p["flag"]),
                *(repr(float(h)) for h in p["hist"]), str(p["_"]), str(p["big"]), str(p["neg"]), str(p["_1"])]
        rows.append(" ".join(vals))
    path = tmp_path / "a.pcd"
    path.write_bytes(_header(len(pts), "ascii") + ("\n".join(rows) + "\n").encode())
    pcd = read_pcd(path)
    assert pcd.header.data == "ascii" and len(pcd) == len(pts)
    assert pcd.fields == tuple(NAMES)
    _assert_same(pcd.data, pts)
    assert pcd.field("hist").shape == (len(pts), 3)
    np.testing.assert_array_equal(pcd.xyz(), np.stack([pts["x"], pts["y"], pts["z"].astype(np.float32)], axis=1))


def test_binary(tmp_path: Path) -> None:
    pts = _points()
    path = tmp_path / "b.pcd"
    path.write_bytes(_header(len(pts), "binary") + pts.tobytes())
    pcd = read_pcd(path)
    assert pcd.header.dtype.itemsize == sum(s * c for _, _, s, c in FIELDS)  # packed, no alignment padding
    _assert_same(pcd.data, pts)


def test_binary_compressed_field_major_layout(tmp_path: Path) -> None:
    pts = _points()
    # uncompressed, binary_compressed stores field after field: all x, then all y, ...
    soa = b"".join(np.ascontiguousarray(pts[name]).tobytes() for name in pts.dtype.names)
    comp = _lzf_literals(soa)
    path = tmp_path / "c.pcd"
    path.write_bytes(_header(len(pts), "binary_compressed") + struct.pack("<II", len(comp), len(soa)) + comp)
    _assert_same(read_pcd(path).data, pts)


def test_binary_compressed_written_by_open3d(tmp_path: Path) -> None:
    o3d = pytest.importorskip("open3d")
    rng = np.random.default_rng(0)
    xyz = np.round(rng.normal(size=(5000, 3)), 2)  # rounded so that LZF finds repeats (back references)
    normals = rng.normal(size=(5000, 3))
    pc = o3d.geometry.PointCloud()
    pc.points = o3d.utility.Vector3dVector(xyz)
    pc.normals = o3d.utility.Vector3dVector(normals)
    path = tmp_path / "o3d.pcd"
    assert o3d.io.write_point_cloud(str(path), pc, write_ascii=False, compressed=True)
    pcd = read_pcd(path)
    assert pcd.header.data == "binary_compressed"
    np.testing.assert_array_equal(pcd.xyz(), xyz.astype(np.float32))
    got_n = np.stack([pcd.field(f"normal_{a}") for a in "xyz"], axis=1)
    np.testing.assert_array_equal(got_n, normals.astype(np.float32))


def test_lzf_back_references() -> None:
    # literal "abc", then a 6-byte reference 3 back (overlapping: repeats the pattern), then a
    # long reference (length code 7 + extension byte) 9 back
    stream = bytes([0x02]) + b"abc" + bytes([(4 << 5) | 0, 2]) + bytes([(7 << 5) | 0, 3, 8])
    assert lzf_decompress(stream, 9 + 12) == b"abcabcabc" + b"abcabcabcabc"
    with pytest.raises(FormatError, match="corrupt LZF"):
        lzf_decompress(bytes([0x02]) + b"ab", 3)  # literal run cut short
    with pytest.raises(FormatError, match="corrupt LZF"):
        lzf_decompress(bytes([(1 << 5) | 0, 5]), 3)  # reference before the start


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="nope.pcd"):
        read_pcd(tmp_path / "nope.pcd")


def test_truncated_binary_names_the_file(tmp_path: Path) -> None:
    pts = _points()
    path = tmp_path / "cut.pcd"
    path.write_bytes(_header(len(pts), "binary") + pts.tobytes()[:-5])
    with pytest.raises(FormatError, match=r"cut\.pcd: truncated PCD"):
        read_pcd(path)


def test_bad_headers() -> None:
    good = _header(1, "binary").decode()
    with pytest.raises(FormatError, match="no 'DATA' line"):
        parse_pcd(b"VERSION 0.7\nFIELDS x\n", "h.pcd")
    with pytest.raises(FormatError, match="SIZE: expected 10 entries"):
        parse_pcd(good.replace("SIZE 4 4 8", "SIZE 4 8").encode(), "h.pcd")
    with pytest.raises(FormatError, match="unsupported TYPE F with SIZE 2"):
        parse_pcd(good.replace("SIZE 4 4 8", "SIZE 2 4 8").encode(), "h.pcd")
    with pytest.raises(FormatError, match="POINTS 5 != WIDTH 1"):
        parse_pcd(good.replace("POINTS 1", "POINTS 5").encode(), "h.pcd")
    with pytest.raises(FormatError, match="DATA: expected ascii, binary or binary_compressed"):
        parse_pcd(good.replace("DATA binary", "DATA zip").encode(), "h.pcd")
