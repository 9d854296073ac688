/*
 * common.cuh - device helpers shared by the CUDA kernels: number formats
 * (bit-exact ports of the CPU conversions), weight element access, warp
 * reductions and launch helpers.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_CUDA_COMMON_CUH
#define DSV3_CUDA_COMMON_CUH

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "cuda_ops.h"

/*
 * Kernel launches and dynamic shared memory go through these two macros so
 * that the same sources also build as plain C++ on the CPU for the test
 * harness in tests/cudaemu (which runs each block's threads as fibers):
 * DSV3_LAUNCH((kernel), grid, block, smem, stream, args...), the kernel in
 * parentheses (template arguments may hold commas).
 */
#define DSV3_UNPAREN(...) __VA_ARGS__
#ifdef DSV3_CUDA_EMULATE
#define dsv3cu dsv3cu_emu /* no clash with the real kernels in one program */
#define DSV3_LAUNCH(kernel, grid, block, smem, stream, ...)                                        \
    dsv3emu::launcher(grid, block, smem, stream, DSV3_UNPAREN kernel)(__VA_ARGS__)
#define DSV3_DYN_SHARED(type, name) type *name = (type *)dsv3emu::dyn_smem()
#else
#define DSV3_LAUNCH(kernel, grid, block, smem, stream, ...)                                        \
    DSV3_UNPAREN kernel<<<grid, block, smem, stream>>>(__VA_ARGS__)
#define DSV3_DYN_SHARED(type, name) extern __shared__ type name[]
#endif

namespace dsv3cu {

enum : int {
    DT_F32 = DSV3_DTYPE_F32,
    DT_F16 = DSV3_DTYPE_F16,
    DT_BF16 = DSV3_DTYPE_BF16,
    DT_FP8 = DSV3_DTYPE_FP8_E4M3
};

/* ---- number formats --------------------------------------------------------- */

__device__ __forceinline__ float bf16_to_f32(uint16_t h)
{
    return __uint_as_float((uint32_t)h << 16);
}

__device__ __forceinline__ float f16_to_f32(uint16_t h)
{
    return __half2float(__ushort_as_half(h)); /* exact */
}

/* FP8 e4m3 "fn": bias 7, no infinities, S.1111.111 is NaN; exact. */
__device__ __forceinline__ float fp8_to_f32(uint8_t b)
{
    uint32_t e = (b >> 3) & 15u, m = b & 7u;
    float v;
    if (e == 0)
        v = (float)m * 0.001953125f; /* subnormal: m * 2^-9 */
    else if (e == 15 && m == 7)
        v = __uint_as_float(0x7fc00000u);
    else
        v = __uint_as_float(((e + 120u) << 23) | (m << 20)); /* (1 + m/8) 2^(e-7) */
    return (b & 0x80u) ? -v : v;
}

/* Round to nearest even; NaN stays a quiet NaN with its sign (as the CPU). */
__device__ __forceinline__ uint16_t f32_to_bf16(float f)
{
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

__device__ __forceinline__ uint16_t f32_to_f16(float f)
{
    uint32_t u = __float_as_uint(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u);
    if (a >= 0x477ff000u)
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) {
        float v = __uint_as_float(a) * 16777216.0f; /* units of 2^-24, exact */
        return (uint16_t)(sign | (uint16_t)rintf(v));
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u) - (112u << 23);
    return (uint16_t)(sign | (uint16_t)(r >> 13));
}

/* Element i of an activation-type array (F32, BF16, F16). */
template <int DT>
__device__ __forceinline__ float elem_load(const void *p, int64_t i)
{
    if constexpr (DT == DT_BF16)
        return bf16_to_f32(((const uint16_t *)p)[i]);
    else if constexpr (DT == DT_F16)
        return f16_to_f32(((const uint16_t *)p)[i]);
    else
        return ((const float *)p)[i];
}

template <int DT>
__device__ __forceinline__ void elem_store(void *p, int64_t i, float v)
{
    if constexpr (DT == DT_BF16)
        ((uint16_t *)p)[i] = f32_to_bf16(v);
    else if constexpr (DT == DT_F16)
        ((uint16_t *)p)[i] = f32_to_f16(v);
    else
        ((float *)p)[i] = v;
}

/* ---- weights ------------------------------------------------------------------ */

/* Element (m, k) of a weight matrix as F32 (FP8 times its block scale). */
template <int DT>
__device__ __forceinline__ float wload(const dsv3_cuda_wmat &w, int64_t m, int64_t k)
{
    int64_t i = (w.row0 + m) * w.K + k;
    if constexpr (DT == DT_F32)
        return ((const float *)w.data)[i];
    else if constexpr (DT == DT_BF16)
        return bf16_to_f32(((const uint16_t *)w.data)[i]);
    else if constexpr (DT == DT_F16)
        return f16_to_f32(((const uint16_t *)w.data)[i]);
    else
        return fp8_to_f32(((const uint8_t *)w.data)[i]) * w.scale[(m >> 7) * w.sk + (k >> 7)];
}

/* ---- reductions ------------------------------------------------------------------ */

/* Sum over the warp; every lane gets the same value (the butterfly adds the
 * same pairs in every lane, and addition is commutative), run after run. */
__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/*
 * The argmax order used by ARGMAX and the router's top-k: a beats b when it
 * is larger, or equal with a lower index; NaN loses to any number; among
 * NaNs the lower index wins. Index -1 marks "nothing" and always loses.
 * This is a total order, so any reduction tree gives the sequential result.
 */
__device__ __forceinline__ bool beats(float av, int ai, float bv, int bi)
{
    if (bi < 0)
        return ai >= 0;
    if (ai < 0)
        return false;
    bool an = av != av, bn = bv != bv;
    if (an != bn)
        return bn;
    if (!an && av != bv)
        return av > bv;
    return ai < bi;
}

/* Warp-wide best (value, index) under `beats`; every lane gets it. */
__device__ __forceinline__ void warp_best(float &v, int &i)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (beats(ov, oi, v, i)) {
            v = ov;
            i = oi;
        }
    }
}

/* ---- launch helpers ---------------------------------------------------------------- */

static inline int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* Blocks for a grid-stride loop over n items. */
static inline unsigned grid_for(int64_t n, int threads)
{
    int64_t b = ceil_div(n, threads);
    if (b < 1)
        b = 1;
    if (b > 65535 * 8)
        b = 65535 * 8;
    return (unsigned)b;
}

static inline int fail(dsv3_cuda_exec *x, int rc, const char *what)
{
    snprintf(x->msg, sizeof x->msg, "%s", what);
    return rc;
}

} /* namespace dsv3cu */

#endif /* DSV3_CUDA_COMMON_CUH */
