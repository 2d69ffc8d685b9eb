"""Non-temporal ("streaming") stores for numba kernels that write large outputs once.

A plain store to a line that is not in cache first reads the line from memory (write-allocate), so
writing a 64 MiB output moves 128 MiB. A non-temporal store sends a whole line to memory without
reading it first and without filling the caches with data the kernel will not read again: zeroing
64 MiB on this project's 2-core dev machine takes 1.7 ms this way against 3.4-3.9 ms with plain
stores (docs/BENCHMARKS.md, "pillar_scatter"). numba has no such store, so ``stream_store_16`` is
an LLVM intrinsic: a 16-byte vector store tagged ``!nontemporal`` (``movntps`` on x86-64; on AArch64
LLVM picks ``stnp`` or a plain store, both correct). Streaming stores are weakly ordered on x86, so
a kernel calls ``store_fence`` (``sfence``) when a work item is done, before another thread may read
what it wrote.

The destination must be 16-byte aligned (``movntps`` faults otherwise): callers check with
``can_stream`` and fall back to plain stores.
"""

from __future__ import annotations

import platform

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["STREAM_BYTES", "can_stream", "store_fence", "stream_store_16"]

STREAM_BYTES = 16
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


@intrinsic
def stream_store_16(typingctx, dst, dst_index, src, src_index):  # pragma: no cover - numba
    """Copy 16 bytes from ``src[src_index:]`` (any alignment) to ``dst[dst_index:]`` (16-byte aligned), bypassing the caches."""
    if not (isinstance(dst, types.Array) and isinstance(src, types.Array)):
        return None
    sig = types.void(dst, dst_index, src, src_index)

    def codegen(context, builder, signature, args):
        dst_arr = context.make_array(signature.args[0])(context, builder, args[0])
        src_arr = context.make_array(signature.args[2])(context, builder, args[2])
        vec = ir.VectorType(ir.IntType(32), 4)
        src_ptr = builder.bitcast(builder.gep(src_arr.data, [args[3]]), vec.as_pointer())
        dst_ptr = builder.bitcast(builder.gep(dst_arr.data, [args[1]]), vec.as_pointer())
        value = builder.load(src_ptr, align=1)
        store = builder.store(value, dst_ptr, align=STREAM_BYTES)
        store.set_metadata("nontemporal", builder.module.add_metadata([ir.IntType(32)(1)]))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def store_fence(typingctx):  # pragma: no cover - numba
    """Order this thread's streaming stores before its later stores (``sfence`` on x86, a full fence elsewhere)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        if _X86:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse.sfence")
            builder.call(fn, [])
        else:
            builder.fence("seq_cst")
        return context.get_dummy_value()

    return sig, codegen


def can_stream(out: np.ndarray, *chunk_elements: int) -> bool:
    """Whether every chunk of ``out`` that starts at a multiple of each of ``chunk_elements`` is 16-byte aligned."""
    if out.ctypes.data % STREAM_BYTES:
        return False
    return all(n * out.itemsize % STREAM_BYTES == 0 for n in chunk_elements)
