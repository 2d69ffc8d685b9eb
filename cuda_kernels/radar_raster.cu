// Radar rasterisation (perception/ops/radar_raster.py has the channels and the numba twin).
//
// One thread per point updates its cell with atomics: a count, max RCS and min time lag through
// order-preserving int keys (atomicMax/atomicMin on int, no CAS loop), vx vy sums in float64
// (atomicAdd on double, sm_60+) so the order of the additions cannot show after the float32
// rounding of the mean. A second pass per cell writes the five channels, zeros where empty.
#include "common.cuh"

extern "C" __global__ void radar_accumulate(const float* __restrict__ points, int n, double x_min, double y_min,
                                            double cell, int nx, int ny, int* __restrict__ count, int* __restrict__ rcs_key,
                                            int* __restrict__ lag_key, double* __restrict__ sums, i64* __restrict__ counts) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    bool nonfinite = false, outside = false;
    if (i < n) {
        const float* p = points + (i64)i * 7;
        nonfinite = !(bev_finite(p[0]) && bev_finite(p[1]) && bev_finite(p[3]) && bev_finite(p[4]) && bev_finite(p[5]) &&
                      bev_finite(p[6]));
        if (!nonfinite) {
            double fx = ((double)p[0] - x_min) / cell;
            double fy = ((double)p[1] - y_min) / cell;
            if (fx >= 0.0 && fx < (double)nx && fy >= 0.0 && fy < (double)ny) {
                int c = (int)fy * nx + (int)fx;
                atomicAdd(count + c, 1);
                atomicMax(rcs_key + c, bev_float_order_key(p[3]));
                atomicMin(lag_key + c, bev_float_order_key(p[6]));
                atomicAdd(sums + c, (double)p[4]);
                atomicAdd(sums + (i64)nx * ny + c, (double)p[5]);
            } else {
                outside = true;
            }
        }
    }
    bev_warp_count(nonfinite, counts);
    bev_warp_count(outside, counts + 1);
}

extern "C" __global__ void radar_finalize(const int* __restrict__ count, const int* __restrict__ rcs_key,
                                          const int* __restrict__ lag_key, const double* __restrict__ sums, int cells,
                                          float* __restrict__ bev) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cells) return;
    int n = count[c];
    bool any = n > 0;
    bev[c] = any ? 1.0f : 0.0f;
    bev[(i64)cells + c] = any ? bev_float_from_order_key(rcs_key[c]) : 0.0f;
    bev[2 * (i64)cells + c] = any ? (float)(sums[c] / (double)n) : 0.0f;
    bev[3 * (i64)cells + c] = any ? (float)(sums[(i64)cells + c] / (double)n) : 0.0f;
    bev[4 * (i64)cells + c] = any ? bev_float_from_order_key(lag_key[c]) : 0.0f;
}
