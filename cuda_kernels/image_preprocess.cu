// Resize + crop + normalise + HWC->CHW of N camera images in one pass
// (perception/ops/image_preprocess.py has the conventions and the numba twin).
//
// One thread per output pixel computes its three channels: the 2x2 source neighbourhood is read
// once for all channels, and each channel plane is written coalesced along x. The input is read
// through element strides, so a permuted view of nvJPEG's (N, 3, H, W) output needs no copy.
// params: per camera sx ox sy oy x_lo x_hi y_lo y_hi mean[3] inv_std[3] (float32).
#include "common.cuh"

template <bool F16>
__device__ __forceinline__ void preprocess(const u8* __restrict__ images, int h, int w, i64 sn, i64 sy_, i64 sx_, i64 sc,
                                           const float* __restrict__ params, int oh, int ow, void* __restrict__ out) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y;
    int n = blockIdx.z;
    if (x >= ow) return;
    const float* p = params + 14 * n;
    float v[3] = {0.0f, 0.0f, 0.0f};
    if ((float)y >= p[6] && (float)y < p[7] && (float)x >= p[4] && (float)x < p[5]) {
        // Same float32 operations in the same order as the numba version (built with --fmad=false).
        float fy = (float)y * p[2] + p[3];
        int y0 = (int)floorf(fy);
        float wy = fy - (float)y0;
        if (y0 < 0) { y0 = 0; wy = 0.0f; }
        if (y0 >= h - 1) { y0 = h - 1; wy = 0.0f; }
        int y1 = y0 + 1 < h - 1 ? y0 + 1 : h - 1;
        float fx = (float)x * p[0] + p[1];
        int x0 = (int)floorf(fx);
        float wx = fx - (float)x0;
        if (x0 < 0) { x0 = 0; wx = 0.0f; }
        if (x0 >= w - 1) { x0 = w - 1; wx = 0.0f; }
        int x1 = x0 + 1 < w - 1 ? x0 + 1 : w - 1;
        const u8* img = images + n * sn;
        const u8* r0 = img + y0 * sy_;
        const u8* r1 = img + y1 * sy_;
        for (int c = 0; c < 3; ++c) {
            float top = (float)r0[x0 * sx_ + c * sc] * (1.0f - wx) + (float)r0[x1 * sx_ + c * sc] * wx;
            float bot = (float)r1[x0 * sx_ + c * sc] * (1.0f - wx) + (float)r1[x1 * sx_ + c * sc] * wx;
            float val = top * (1.0f - wy) + bot * wy;
            v[c] = (val - p[8 + c]) * p[11 + c];
        }
    }
    i64 plane = (i64)oh * ow;
    i64 o = (i64)n * 3 * plane + (i64)y * ow + x;
    for (int c = 0; c < 3; ++c) {
        if (F16) {
            ((u16*)out)[o + c * plane] = bev_f32_to_f16_bits(v[c]);
        } else {
            ((float*)out)[o + c * plane] = v[c];
        }
    }
}

extern "C" __global__ void preprocess_f32(const u8* __restrict__ images, int h, int w, i64 sn, i64 sy, i64 sx, i64 sc,
                                          const float* __restrict__ params, int oh, int ow, float* __restrict__ out) {
    preprocess<false>(images, h, w, sn, sy, sx, sc, params, oh, ow, out);
}

extern "C" __global__ void preprocess_f16(const u8* __restrict__ images, int h, int w, i64 sn, i64 sy, i64 sx, i64 sc,
                                          const float* __restrict__ params, int oh, int ow, u16* __restrict__ out) {
    preprocess<true>(images, h, w, sn, sy, sx, sc, params, oh, ow, out);
}
