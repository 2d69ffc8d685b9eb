// Shared helpers of the bevfuse kernels.
//
// Compiled two ways: at run time by NVRTC through CuPy (perception/ops/_cuda.py pastes this header
// into each source), and by nvcc in CI for sm_87 / sm_90 (tests/test_cuda_compile.py). NVRTC has no
// C/C++ standard headers, so nothing here includes any: fixed-width types are spelled out, and
// float16 conversions use PTX instead of cuda_fp16.h.
//
// Kernels are built with --fmad=false so that float32 arithmetic matches the numba CPU versions
// operation for operation (see _cuda.py); keep the order of operations the same on both sides.
#pragma once

typedef long long i64;
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

#define BEV_INT_MAX 2147483647
#define BEV_FULL_MASK 0xffffffffu

// False for NaN and for +-inf.
__device__ __forceinline__ bool bev_finite(float v) { return fabsf(v) <= 3.402823466e+38f; }

// float32 -> float16 bits, round to nearest even (the same rounding as numpy's astype(float16)).
// (BEV_HOST_F16: the host emulation of the tests, tests/cuda_host/bev_emulate.h, has no PTX.)
__device__ __forceinline__ u16 bev_f32_to_f16_bits(float f) {
#ifdef BEV_HOST_F16
    return bev_host_f32_to_f16_bits(f);
#else
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
#endif
}

__device__ __forceinline__ float bev_f16_bits_to_f32(u16 h) {
#ifdef BEV_HOST_F16
    return bev_host_f16_bits_to_f32(h);
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#endif
}

// An int whose signed order is the order of the floats: lets atomicMax / atomicMin on int act on
// floats (max RCS, newest time lag) without a compare-and-swap loop. -0.0 and +0.0 are equal
// values and share the key 0 (as float_order_key in perception/ops/_common.py), so ties go by index.
__device__ __forceinline__ int bev_float_order_key(float f) {
    int i = __float_as_int(f);
    if (i == (int)0x80000000) return 0;  // -0.0
    return i >= 0 ? i : (i ^ 0x7fffffff);
}

__device__ __forceinline__ float bev_float_from_order_key(int k) {
    return __int_as_float(k >= 0 ? k : (k ^ 0x7fffffff));
}

// Count the threads of a warp for which `pred` holds with one atomic per warp instead of one per
// thread: counters of dropped points are hit by most threads of a launch when, say, a whole cloud
// lies outside the grid. Every lane of the warp must reach this call.
__device__ __forceinline__ void bev_warp_count(bool pred, i64* counter) {
    unsigned ballot = __ballot_sync(BEV_FULL_MASK, pred);
    if ((threadIdx.x & 31) == 0 && ballot != 0) {
        atomicAdd((u64*)counter, (u64)__popc(ballot));
    }
}
