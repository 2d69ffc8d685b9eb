// Runs the CUDA kernels of cuda_kernels/ on the host, for tests on machines without a GPU.
//
// Not a simulator of the hardware: a way to execute the kernels' own source, thread by thread, so
// that their index arithmetic, tie rules, atomics and block cooperation are checked against the
// numba versions (tests/test_cuda_emulated.py). Speed, memory coalescing, races that only a real
// scheduler would show, and the device's own math library (expf, atan2f differ by an ulp or so)
// stay for tools/gpu_check.sh on a real GPU.
//
// A launch runs its blocks one after another. A kernel that never synchronises runs every thread
// of a block in turn on the calling thread. One that calls __syncthreads or a warp function
// (__shfl_sync, __ballot_sync) gets one OS thread per CUDA thread, with a std::barrier per block
// and per warp; a thread that returns early drops out of both, as an exited thread does on a GPU.
#pragma once

#include <atomic>
#include <barrier>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

namespace bev_emu {

struct BlockState {
    std::unique_ptr<std::barrier<>> sync;               // __syncthreads
    std::vector<std::unique_ptr<std::barrier<>>> warp;  // one per warp: shuffles and votes
    std::vector<std::uint64_t> exchange;                // 32 slots per warp
};

inline thread_local dim3 thread_index, block_index;
inline dim3 grid_dim, block_dim;
inline BlockState* block_state = nullptr;  // null when the kernel runs its threads in turn
inline std::vector<std::uint64_t> dynamic_shared;  // extern __shared__ (8-byte aligned)

inline unsigned linear_thread() {
    return thread_index.x + block_dim.x * (thread_index.y + block_dim.y * thread_index.z);
}

inline BlockState& cooperative(const char* what) {
    if (block_state == nullptr) {
        std::fprintf(stderr, "bev_emulate: %s in a kernel run without threads (see kernel_syncs)\n", what);
        std::abort();
    }
    return *block_state;
}

template <class T>
inline T shuffle(T v, int src) {
    BlockState& b = cooperative("__shfl_sync");
    unsigned me = linear_thread(), w = me / 32;
    std::uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    b.exchange[w * 32 + me % 32] = bits;
    b.warp[w]->arrive_and_wait();
    std::uint64_t got = b.exchange[w * 32 + (src & 31)];
    b.warp[w]->arrive_and_wait();  // nobody overwrites a slot before every lane has read
    T out;
    std::memcpy(&out, &got, sizeof(T));
    return out;
}

inline unsigned ballot(bool pred) {
    BlockState& b = cooperative("__ballot_sync");
    unsigned me = linear_thread(), w = me / 32;
    b.exchange[w * 32 + me % 32] = pred ? 1 : 0;
    b.warp[w]->arrive_and_wait();
    unsigned lanes = block_dim.x * block_dim.y * block_dim.z - w * 32, votes = 0;
    for (unsigned l = 0; l < 32 && l < lanes; ++l) votes |= (b.exchange[w * 32 + l] ? 1u : 0u) << l;
    b.warp[w]->arrive_and_wait();
    return votes;
}

template <class T, class F>
inline T atomic_update(T* address, F update) {
    std::atomic_ref<T> a(*address);
    T old = a.load();
    while (!a.compare_exchange_weak(old, update(old))) {
    }
    return old;
}

// One launch. `kernel` calls the kernel with its arguments; `syncs` says whether it needs threads.
inline void launch(dim3 grid, dim3 block, std::size_t shared_bytes, bool syncs, const std::function<void()>& kernel) {
    grid_dim = grid;
    block_dim = block;
    dynamic_shared.assign((shared_bytes + 7) / 8, 0);
    const unsigned threads = block.x * block.y * block.z, warps = (threads + 31) / 32;
    const std::uint64_t blocks = (std::uint64_t)grid.x * grid.y * grid.z;
    auto set_block = [&](std::uint64_t k) {
        block_index = dim3{unsigned(k % grid.x), unsigned(k / grid.x % grid.y), unsigned(k / grid.x / grid.y)};
    };
    auto set_thread = [&](unsigned t) {
        thread_index = dim3{t % block.x, t / block.x % block.y, t / block.x / block.y};
    };
    if (!syncs) {
        block_state = nullptr;
        for (std::uint64_t k = 0; k < blocks; ++k) {
            set_block(k);
            for (unsigned t = 0; t < threads; ++t) {
                set_thread(t);
                kernel();
            }
        }
        return;
    }
    // One OS thread per CUDA thread. Between blocks every thread meets at `between`, whose
    // completion step (run once, by the last to arrive) sets up the next block's barriers.
    std::uint64_t next = 0;
    std::unique_ptr<BlockState> state;
    bool done = false;
    auto setup = [&]() noexcept {
        if (next == blocks) {
            done = true;
            return;
        }
        state = std::make_unique<BlockState>();
        state->sync = std::make_unique<std::barrier<>>(threads);
        for (unsigned w = 0; w < warps; ++w) {
            unsigned lanes = threads - w * 32 < 32 ? threads - w * 32 : 32;
            state->warp.push_back(std::make_unique<std::barrier<>>(lanes));
        }
        state->exchange.assign(warps * 32, 0);
        block_state = state.get();
        ++next;
    };
    std::barrier between(threads, setup);
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (unsigned t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            for (;;) {
                between.arrive_and_wait();
                if (done) return;
                set_block(next - 1);
                set_thread(t);
                kernel();
                block_state->sync->arrive_and_drop();  // returned: no longer waited for
                block_state->warp[t / 32]->arrive_and_drop();
            }
        });
    }
    for (auto& th : pool) th.join();
    block_state = nullptr;
}

}  // namespace bev_emu

#define threadIdx (bev_emu::thread_index)
#define blockIdx (bev_emu::block_index)
#define blockDim (bev_emu::block_dim)
#define gridDim (bev_emu::grid_dim)
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static  // one copy, used by the block that runs now (blocks run one at a time)

inline void __syncthreads() { bev_emu::cooperative("__syncthreads").sync->arrive_and_wait(); }
template <class T>
inline T __shfl_sync(unsigned, T v, int src) { return bev_emu::shuffle(v, src); }
inline unsigned __ballot_sync(unsigned, bool pred) { return bev_emu::ballot(pred); }
inline int __popc(unsigned v) { return std::popcount(v); }
inline int __ffsll(long long v) { return __builtin_ffsll(v); }
inline int __float_as_int(float f) { return std::bit_cast<int>(f); }
inline float __int_as_float(int i) { return std::bit_cast<float>(i); }

template <class T>
inline T atomicAdd(T* a, T v) { return bev_emu::atomic_update(a, [v](T o) { return T(o + v); }); }
template <class T>
inline T atomicMax(T* a, T v) { return bev_emu::atomic_update(a, [v](T o) { return o > v ? o : v; }); }
template <class T>
inline T atomicMin(T* a, T v) { return bev_emu::atomic_update(a, [v](T o) { return o < v ? o : v; }); }

// common.cuh converts float16 with PTX; the host rounds the same way (to nearest even).
#define BEV_HOST_F16 1
inline unsigned short bev_host_f32_to_f16_bits(float f) { return std::bit_cast<unsigned short>((_Float16)f); }
inline float bev_host_f16_bits_to_f32(unsigned short h) { return (float)std::bit_cast<_Float16>(h); }
