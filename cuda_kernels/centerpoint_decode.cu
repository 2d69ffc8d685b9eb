// CenterPoint decode (perception/ops/centerpoint_decode.py has the rules and the numba twin).
//
//   decode_peak_keys  one thread per heatmap element: a 64-bit key for a 3x3 peak, INT64_MIN otherwise
//   (torch.topk)      the K largest keys, sorted
//   decode_boxes      one thread per output row: box, score, label, valid
//
// Key = (order-preserving int of the value) << 32 | ~flat_index: descending keys are descending
// values with ties broken by the lower index, the same order as the CPU's stable sort, and every
// key is distinct, so top-K has one answer.
#include "common.cuh"

#define BEV_I64_MIN (-9223372036854775807LL - 1LL)

extern "C" __global__ void decode_peak_keys(const float* __restrict__ heat, int n_cls, int h, int w, i64* __restrict__ keys) {
    i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    i64 total = (i64)n_cls * h * w;
    if (e >= total) return;
    int x = (int)(e % w);
    int y = (int)((e / w) % h);
    const float* plane = heat + (e / ((i64)h * w)) * h * w;
    float v = heat[e];
    bool peak = bev_finite(v);
    for (int dy = -1; dy <= 1 && peak; ++dy) {
        for (int dx = -1; dx <= 1; ++dx) {
            int yy = y + dy, xx = x + dx;
            if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
            float u = plane[yy * w + xx];
            if (bev_finite(u) && u > v) { peak = false; break; }
        }
    }
    keys[e] = peak ? (((i64)bev_float_order_key(v)) << 32) | (i64)(u32)(~(u32)e) : BEV_I64_MIN;
}

__device__ __forceinline__ float sigmoid_f32(float v) { return 1.0f / (1.0f + expf(-v)); }

extern "C" __global__ void decode_boxes(const i64* __restrict__ top, int k_eff, int top_k, const float* __restrict__ heat,
                                        const float* __restrict__ offset, const float* __restrict__ height,
                                        const float* __restrict__ size, const float* __restrict__ rot,
                                        const float* __restrict__ vel, int has_vel, int h, int w, float threshold,
                                        int sigmoid, float x0, float y0, float cell, float* __restrict__ boxes,
                                        float* __restrict__ scores, int* __restrict__ labels, bool* __restrict__ valid) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= top_k) return;
    float* b = boxes + 9 * (i64)j;
    bool ok = false;
    if (j < k_eff && top[j] != BEV_I64_MIN) {
        i64 e = (i64)(~(u32)(top[j] & 0xffffffffLL));
        float v = heat[e];
        float s = sigmoid ? sigmoid_f32(v) : v;
        if (s >= threshold) {
            ok = true;
            i64 hw = (i64)h * w;
            int k = (int)(e / hw);
            i64 cell_idx = e - (i64)k * hw;
            int y = (int)(cell_idx / w), x = (int)(cell_idx % w);
            b[0] = x0 + ((float)x + offset[cell_idx]) * cell;
            b[1] = y0 + ((float)y + offset[hw + cell_idx]) * cell;
            b[2] = height[cell_idx];
            b[3] = expf(size[cell_idx]);
            b[4] = expf(size[hw + cell_idx]);
            b[5] = expf(size[2 * hw + cell_idx]);
            b[6] = atan2f(rot[cell_idx], rot[hw + cell_idx]);
            b[7] = has_vel ? vel[cell_idx] : 0.0f;
            b[8] = has_vel ? vel[hw + cell_idx] : 0.0f;
            scores[j] = s;
            labels[j] = k;
        }
    }
    if (!ok) {
        for (int c = 0; c < 9; ++c) b[c] = 0.0f;
        scores[j] = 0.0f;
        labels[j] = -1;
    }
    valid[j] = ok;
}
