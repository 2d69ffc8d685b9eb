// Scatter of pillar features to the BEV pseudo-image (perception/ops/pillar_scatter.py).
//
// Two passes instead of a memset + scatter: the cell -> row map (atomicMax: the later row wins, as
// on the CPU) is small, and the write pass stores every output element exactly once, coalesced,
// so the zero background costs no extra pass over the (C, ny, nx) image.
#include "common.cuh"

extern "C" __global__ void scatter_cell_rows(const int* __restrict__ coords, int p, int ny, int nx, int* __restrict__ rows) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= p) return;
    int iy = coords[2 * r], ix = coords[2 * r + 1];
    if (iy >= 0 && iy < ny && ix >= 0 && ix < nx) atomicMax(rows + (i64)iy * nx + ix, r);
}

// T is the bit pattern of the element (u32 for float32, u16 for float16): a scatter only moves bits.
template <typename T>
__device__ __forceinline__ void scatter_write(const T* __restrict__ features, const int* __restrict__ rows, int c_all,
                                              i64 cells, T* __restrict__ out) {
    i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (i64)c_all * cells) return;
    int c = (int)(e / cells);
    i64 cell = e - (i64)c * cells;
    int r = rows[cell];
    out[e] = r >= 0 ? features[(i64)r * c_all + c] : (T)0;
}

extern "C" __global__ void scatter_write_f32(const u32* __restrict__ features, const int* __restrict__ rows, int c_all,
                                             i64 cells, u32* __restrict__ out) {
    scatter_write<u32>(features, rows, c_all, cells, out);
}

extern "C" __global__ void scatter_write_f16(const u16* __restrict__ features, const int* __restrict__ rows, int c_all,
                                             i64 cells, u16* __restrict__ out) {
    scatter_write<u16>(features, rows, c_all, cells, out);
}
