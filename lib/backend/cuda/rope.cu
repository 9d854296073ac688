/*
 * rope.cu - ROPE: interleaved-pair rotation in place. The angle and its
 * cosine and sine are computed in double precision, as the CPU op does.
 * SPDX-License-Identifier: MIT
 */
#include "common.cuh"

using namespace dsv3cu;

namespace dsv3cu {
__global__ void k_rope(float *x, const float *freqs, int64_t T, int64_t ldx, int64_t offset,
                       int64_t head_stride, int64_t n_heads, int64_t half, int64_t pos0,
                       float scale)
{
    int64_t n = T * n_heads * half, step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t id = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; id < n; id += step) {
        int64_t i = id % half, h = (id / half) % n_heads, t = id / (half * n_heads);
        double phi = (double)(pos0 + t) * (double)freqs[i], sd, cd;
        sincos(phi, &sd, &cd);
        float c = (float)cd * scale, s = (float)sd * scale;
        float *v = x + t * ldx + offset + h * head_stride + 2 * i;
        float x0 = v[0], x1 = v[1];
        v[0] = x0 * c - x1 * s;
        v[1] = x0 * s + x1 * c;
    }
}

} /* namespace dsv3cu */

extern "C" int dsv3__cuda_rope(dsv3_cuda_exec *x, const dsv3_op_rope_args *a)
{
    if (a->T < 0 || a->dim <= 0 || a->dim % 2 || a->n_heads < 0 || a->pos0 < 0 || !a->x ||
        !a->freqs || a->offset < 0)
        return DSV3_E_INVAL;
    if (a->n_heads > 0 && a->offset + (a->n_heads - 1) * a->head_stride + a->dim > a->ldx)
        return DSV3_E_INVAL;
    int64_t n = a->T * a->n_heads * (a->dim / 2);
    if (n == 0)
        return DSV3_OK;
    DSV3_LAUNCH((k_rope), grid_for(n, 256), 256, 0, x->stream, a->x, a->freqs, a->T, a->ldx,
                a->offset, a->head_stride, a->n_heads, a->dim / 2, a->pos0, a->scale);
    return dsv3__cuda_check(x, "rope");
}
