"""PCD v0.7 (Point Cloud Library) files: ``DATA ascii``, ``binary`` and ``binary_compressed``.

Any field types (``I`` signed, ``U`` unsigned, ``F`` float) and sizes (1, 2, 4, 8 bytes) and any
``COUNT`` per field are read into one numpy structured array, ``(N,)`` with one named field per
PCD field (a field with COUNT c > 1 becomes a ``(c,)`` sub-array). PCL's padding fields named
``_`` are kept, renamed ``_``, ``_1``, ``_2``... since a structured dtype needs unique names.

Layouts, as PCL writes them:

- ``ascii``: one point per line, ``sum(COUNT)`` whitespace-separated values.
- ``binary``: the points packed one after the other (array of structs), little-endian.
- ``binary_compressed``: two little-endian uint32 (compressed size, uncompressed size), then an
  LZF stream; uncompressed, the data is field after field (struct of arrays): all N values of the
  first field, then all of the second, and so on.

Errors name the file: ``InputFileError`` when it is missing, ``FormatError`` when the header is
invalid or the data is shorter than the header says.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception.errors import FormatError, InputFileError

__all__ = ["PcdFile", "PcdHeader", "lzf_decompress", "parse_pcd", "read_pcd"]

_TYPES = {("I", 1): "i1", ("I", 2): "<i2", ("I", 4): "<i4", ("I", 8): "<i8",
          ("U", 1): "u1", ("U", 2): "<u2", ("U", 4): "<u4", ("U", 8): "<u8",
          ("F", 4): "<f4", ("F", 8): "<f8"}
_HEADER_KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA")
# A header is a few hundred bytes; a file whose first 64 KiB hold no DATA line is not a PCD file.
_MAX_HEADER = 1 << 16


@dataclass(frozen=True)
class PcdHeader:
    """The header of a PCD file. ``viewpoint``: (tx ty tz qw qx qy qz), the acquisition pose."""

    version: str
    fields: tuple[str, ...]
    sizes: tuple[int, ...]
    types: tuple[str, ...]
    counts: tuple[int, ...]
    width: int
    height: int
    viewpoint: tuple[float, ...]
    points: int
    data: str

    @property
    def dtype(self) -> np.dtype:
        """The structured dtype of one point, packed (no alignment padding), as the file stores it."""
        return np.dtype([(name, _TYPES[(t, s)], (c,)) if c > 1 else (name, _TYPES[(t, s)])
                         for name, s, t, c in zip(self.fields, self.sizes, self.types, self.counts)])


@dataclass(frozen=True, eq=False)
class PcdFile:
    """A decoded PCD file: ``data`` is an ``(N,)`` structured array with one field per PCD field."""

    header: PcdHeader
    data: np.ndarray
    path: str = "<bytes>"

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def fields(self) -> tuple[str, ...]:
        return self.header.fields

    def field(self, name: str) -> np.ndarray:
        """One field's values: ``(N,)``, or ``(N, COUNT)`` for a multi-valued field."""
        if name not in self.data.dtype.names:
            raise KeyError(f"{self.path}: no field {name!r}; the file has {self.header.fields}")
        return self.data[name]

    def xyz(self) -> np.ndarray:
        """``(N, 3)`` float32 x y z (the fields must exist)."""
        return np.stack([self.field(k).astype(np.float32) for k in ("x", "y", "z")], axis=1)


def _unique_names(fields: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for f in fields:
        name, k = f, 0
        while name in out or (name != f and name in fields):
            k += 1
            name = f"_{k}" if f == "_" else f"{f}_{k}"
        out.append(name)
    return tuple(out)


def _parse_header(raw: bytes, where: str) -> tuple[PcdHeader, int]:
    """The header and the byte offset where the data starts."""
    values: dict[str, list[str]] = {}
    pos = 0
    while True:
        end = raw.find(b"\n", pos)
        if end < 0 or pos >= _MAX_HEADER:
            raise FormatError(f"{where}: not a PCD file: no 'DATA' line in the header")
        line = raw[pos:end].decode("ascii", errors="replace").strip()
        pos = end + 1
        if not line or line.startswith("#"):
            continue
        key, *rest = line.split()
        key = key.upper()
        if key not in _HEADER_KEYS:
            raise FormatError(f"{where}: unknown PCD header line {line[:60]!r}; expected one of {_HEADER_KEYS}")
        values[key] = rest
        if key == "DATA":
            break

    def need(key: str) -> list[str]:
        if key not in values:
            raise FormatError(f"{where}: PCD header has no {key} line")
        return values[key]

    def ints(key: str, default: list[str] | None = None) -> list[int]:
        vals = values.get(key, default) if default is not None else need(key)
        try:
            return [int(v) for v in vals]
        except ValueError:
            raise FormatError(f"{where}: PCD header {key}: expected integers, got {' '.join(vals)!r}") from None

    fields = need("FIELDS")
    n = len(fields)
    sizes = ints("SIZE")
    types = [t.upper() for t in need("TYPE")]
    counts = ints("COUNT", ["1"] * n)  # COUNT is optional in the v0.7 spec: 1 each when absent
    for key, vals in (("SIZE", sizes), ("TYPE", types), ("COUNT", counts)):
        if len(vals) != n:
            raise FormatError(f"{where}: PCD header {key}: expected {n} entries (one per field), got {len(vals)}")
    for name, t, s, c in zip(fields, types, sizes, counts):
        if (t, s) not in _TYPES:
            raise FormatError(f"{where}: field {name!r}: unsupported TYPE {t} with SIZE {s} "
                              f"(I/U take 1, 2, 4, 8 bytes, F takes 4 or 8)")
        if c < 1:
            raise FormatError(f"{where}: field {name!r}: COUNT must be >= 1, got {c}")
    (width,) = ints("WIDTH")
    (height,) = ints("HEIGHT", ["1"])
    points = ints("POINTS", [str(width * height)])[0]
    if points != width * height:
        raise FormatError(f"{where}: PCD header POINTS {points} != WIDTH {width} x HEIGHT {height}")
    try:
        viewpoint = tuple(float(v) for v in values.get("VIEWPOINT", ["0", "0", "0", "1", "0", "0", "0"]))
    except ValueError:
        raise FormatError(f"{where}: PCD header VIEWPOINT: expected 7 numbers") from None
    data = need("DATA")
    if len(data) != 1 or data[0].lower() not in ("ascii", "binary", "binary_compressed"):
        raise FormatError(f"{where}: PCD header DATA: expected ascii, binary or binary_compressed, got {' '.join(data)!r}")
    header = PcdHeader(
        version=" ".join(values.get("VERSION", ["0.7"])), fields=_unique_names(fields), sizes=tuple(sizes),
        types=tuple(types), counts=tuple(counts), width=width, height=height, viewpoint=viewpoint,
        points=points, data=data[0].lower(),
    )
    return header, pos


def lzf_decompress(src: bytes, out_size: int, where: str = "<bytes>") -> bytes:
    """Decompress an LZF stream (liblzf's format, as PCL writes) to exactly ``out_size`` bytes.

    Control byte c < 32: a literal run of c + 1 bytes follows. Otherwise a back reference: length
    c >> 5 (7 = extended by the next byte) + 2, distance ((c & 31) << 8 | next byte) + 1 back
    from the output end; it may overlap the bytes it writes (a repeated pattern).
    """
    src_arr = np.frombuffer(src, dtype=np.uint8)
    out = np.empty(out_size, dtype=np.uint8)
    n = _lzf_kernel()(src_arr, out)
    if n < 0:
        raise FormatError(f"{where}: corrupt LZF data in binary_compressed PCD (error {n} "
                          f"{ {-1: 'output overrun', -2: 'input truncated', -3: 'bad back reference'}.get(n, '')})")
    if n != out_size:
        raise FormatError(f"{where}: binary_compressed PCD decompressed to {n} bytes, header says {out_size}")
    return out.tobytes()


def _lzf_decode_py(src: np.ndarray, out: np.ndarray) -> int:
    # Byte-by-byte loop: compiled by numba (_lzf_kernel); returns the bytes written or a negative error.
    ip, op = 0, 0
    n_in, n_out = src.shape[0], out.shape[0]
    while ip < n_in:
        ctrl = int(src[ip])
        ip += 1
        if ctrl < 32:  # literal run of ctrl + 1 bytes
            length = ctrl + 1
            if op + length > n_out:
                return -1
            if ip + length > n_in:
                return -2
            for k in range(length):
                out[op + k] = src[ip + k]
            op += length
            ip += length
        else:  # back reference
            length = ctrl >> 5
            ref = op - ((ctrl & 0x1F) << 8) - 1
            if length == 7:
                if ip >= n_in:
                    return -2
                length += int(src[ip])
                ip += 1
            if ip >= n_in:
                return -2
            ref -= int(src[ip])
            ip += 1
            length += 2
            if op + length > n_out:
                return -1
            if ref < 0:
                return -3
            for k in range(length):  # forward copy on purpose: an overlapping reference repeats a pattern
                out[op + k] = out[ref + k]
            op += length
    return op


_LZF_JIT = None


def _lzf_kernel():  # noqa: ANN202 - a numba dispatcher
    # numba is imported on first use only: most PCD files (nuScenes radar) are plain binary.
    global _LZF_JIT
    if _LZF_JIT is None:
        import numba

        _LZF_JIT = numba.njit(cache=True, nogil=True)(_lzf_decode_py)
    return _LZF_JIT


def parse_pcd(raw: bytes, where: str = "<bytes>") -> PcdFile:
    """Decode the bytes of a PCD file; ``where`` names it in errors."""
    header, start = _parse_header(raw, where)
    dtype = header.dtype
    n = header.points
    body = raw[start:]
    if header.data == "binary":
        need = n * dtype.itemsize
        if len(body) < need:
            raise FormatError(f"{where}: truncated PCD: {n} points x {dtype.itemsize} bytes = {need} bytes of "
                              f"binary data expected, found {len(body)}")
        data = np.frombuffer(body, dtype=dtype, count=n).copy()
    elif header.data == "binary_compressed":
        if len(body) < 8:
            raise FormatError(f"{where}: truncated binary_compressed PCD: no size words after DATA")
        csize, usize = struct.unpack("<II", body[:8])
        if len(body) < 8 + csize:
            raise FormatError(f"{where}: truncated binary_compressed PCD: {csize} compressed bytes expected, "
                              f"found {len(body) - 8}")
        if usize != n * dtype.itemsize:
            raise FormatError(f"{where}: binary_compressed PCD: uncompressed size {usize} != {n} points x "
                              f"{dtype.itemsize} bytes")
        flat = lzf_decompress(body[8:8 + csize], usize, where) if usize else b""
        data = np.empty(n, dtype=dtype)
        off = 0
        for name in dtype.names or ():
            fdt = dtype.fields[name][0]  # type: ignore[index]  # the field's dtype, sub-array shape included
            count = int(np.prod(fdt.shape))  # 1 for a scalar field (empty shape)
            data[name] = np.frombuffer(flat, dtype=fdt.base, count=n * count, offset=off).reshape((n,) + fdt.shape)
            off += n * fdt.itemsize
    else:
        data = _parse_ascii(body, header, where)
    return PcdFile(header=header, data=data, path=where)


def _parse_ascii(body: bytes, header: PcdHeader, where: str) -> np.ndarray:
    dtype = header.dtype
    n = header.points
    width = sum(header.counts)
    tokens = body.split()
    if len(tokens) < n * width:
        raise FormatError(f"{where}: truncated ascii PCD: {n} points x {width} values expected, found {len(tokens)} values")
    table = np.array(tokens[:n * width], dtype=bytes).reshape(n, width)
    data = np.empty(n, dtype=dtype)
    col = 0
    for name, count in zip(header.fields, header.counts):
        base = dtype.fields[name][0].base  # type: ignore[index]
        cells = table[:, col:col + count]
        try:
            try:  # numpy parses the byte strings straight into the field's type (uint64 stays exact)
                vals = cells.astype(np.float64).astype(base) if base.kind == "f" else cells.astype(base)
            except ValueError:
                if base.kind == "f":
                    raise
                vals = np.vectorize(_to_int, otypes=[object])(cells).astype(base)  # e.g. '3.0' in an integer field
        except (ValueError, OverflowError) as exc:
            raise FormatError(f"{where}: ascii PCD field {name!r}: {exc}") from None
        data[name] = vals if count > 1 else vals[:, 0]
        col += count
    return data


def _to_int(token: bytes) -> int:
    value = float(token)
    if not value.is_integer():
        raise ValueError(f"{token.decode(errors='replace')!r} is not an integer")
    return int(value)


def read_pcd(path: str | Path) -> PcdFile:
    """Read a PCD v0.7 file (ascii, binary or binary_compressed) into a ``PcdFile``."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise InputFileError(f"{p}: PCD file not found") from None
    except OSError as exc:
        raise InputFileError(f"{p}: cannot read PCD file: {exc.strerror or exc}") from None
    return parse_pcd(raw, str(p))
