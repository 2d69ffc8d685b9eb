// Camera feature maps -> BEV volume through the lookup table (perception/ops/camera_bev_gather.py).
//
// One thread per (sample, channel), samples along x of the grid: table reads and output writes are
// coalesced; the feature reads are gathers that hit L2 (the maps are small next to the BEV volume).
// Sum in slot order, then scale by 1/count: the numba version's float32 operations, in order.
#include "common.cuh"

extern "C" __global__ void gather_camera_bev(const float* __restrict__ features, int c_all, int h, int w,
                                            const int* __restrict__ camera, const int* __restrict__ pixel,
                                            const float* __restrict__ weight, const float* __restrict__ inv_count, int s_all,
                                            int slots, float* __restrict__ out) {
    int s = blockIdx.x * blockDim.x + threadIdx.x;
    int c = blockIdx.y;
    if (s >= s_all) return;
    float acc = 0.0f;
    for (int k = 0; k < slots; ++k) {
        i64 slot = (i64)s * slots + k;
        int cam = camera[slot];
        if (cam < 0) break;
        int y0 = pixel[2 * slot], x0 = pixel[2 * slot + 1];
        int y1 = y0 + 1 < h - 1 ? y0 + 1 : h - 1;
        int x1 = x0 + 1 < w - 1 ? x0 + 1 : w - 1;
        const float* f = features + ((i64)cam * c_all + c) * h * w;
        const float* wt = weight + 4 * slot;
        acc += (wt[0] * f[y0 * w + x0] + wt[1] * f[y0 * w + x1] + wt[2] * f[y1 * w + x0] + wt[3] * f[y1 * w + x1]);
    }
    out[(i64)c * s_all + s] = acc * inv_count[s];
}
