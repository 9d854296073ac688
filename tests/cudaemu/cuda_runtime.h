/*
 * cuda_runtime.h (test harness) - lets the CUDA backend's kernels build as
 * plain C++ and run on the CPU: the execution-space keywords, the built-in
 * index variables, warp shuffles, barriers and atomics the kernels use, and
 * the launcher behind DSV3_LAUNCH. Each block runs at a time; its threads
 * are fibers that switch at every barrier and warp-level operation, so
 * intra-block communication behaves as on a GPU (a missing barrier shows up
 * as stale data), and everything is deterministic. See emu.cpp.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_CUDAEMU_RUNTIME_H
#define DSV3_CUDAEMU_RUNTIME_H

#include "cuda_runtime_api.h"

#ifdef __cplusplus

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <tuple>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __restrict__

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c)
    {
    }
};

struct uint3 {
    unsigned x, y, z;
};

struct alignas(16) float4 {
    float x, y, z, w;
};

struct alignas(16) uint4 {
    unsigned x, y, z, w;
};

namespace dsv3emu {

struct thread_ids {
    uint3 tid, bid;
    dim3 bdim, gdim;
};

/* The running fiber's indices. */
const thread_ids &ids();
void syncthreads();
void syncwarp();
/* mode 0: value of lane (lane ^ arg); mode 1: of lane - arg (own value
 * below arg). */
uint64_t shfl(uint64_t v, int mode, unsigned arg);
void *dyn_smem();
void run_grid(dim3 g, dim3 b, size_t smem, const void *kernel, void (*body)(void *), void *ctx);
cudaError_t set_max_dyn_smem(const void *kernel, int bytes);

template <class T>
inline uint64_t to_bits(T v)
{
    uint64_t u = 0;
    memcpy(&u, &v, sizeof v);
    return u;
}

template <class T>
inline T from_bits(uint64_t u)
{
    T v;
    memcpy(&v, &u, sizeof v);
    return v;
}

template <class... P>
struct launch {
    dim3 g, b;
    size_t smem;
    void (*fn)(P...);
    template <class... A>
    void operator()(A &&...a) const
    {
        std::tuple<P...> args(static_cast<P>(a)...);
        struct call {
            void (*fn)(P...);
            std::tuple<P...> *args;
        } c{fn, &args};
        run_grid(
            g, b, smem, (const void *)fn,
            [](void *p) {
                call *k = (call *)p;
                std::apply(k->fn, *k->args);
            },
            &c);
    }
};

template <class... P>
inline launch<P...> launcher(dim3 g, dim3 b, size_t smem, cudaStream_t, void (*fn)(P...))
{
    return launch<P...>{g, b, smem, fn};
}

} /* namespace dsv3emu */

#define threadIdx (dsv3emu::ids().tid)
#define blockIdx (dsv3emu::ids().bid)
#define blockDim (dsv3emu::ids().bdim)
#define gridDim (dsv3emu::ids().gdim)

inline void __syncthreads()
{
    dsv3emu::syncthreads();
}

inline void __syncwarp(unsigned mask = 0xffffffffu)
{
    (void)mask;
    dsv3emu::syncwarp();
}

template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask)
{
    (void)mask;
    return dsv3emu::from_bits<T>(dsv3emu::shfl(dsv3emu::to_bits(v), 0, (unsigned)lane_mask));
}

template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta)
{
    (void)mask;
    return dsv3emu::from_bits<T>(dsv3emu::shfl(dsv3emu::to_bits(v), 1, delta));
}

/* Fibers of a block never run at the same time: plain updates are atomic. */
inline int atomicAdd(int *p, int v)
{
    int old = *p;
    *p = old + v;
    return old;
}

inline float __uint_as_float(unsigned u)
{
    return dsv3emu::from_bits<float>(u);
}

inline unsigned __float_as_uint(float f)
{
    return (unsigned)dsv3emu::to_bits(f);
}

template <class T>
inline T min(T a, T b)
{
    return b < a ? b : a;
}

template <class T>
inline T max(T a, T b)
{
    return a < b ? b : a;
}

template <class T>
inline cudaError_t cudaFuncSetAttribute(T *f, enum cudaFuncAttribute attr, int v)
{
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize)
        return cudaErrorInvalidValue;
    return dsv3emu::set_max_dyn_smem((const void *)f, v);
}

template <class T>
inline cudaError_t cudaFuncGetAttributes(struct cudaFuncAttributes *fa, T *f)
{
    (void)f;
    memset(fa, 0, sizeof *fa);
    fa->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}

#endif /* __cplusplus */

#endif /* DSV3_CUDAEMU_RUNTIME_H */
