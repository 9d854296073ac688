/*
 * matmul.cu - ops that read weight matrices: MATMUL (F32, F16, BF16, FP8
 * e4m3 with 128 x 128 block scales), DEQUANT and EMBED.
 *
 * MATMUL picks by the number of activation rows T: up to GEMV_TMAX rows a
 * warp-per-output-row GEMV (decode streams each weight row once with
 * 16-byte loads); more rows the 64 x 64 tiled GEMM. Both accumulate in F32
 * in an order that depends only on the shapes.
 * SPDX-License-Identifier: MIT
 */
#include "gemm.cuh"

using namespace dsv3cu;

/* ---- MATMUL ------------------------------------------------------------------------ */

namespace dsv3cu {
template <int DT, bool VEC>
__global__ void __launch_bounds__(256) k_gemv(dsv3_cuda_wmat w, const float *x, int64_t ldx,
                                              float *y, int64_t ldy, int nt, int accumulate)
{
    int64_t m = (int64_t)blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    if (m >= w.M)
        return; /* the whole warp */
    const float *xr[GEMV_TMAX];
    float acc[GEMV_TMAX];
#pragma unroll
    for (int t = 0; t < GEMV_TMAX; t++) {
        xr[t] = x + (t < nt ? t : 0) * ldx;
        acc[t] = 0.0f;
    }
    gemv_rows<DT, VEC>(w, m, xr, nt, acc);
#pragma unroll
    for (int t = 0; t < GEMV_TMAX; t++) {
        if (t >= nt)
            break;
        float s = warp_sum(acc[t]);
        if ((threadIdx.x & 31) == 0) {
            float *yp = y + t * ldy + m;
            *yp = accumulate ? *yp + s : s;
        }
    }
}

template <int DT>
__global__ void __launch_bounds__(TILE_THREADS)
    k_gemm(dsv3_cuda_wmat w, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t T,
           int accumulate)
{
    __shared__ tile_smem xs, ws;
    float acc[4][4];
    int64_t m0 = (int64_t)blockIdx.x * TILE_M, t0 = (int64_t)blockIdx.y * TILE_T;
    tile_loop<false>(XRows{x, ldx}, WTensor<DT>{w}, t0, m0, T, w.M, w.K, xs, ws, acc);
    int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int64_t t = t0 + ty + 16 * i, m = m0 + tx + 16 * j;
            if (t < T && m < w.M) {
                float *yp = y + t * ldy + m;
                *yp = accumulate ? *yp + acc[i][j] : acc[i][j];
            }
        }
}

template <int DT>
static void launch_matmul(dsv3_cuda_exec *x, const dsv3_cuda_wmat &w, const dsv3_op_matmul_args *a)
{
    if (a->T > GEMV_TMAX) {
        dim3 grid((unsigned)ceil_div(w.M, TILE_M), (unsigned)ceil_div(a->T, TILE_T));
        DSV3_LAUNCH((k_gemm<DT>), grid, TILE_THREADS, 0, x->stream, w, a->x, a->ldx, a->y, a->ldy,
                    a->T, a->accumulate);
        return;
    }
    unsigned blocks = (unsigned)ceil_div(w.M, GEMV_WARPS);
    if (wmat_vec_ok(w) && rows_vec_ok(a->x, a->ldx))
        DSV3_LAUNCH((k_gemv<DT, true>), blocks, 256, 0, x->stream, w, a->x, a->ldx, a->y, a->ldy,
                    (int)a->T, a->accumulate);
    else
        DSV3_LAUNCH((k_gemv<DT, false>), blocks, 256, 0, x->stream, w, a->x, a->ldx, a->y, a->ldy,
                    (int)a->T, a->accumulate);
}

} /* namespace dsv3cu */

extern "C" int dsv3__cuda_matmul(dsv3_cuda_exec *x, const dsv3_op_matmul_args *a)
{
    dsv3_cuda_wmat w;
    int rc = dsv3__cuda_wmat(a->w, a->expert, &w);
    if (rc)
        return rc;
    if (a->T < 0 || (a->T > 0 && (!a->x || !a->y || a->ldx < w.K || a->ldy < w.M)))
        return DSV3_E_INVAL;
    if (a->T == 0)
        return DSV3_OK;
    if (ceil_div(w.M, GEMV_WARPS) > INT32_MAX || ceil_div(a->T, TILE_T) > 65535)
        return DSV3_E_UNSUPPORTED;
    switch (w.dtype) {
    case DSV3_DTYPE_F32:
        launch_matmul<DT_F32>(x, w, a);
        break;
    case DSV3_DTYPE_F16:
        launch_matmul<DT_F16>(x, w, a);
        break;
    case DSV3_DTYPE_BF16:
        launch_matmul<DT_BF16>(x, w, a);
        break;
    default:
        launch_matmul<DT_FP8>(x, w, a);
        break;
    }
    return dsv3__cuda_check(x, "matmul");
}

/* ---- DEQUANT, EMBED ------------------------------------------------------------------- */

namespace dsv3cu {
/* y[r][k] = W[row(r)][k] for r < rows; row(r) = tokens ? tokens[r] : row0 + r
 * (a token outside [0, M) gives a row of zeros). */
template <int DT>
__global__ void k_rows(dsv3_cuda_wmat w, const int32_t *tokens, int64_t row0, int64_t rows,
                       float *y, int64_t ldy)
{
    int64_t n = rows * w.K, step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        int64_t r = i / w.K, k = i % w.K;
        int64_t m = tokens ? (int64_t)tokens[r] : row0 + r;
        y[r * ldy + k] = (m >= 0 && m < w.M) ? wload<DT>(w, m, k) : 0.0f;
    }
}

static void launch_rows(dsv3_cuda_exec *x, const dsv3_cuda_wmat &w, const int32_t *tokens,
                        int64_t row0, int64_t rows, float *y, int64_t ldy)
{
    unsigned g = grid_for(rows * w.K, 256);
    switch (w.dtype) {
    case DSV3_DTYPE_F32:
        DSV3_LAUNCH((k_rows<DT_F32>), g, 256, 0, x->stream, w, tokens, row0, rows, y, ldy);
        break;
    case DSV3_DTYPE_F16:
        DSV3_LAUNCH((k_rows<DT_F16>), g, 256, 0, x->stream, w, tokens, row0, rows, y, ldy);
        break;
    case DSV3_DTYPE_BF16:
        DSV3_LAUNCH((k_rows<DT_BF16>), g, 256, 0, x->stream, w, tokens, row0, rows, y, ldy);
        break;
    default:
        DSV3_LAUNCH((k_rows<DT_FP8>), g, 256, 0, x->stream, w, tokens, row0, rows, y, ldy);
        break;
    }
}

} /* namespace dsv3cu */

extern "C" int dsv3__cuda_dequant(dsv3_cuda_exec *x, const dsv3_op_dequant_args *a)
{
    dsv3_cuda_wmat w;
    int rc = dsv3__cuda_wmat(a->w, a->expert, &w);
    if (rc)
        return rc;
    if (!a->y || a->row0 < 0 || a->rows < 0 || a->row0 + a->rows > w.M)
        return DSV3_E_INVAL;
    if (a->rows == 0)
        return DSV3_OK;
    launch_rows(x, w, NULL, a->row0, a->rows, a->y, w.K);
    return dsv3__cuda_check(x, "dequant");
}

namespace dsv3cu {
/* The caller checks the token ids (they are in device memory here); an id
 * outside the table gives a row of zeros instead of DSV3_E_RANGE. */

} /* namespace dsv3cu */

extern "C" int dsv3__cuda_embed(dsv3_cuda_exec *x, const dsv3_op_embed_args *a)
{
    dsv3_cuda_wmat w;
    int rc = dsv3__cuda_wmat(a->table, 0, &w);
    if (rc)
        return rc;
    if (a->n < 0 || (a->n > 0 && (!a->tokens || !a->out || a->ld_out < w.K)))
        return DSV3_E_INVAL;
    if (a->n == 0)
        return DSV3_OK;
    launch_rows(x, w, a->tokens, 0, a->n, a->out, a->ld_out);
    return dsv3__cuda_check(x, "embed");
}
