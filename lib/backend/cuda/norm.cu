/*
 * norm.cu - RMSNORM: one block per row; the sum of squares is reduced in a
 * fixed order (per-thread strided sums, then a fixed tree), so a row's
 * result is the same run after run.
 * SPDX-License-Identifier: MIT
 */
#include "common.cuh"

using namespace dsv3cu;

namespace dsv3cu {
#define NORM_THREADS 256

__global__ void __launch_bounds__(NORM_THREADS)
    k_rmsnorm(const float *x, float *y, const float *w, int64_t n, int64_t ldx, int64_t ldy,
              float eps)
{
    __shared__ float part[NORM_THREADS / 32];
    __shared__ float inv_s;
    const float *xr = x + (int64_t)blockIdx.x * ldx;
    float *yr = y + (int64_t)blockIdx.x * ldy;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += NORM_THREADS)
        ss += xr[i] * xr[i];
    ss = warp_sum(ss);
    if ((threadIdx.x & 31) == 0)
        part[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x == 0) {
        float t = 0.0f;
        for (int i = 0; i < NORM_THREADS / 32; i++)
            t += part[i];
        inv_s = 1.0f / sqrtf(t / (float)n + eps);
    }
    __syncthreads(); /* every read of the row is done: y may be x */
    float inv = inv_s;
    for (int64_t i = threadIdx.x; i < n; i += NORM_THREADS)
        yr[i] = w[i] * (xr[i] * inv);
}

} /* namespace dsv3cu */

extern "C" int dsv3__cuda_rmsnorm(dsv3_cuda_exec *x, const dsv3_op_rmsnorm_args *a)
{
    if (a->rows < 0 || a->n <= 0 || !a->x || !a->y || !a->weight || a->ldx < a->n || a->ldy < a->n)
        return DSV3_E_INVAL;
    if (a->rows == 0)
        return DSV3_OK;
    if (a->rows > INT32_MAX)
        return DSV3_E_UNSUPPORTED;
    DSV3_LAUNCH((k_rmsnorm), (unsigned)a->rows, NORM_THREADS, 0, x->stream, a->x, a->y, a->weight,
                a->n, a->ldx, a->ldy, a->eps);
    return dsv3__cuda_check(x, "rmsnorm");
}
