// BEV NMS, rotated IoU or circle (perception/ops/bev_nms.py has the rules and the numba twin).
//
//   nms_prepare  per box: ok flag, sort key (-score, +inf when not ok), corners, bounding radius
//   (torch.sort, stable)  visiting order: score descending, ties by row
//   nms_mask     64 x 64 tiles of the upper triangle: bit j of row i = box i (earlier) suppresses j
//   nms_reduce   one block walks the rows 64 at a time: one thread resolves the 64 rows of a word
//                from a shared copy of their diagonal masks, then all threads OR the kept rows'
//                masks into the later words. No host round trip, unlike the usual CPU-side reduce.
// prep row (16 floats): x y l w, corners c0x c0y .. c3x c3y (counter-clockwise), radius, ok.
#include "common.cuh"

#define PREP 16

extern "C" __global__ void nms_prepare(const float* __restrict__ boxes, int stride, const float* __restrict__ scores,
                                       const int* __restrict__ labels, const bool* __restrict__ valid, int m, int n_cls,
                                       float* __restrict__ key, float* __restrict__ prep) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= m) return;
    const float* b = boxes + (i64)i * stride;
    bool fin = bev_finite(scores[i]);
    for (int k = 0; k < 7; ++k) fin = fin && bev_finite(b[k]);
    bool ok = valid[i] && fin && (n_cls == 1 || (labels[i] >= 0 && labels[i] < n_cls));
    key[i] = ok ? -scores[i] : __int_as_float(0x7f800000);
    float* p = prep + (i64)i * PREP;
    p[0] = b[0];
    p[1] = b[1];
    p[2] = b[3];
    p[3] = b[4];
    // float64 sin/cos rounded to float32: the same corners as numba's np.sin/np.cos on float64.
    float c = ok ? (float)cos((double)b[6]) : 0.0f;
    float s = ok ? (float)sin((double)b[6]) : 0.0f;
    const float sx[4] = {0.5f, -0.5f, -0.5f, 0.5f};
    const float sy[4] = {0.5f, 0.5f, -0.5f, -0.5f};
    for (int k = 0; k < 4; ++k) {
        float dx = sx[k] * b[3];
        float dy = sy[k] * b[4];
        p[4 + 2 * k] = ok ? b[0] + (dx * c - dy * s) : 0.0f;
        p[5 + 2 * k] = ok ? b[1] + (dx * s + dy * c) : 0.0f;
    }
    p[12] = 0.5f * sqrtf(b[3] * b[3] + b[4] * b[4]);
    p[13] = ok ? 1.0f : 0.0f;
}

__device__ __forceinline__ float cross2(float ax, float ay, float bx, float by) { return ax * by - ay * bx; }

// IoU in x-y: Sutherland-Hodgman clip of a's polygon by b's four edges (mirrors _iou in bev_nms.py).
__device__ float rotated_iou(const float* __restrict__ a, const float* __restrict__ b) {
    float px[16], py[16], qx[16], qy[16];
    int n = 4;
    for (int k = 0; k < 4; ++k) {
        px[k] = a[4 + 2 * k];
        py[k] = a[5 + 2 * k];
    }
    for (int e = 0; e < 4; ++e) {
        float ex0 = b[4 + 2 * e], ey0 = b[5 + 2 * e];
        float ex1 = b[4 + 2 * ((e + 1) % 4)], ey1 = b[5 + 2 * ((e + 1) % 4)];
        float dx = ex1 - ex0, dy = ey1 - ey0;
        int m = 0;
        for (int k = 0; k < n; ++k) {
            float sx = px[(k + n - 1) % n], sy = py[(k + n - 1) % n];
            float cx = px[k], cy = py[k];
            float ds = cross2(dx, dy, sx - ex0, sy - ey0);
            float dc = cross2(dx, dy, cx - ex0, cy - ey0);
            if (dc >= 0.0f) {
                if (ds < 0.0f) {
                    float t = ds / (ds - dc);
                    qx[m] = sx + t * (cx - sx);
                    qy[m] = sy + t * (cy - sy);
                    ++m;
                }
                qx[m] = cx;
                qy[m] = cy;
                ++m;
            } else if (ds >= 0.0f) {
                float t = ds / (ds - dc);
                qx[m] = sx + t * (cx - sx);
                qy[m] = sy + t * (cy - sy);
                ++m;
            }
        }
        n = m;
        for (int k = 0; k < n; ++k) {
            px[k] = qx[k];
            py[k] = qy[k];
        }
        if (n == 0) return 0.0f;
    }
    float area2 = 0.0f;
    for (int k = 0; k < n; ++k) {
        int j = (k + 1) % n;
        area2 += px[k] * py[j] - px[j] * py[k];
    }
    float inter = fabsf(area2) * 0.5f;
    float uni = a[2] * a[3] + b[2] * b[3] - inter;
    return uni > 0.0f ? inter / uni : 0.0f;
}

extern "C" __global__ void nms_mask(const float* __restrict__ prep, const int* __restrict__ labels,
                                    const i64* __restrict__ order, int m, const float* __restrict__ thresholds, int n_cls,
                                    int circle, i64* __restrict__ mask) {
    int row = blockIdx.y, col = blockIdx.x;
    if (col < row) return;  // only the upper triangle is ever read
    int words = gridDim.x;
    __shared__ float cb[64 * PREP];
    __shared__ int cl[64];
    int t = threadIdx.x;
    int j0 = col * 64;
    if (j0 + t < m) {
        i64 b = order[j0 + t];
        for (int k = 0; k < PREP; ++k) cb[t * PREP + k] = prep[b * PREP + k];
        cl[t] = labels[b];
    }
    __syncthreads();
    int i = row * 64 + t;
    if (i >= m) return;
    i64 a = order[i];
    const float* pa = prep + a * PREP;
    u64 bits = 0;
    if (pa[13] != 0.0f) {
        int la = labels[a];
        float thr = n_cls == 1 ? thresholds[0] : thresholds[la];
        int n_col = m - j0 < 64 ? m - j0 : 64;
        for (int k = (row == col ? t + 1 : 0); k < n_col; ++k) {
            const float* pb = cb + k * PREP;
            if (pb[13] == 0.0f || cl[k] != la) continue;
            float dx = pa[0] - pb[0], dy = pa[1] - pb[1];
            float d2 = dx * dx + dy * dy;
            bool hit;
            if (circle) {
                hit = d2 <= thr * thr;
            } else {
                float reach = (pa[12] + pb[12]) * 1.01f;  // farther apart: the boxes cannot overlap
                hit = d2 <= reach * reach && rotated_iou(pa, pb) > thr;
            }
            if (hit) bits |= 1ULL << k;
        }
    }
    mask[(i64)i * words + col] = (i64)bits;
}

extern "C" __global__ void nms_reduce(const i64* __restrict__ mask, const float* __restrict__ prep,
                                      const i64* __restrict__ order, int m, bool* __restrict__ keep) {
    extern __shared__ u64 smem[];
    int words = (m + 63) / 64;
    u64* removed = smem;       // words
    u64* diag = smem + words;  // 64
    __shared__ u64 kept_word;
    int t = threadIdx.x;
    for (int w = t; w < words; w += blockDim.x) {
        u64 bits = 0;
        for (int b = 0; b < 64; ++b) {
            int i = w * 64 + b;
            if (i >= m || prep[order[i] * PREP + 13] == 0.0f) bits |= 1ULL << b;  // never kept
        }
        removed[w] = bits;
    }
    __syncthreads();
    for (int w = 0; w < words; ++w) {
        if (t < 64) {
            int i = w * 64 + t;
            diag[t] = i < m ? (u64)mask[(i64)i * words + w] : 0ULL;
        }
        __syncthreads();
        if (t == 0) {
            u64 cur = removed[w], kept = 0;
            for (int b = 0; b < 64; ++b) {
                if (!((cur >> b) & 1ULL)) {
                    kept |= 1ULL << b;
                    cur |= diag[b];
                }
            }
            removed[w] = cur;
            kept_word = kept;
        }
        __syncthreads();
        u64 kept = kept_word;
        for (int w2 = w + 1 + t; w2 < words; w2 += blockDim.x) {
            u64 acc = 0, bits = kept;
            while (bits) {
                int b = __ffsll((long long)bits) - 1;
                bits &= bits - 1;
                acc |= (u64)mask[(i64)(w * 64 + b) * words + w2];
            }
            removed[w2] |= acc;
        }
        if (t < 64 && ((kept >> t) & 1ULL)) keep[order[w * 64 + t]] = true;
        __syncthreads();
    }
}
