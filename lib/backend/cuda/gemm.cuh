/*
 * gemm.cuh - the two matrix-product building blocks shared by matmul.cu and
 * moe.cu (and the tile loop by attn.cu):
 *
 *  - gemv_rows: one warp computes one weight row against up to GEMV_TMAX
 *    activation rows, streaming the weight row once with 16-byte loads when
 *    the layout allows (decode: T = 1);
 *  - tile_loop: a 64 x 64 output tile per block of 256 threads, 4 x 4
 *    outputs per thread, the shared operand tiles in shared memory (prefill).
 *
 * Both accumulate in F32 in an order fixed by the shapes alone, so results
 * do not change from run to run; and both compute each output row the same
 * way whatever the other rows are.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_CUDA_GEMM_CUH
#define DSV3_CUDA_GEMM_CUH

#include "common.cuh"

namespace dsv3cu {

/* ---- GEMV ---------------------------------------------------------------------- */

#define GEMV_WARPS 8 /* weight rows per block of 256 threads */
#define GEMV_TMAX 8  /* activation rows per pass */

/* Elements of a dtype per 16-byte load. */
template <int DT>
struct vec_elems {
    static constexpr int n = DT == DT_F32 ? 4 : DT == DT_FP8 ? 16 : 8;
};

/* Decode one 16-byte group of weights starting at column k0 of row m. */
template <int DT>
__device__ __forceinline__ void wvec(const dsv3_cuda_wmat &w, int64_t m, int64_t k0,
                                     float (&v)[vec_elems<DT>::n])
{
    constexpr int n = vec_elems<DT>::n;
    int64_t i = (w.row0 + m) * w.K + k0;
    if constexpr (DT == DT_F32) {
        float4 q = *(const float4 *)((const float *)w.data + i);
        v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    } else {
        uint4 q = DT == DT_FP8 ? *(const uint4 *)((const uint8_t *)w.data + i)
                               : *(const uint4 *)((const uint16_t *)w.data + i);
        uint32_t u[4] = {q.x, q.y, q.z, q.w};
        if constexpr (DT == DT_FP8) {
            float s = w.scale[(m >> 7) * w.sk + (k0 >> 7)]; /* 16 | 128: one block */
#pragma unroll
            for (int j = 0; j < n; j++)
                v[j] = fp8_to_f32((uint8_t)(u[j / 4] >> (8 * (j % 4)))) * s;
        } else {
#pragma unroll
            for (int j = 0; j < n; j++) {
                uint16_t h = (uint16_t)(u[j / 2] >> (16 * (j % 2)));
                v[j] = DT == DT_BF16 ? bf16_to_f32(h) : f16_to_f32(h);
            }
        }
    }
}

/*
 * acc[t] += (this lane's share of) W[m] . xr[t] for t < nt; the caller sums
 * acc over the warp. VEC: 16-byte weight and activation loads (every xr[t]
 * 16-byte aligned, K a multiple of vec_elems); otherwise one element per
 * lane per step.
 */
template <int DT, bool VEC>
__device__ __forceinline__ void gemv_rows(const dsv3_cuda_wmat &w, int64_t m,
                                          const float *const (&xr)[GEMV_TMAX], int nt,
                                          float (&acc)[GEMV_TMAX])
{
    int lane = threadIdx.x & 31;
    if constexpr (VEC) {
        constexpr int n = vec_elems<DT>::n;
        for (int64_t k0 = (int64_t)lane * n; k0 < w.K; k0 += 32 * n) {
            float v[n];
            wvec<DT>(w, m, k0, v);
#pragma unroll
            for (int t = 0; t < GEMV_TMAX; t++) {
                if (t >= nt)
                    break;
                const float4 *xp = (const float4 *)(xr[t] + k0);
                float s = 0.0f;
#pragma unroll
                for (int j = 0; j < n / 4; j++) {
                    float4 q = xp[j];
                    s += v[4 * j] * q.x + v[4 * j + 1] * q.y + v[4 * j + 2] * q.z +
                         v[4 * j + 3] * q.w;
                }
                acc[t] += s;
            }
        }
    } else {
        for (int64_t k = lane; k < w.K; k += 32) {
            float v = wload<DT>(w, m, k);
#pragma unroll
            for (int t = 0; t < GEMV_TMAX; t++) {
                if (t >= nt)
                    break;
                acc[t] += v * xr[t][k];
            }
        }
    }
}

/* ---- tiled GEMM ------------------------------------------------------------------ */

#define TILE_T 64 /* activation rows per tile */
#define TILE_M 64 /* weight rows (outputs) per tile */
#define TILE_K 32 /* reduction step */
#define TILE_THREADS 256

typedef float tile_smem[TILE_K][TILE_M + 1];

/*
 * acc[i][j] = sum_k X(t0 + ty + 16 i, k) * W(m0 + tx + 16 j, k) over k < K,
 * ascending k, for the block's 64 x 64 tile (tx = thread % 16, ty =
 * thread / 16). XF: float operator()(int64_t t, int64_t k), called for
 * t < T, k < K only; WF likewise with (m, k), m < M. W_MCONTIG: W is
 * contiguous along m (transposed storage), so loads walk m.
 */
template <bool W_MCONTIG, class XF, class WF>
__device__ __forceinline__ void tile_loop(const XF &xf, const WF &wf, int64_t t0, int64_t m0,
                                          int64_t T, int64_t M, int64_t K, tile_smem &xs,
                                          tile_smem &ws, float (&acc)[4][4])
{
    int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
            acc[i][j] = 0.0f;
    for (int64_t k0 = 0; k0 < K; k0 += TILE_K) {
#pragma unroll
        for (int i = 0; i < TILE_T * TILE_K / TILE_THREADS; i++) {
            int idx = tid + TILE_THREADS * i;
            int r = idx >> 5, kk = idx & 31; /* a warp walks k of one row */
            int64_t t = t0 + r, k = k0 + kk;
            xs[kk][r] = (t < T && k < K) ? xf(t, k) : 0.0f;
            if constexpr (W_MCONTIG) {
                r = idx & 63;
                kk = idx >> 6;
                k = k0 + kk;
            }
            int64_t m = m0 + r;
            ws[kk][r] = (m < M && k < K) ? wf(m, k) : 0.0f;
        }
        __syncthreads();
#pragma unroll 8
        for (int kk = 0; kk < TILE_K; kk++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++)
                a[i] = xs[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; j++)
                b[j] = ws[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++)
                    acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
}

/* Row-major F32 activations. */
struct XRows {
    const float *x;
    int64_t ld;
    __device__ __forceinline__ float operator()(int64_t t, int64_t k) const
    {
        return x[t * ld + k];
    }
};

/* Activation rows gathered through an index list: row t is x[rows[t]]. */
struct XGather {
    const float *x;
    int64_t ld;
    const int32_t *rows;
    __device__ __forceinline__ float operator()(int64_t t, int64_t k) const
    {
        return x[(int64_t)rows[t] * ld + k];
    }
};

template <int DT>
struct WTensor {
    dsv3_cuda_wmat w;
    __device__ __forceinline__ float operator()(int64_t m, int64_t k) const
    {
        return wload<DT>(w, m, k);
    }
};

/* Can gemv_rows use 16-byte loads for this weight? (The activations are
 * checked by the caller.) */
static inline bool wmat_vec_ok(const dsv3_cuda_wmat &w)
{
    int es = w.dtype == DT_F32 ? 4 : w.dtype == DT_FP8 ? 1 : 2;
    int n = 16 / es;
    return ((uintptr_t)w.data % 16) == 0 && w.K % n == 0;
}

static inline bool rows_vec_ok(const float *x, int64_t ld)
{
    return ((uintptr_t)x % 16) == 0 && ld % 4 == 0;
}

} /* namespace dsv3cu */

#endif /* DSV3_CUDA_GEMM_CUH */
