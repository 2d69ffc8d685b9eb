// Pillarization (perception/ops/pillarization.py has the rules and the launch sequence).
//
// Deterministic without a global ordering pass over the cloud:
//   1. pillar_assign     cell of each point; atomicMin gives each cell its first point index
//   2. pillar_mark_first a point is "first" when it is its cell's first point
//      (torch.cumsum)    pillar number = number of first points before it -> pillars ordered by first point
//   3. pillar_number     the first point of each pillar writes cell -> pillar and the pillar's coords
//   4. pillar_key        key of each point = its pillar (or a sentinel); per-pillar point counts
//      (torch.sort, stable) points grouped by pillar, input order kept inside a pillar
//   5. pillar_gather     slot = position in the pillar's run; the first M points are copied
//   6. pillar_finalize   one warp per pillar: mean over the kept points, offsets, zero padding
#include "common.cuh"

extern "C" __global__ void pillar_assign(const float* __restrict__ points, int n, int f,
                                         double x_min, double y_min, double z_min, double z_max, double cell,
                                         int nx, int ny, int* __restrict__ point_cell, int* __restrict__ first,
                                         i64* __restrict__ stats) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    bool nonfinite = false, outside = false;
    if (i < n) {
        const float* p = points + (i64)i * f;
        for (int k = 0; k < f; ++k) nonfinite |= !bev_finite(p[k]);
        int c = -1;
        if (!nonfinite) {
            // float64 like the numba version, so that a point on a cell border lands in the same cell.
            double fx = ((double)p[0] - x_min) / cell;
            double fy = ((double)p[1] - y_min) / cell;
            double z = (double)p[2];
            if (fx >= 0.0 && fx < (double)nx && fy >= 0.0 && fy < (double)ny && z >= z_min && z < z_max) {
                c = (int)fy * nx + (int)fx;
                atomicMin(first + c, i);
            } else {
                outside = true;
            }
        }
        point_cell[i] = c;
    }
    bev_warp_count(nonfinite, stats + 1);
    bev_warp_count(outside, stats + 2);
}

extern "C" __global__ void pillar_mark_first(const int* __restrict__ point_cell, const int* __restrict__ first, int n,
                                             int* __restrict__ is_first) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int c = point_cell[i];
    is_first[i] = (c >= 0 && first[c] == i) ? 1 : 0;
}

extern "C" __global__ void pillar_number(const int* __restrict__ point_cell, const int* __restrict__ is_first,
                                         const int* __restrict__ rank, int n, int max_pillars, int nx,
                                         int* __restrict__ cell_pillar, int* __restrict__ coords, i64* __restrict__ stats) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    bool overflow = false;
    if (i < n) {
        if (is_first[i]) {
            int c = point_cell[i];
            int p = rank[i] - 1;  // inclusive prefix sum -> 0-based pillar number
            if (p < max_pillars) {
                cell_pillar[c] = p;
                coords[2 * p] = c / nx;
                coords[2 * p + 1] = c % nx;
            } else {
                cell_pillar[c] = -1;
                overflow = true;
            }
        }
        if (i == n - 1) stats[0] = rank[i] < max_pillars ? rank[i] : max_pillars;
    }
    bev_warp_count(overflow, stats + 4);
}

extern "C" __global__ void pillar_key(const int* __restrict__ point_cell, const int* __restrict__ cell_pillar, int n,
                                      int max_pillars, int* __restrict__ key, int* __restrict__ counts,
                                      i64* __restrict__ stats) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    bool lost = false;
    if (i < n) {
        int c = point_cell[i];
        int k = max_pillars;  // sentinel: sorts after every kept pillar
        if (c >= 0) {
            int p = cell_pillar[c];
            if (p >= 0) {
                k = p;
                atomicAdd(counts + p, 1);  // a count does not depend on the order of the atomics
            } else {
                lost = true;
            }
        }
        key[i] = k;
    }
    bev_warp_count(lost, stats + 5);
}

extern "C" __global__ void pillar_gather(const float* __restrict__ points, int n, int f, const int* __restrict__ sorted_key,
                                         const i64* __restrict__ order, const int* __restrict__ offsets, int max_pillars,
                                         int m, float* __restrict__ features, i64* __restrict__ stats) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    bool overflow = false;
    if (j < n) {
        int p = sorted_key[j];
        if (p < max_pillars) {
            int slot = j - offsets[p];
            if (slot < m) {
                const float* src = points + order[j] * f;
                float* dst = features + ((i64)p * m + slot) * (f + 5);
                for (int k = 0; k < f; ++k) dst[k] = src[k];
            } else {
                overflow = true;
            }
        }
    }
    bev_warp_count(overflow, stats + 3);
}

// One warp per pillar. The mean is summed in slot order (= input order) by every lane through
// shuffles, the same sequence of float32 additions as the numba version.
extern "C" __global__ void pillar_finalize(int f, const int* __restrict__ counts, int max_pillars, int m,
                                           double x_min, double y_min, double cell, float* __restrict__ features,
                                           int* __restrict__ coords, int* __restrict__ num_points) {
    int lane = threadIdx.x & 31;
    int p = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (p >= max_pillars) return;  // whole warps leave together
    int c_all = f + 5;
    int n = counts[p] < m ? counts[p] : m;
    float* base = features + (i64)p * m * c_all;
    if (lane == 0) {
        num_points[p] = n;
        if (n == 0) {
            coords[2 * p] = -1;
            coords[2 * p + 1] = -1;
        }
    }
    float sx = 0.0f, sy = 0.0f, sz = 0.0f;
    for (int s0 = 0; s0 < n; s0 += 32) {
        int s = s0 + lane;
        float x = 0.0f, y = 0.0f, z = 0.0f;
        if (s < n) {
            x = base[(i64)s * c_all];
            y = base[(i64)s * c_all + 1];
            z = base[(i64)s * c_all + 2];
        }
        int chunk = n - s0 < 32 ? n - s0 : 32;
        for (int t = 0; t < chunk; ++t) {
            sx += __shfl_sync(BEV_FULL_MASK, x, t);
            sy += __shfl_sync(BEV_FULL_MASK, y, t);
            sz += __shfl_sync(BEV_FULL_MASK, z, t);
        }
    }
    float nf = (float)n;
    float mx = n > 0 ? sx / nf : 0.0f, my = n > 0 ? sy / nf : 0.0f, mz = n > 0 ? sz / nf : 0.0f;
    float cx = 0.0f, cy = 0.0f;
    if (n > 0) {
        int iy = coords[2 * p], ix = coords[2 * p + 1];
        cx = (float)(x_min + ((double)ix + 0.5) * cell);
        cy = (float)(y_min + ((double)iy + 0.5) * cell);
    }
    for (int s = lane; s < m; s += 32) {
        float* row = base + (i64)s * c_all;
        if (s < n) {
            float x = row[0], y = row[1], z = row[2];
            row[f] = x - mx;
            row[f + 1] = y - my;
            row[f + 2] = z - mz;
            row[f + 3] = x - cx;
            row[f + 4] = y - cy;
        } else {
            for (int k = 0; k < c_all; ++k) row[k] = 0.0f;
        }
    }
}
