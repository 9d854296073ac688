/*
 * elem.cu - element-wise CUDA ops: COPY (with F32/BF16/F16 conversion),
 * SWIGLU, ADD, and the per-row ARGMAX used for greedy decoding on the
 * device.
 * SPDX-License-Identifier: MIT
 */
#include "common.cuh"

using namespace dsv3cu;

/* ---- COPY ------------------------------------------------------------------------ */

namespace dsv3cu {
template <int SD, int DD>
__global__ void k_copy(const void *src, void *dst, int64_t rows, int64_t cols, int64_t ld_src,
                       int64_t ld_dst)
{
    int64_t n = rows * cols, step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        int64_t r = i / cols, c = i % cols;
        elem_store<DD>(dst, r * ld_dst + c, elem_load<SD>(src, r * ld_src + c));
    }
}

static int elem_size(int32_t dt)
{
    return dt == DSV3_DTYPE_F32 ? 4 : (dt == DSV3_DTYPE_BF16 || dt == DSV3_DTYPE_F16) ? 2 : 0;
}

template <int SD>
static void launch_copy(dsv3_cuda_exec *x, const dsv3_op_copy_args *a, unsigned g)
{
    switch (a->dst_dtype) {
    case DSV3_DTYPE_BF16:
        DSV3_LAUNCH((k_copy<SD, DT_BF16>), g, 256, 0, x->stream, a->src, a->dst, a->rows, a->cols,
                    a->ld_src, a->ld_dst);
        break;
    case DSV3_DTYPE_F16:
        DSV3_LAUNCH((k_copy<SD, DT_F16>), g, 256, 0, x->stream, a->src, a->dst, a->rows, a->cols,
                    a->ld_src, a->ld_dst);
        break;
    default:
        DSV3_LAUNCH((k_copy<SD, DT_F32>), g, 256, 0, x->stream, a->src, a->dst, a->rows, a->cols,
                    a->ld_src, a->ld_dst);
        break;
    }
}

} /* namespace dsv3cu */

extern "C" int dsv3__cuda_copy(dsv3_cuda_exec *x, const dsv3_op_copy_args *a)
{
    int ss = elem_size(a->src_dtype), ds = elem_size(a->dst_dtype);
    if (!ss || !ds)
        return DSV3_E_UNSUPPORTED;
    if (a->rows < 0 || a->cols < 0 || a->ld_src < a->cols || a->ld_dst < a->cols)
        return DSV3_E_INVAL;
    if (a->rows == 0 || a->cols == 0)
        return DSV3_OK;
    if (!a->src || !a->dst)
        return DSV3_E_INVAL;
    if (a->src_dtype == a->dst_dtype) {
        cudaError_t e = cudaMemcpy2DAsync(a->dst, (size_t)a->ld_dst * ds, a->src,
                                          (size_t)a->ld_src * ss, (size_t)a->cols * ss,
                                          (size_t)a->rows, cudaMemcpyDeviceToDevice, x->stream);
        if (e != cudaSuccess) {
            snprintf(x->msg, sizeof x->msg, "copy: %s", cudaGetErrorString(e));
            return DSV3_E_BACKEND;
        }
        return DSV3_OK;
    }
    unsigned g = grid_for(a->rows * a->cols, 256);
    switch (a->src_dtype) {
    case DSV3_DTYPE_BF16:
        launch_copy<DT_BF16>(x, a, g);
        break;
    case DSV3_DTYPE_F16:
        launch_copy<DT_F16>(x, a, g);
        break;
    default:
        launch_copy<DT_F32>(x, a, g);
        break;
    }
    return dsv3__cuda_check(x, "copy");
}

/* ---- SWIGLU, ADD ------------------------------------------------------------------ */

namespace dsv3cu {
__global__ void k_swiglu(const float *g, const float *u, float *y, int64_t n)
{
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        float v = g[i];
        y[i] = v / (1.0f + expf(-v)) * u[i];
    }
}

} /* namespace dsv3cu */

extern "C" int dsv3__cuda_swiglu(dsv3_cuda_exec *x, const dsv3_op_swiglu_args *a)
{
    if (a->n < 0 || (a->n > 0 && (!a->g || !a->u || !a->y)))
        return DSV3_E_INVAL;
    if (a->n == 0)
        return DSV3_OK;
    DSV3_LAUNCH((k_swiglu), grid_for(a->n, 256), 256, 0, x->stream, a->g, a->u, a->y, a->n);
    return dsv3__cuda_check(x, "swiglu");
}

namespace dsv3cu {
__global__ void k_add(const float *p, const float *q, float *y, int64_t n)
{
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step)
        y[i] = p[i] + q[i];
}

} /* namespace dsv3cu */

extern "C" int dsv3__cuda_add(dsv3_cuda_exec *x, const dsv3_op_add_args *a)
{
    if (a->n < 0 || (a->n > 0 && (!a->a || !a->b || !a->y)))
        return DSV3_E_INVAL;
    if (a->n == 0)
        return DSV3_OK;
    DSV3_LAUNCH((k_add), grid_for(a->n, 256), 256, 0, x->stream, a->a, a->b, a->y, a->n);
    return dsv3__cuda_check(x, "add");
}

/* ---- ARGMAX ----------------------------------------------------------------------- */

namespace dsv3cu {
/* One block of 256 threads per row. */
__global__ void __launch_bounds__(256) k_argmax(const float *x, int32_t *out, int64_t n, int64_t ld)
{
    __shared__ float sv[8];
    __shared__ int si[8];
    const float *row = x + (int64_t)blockIdx.x * ld;
    float bv = 0.0f;
    int bi = -1;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        if (beats(row[i], (int)i, bv, bi)) {
            bv = row[i];
            bi = (int)i;
        }
    warp_best(bv, bi);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) {
        sv[warp] = bv;
        si[warp] = bi;
    }
    __syncthreads();
    if (warp == 0) {
        bv = lane < 8 ? sv[lane] : 0.0f;
        bi = lane < 8 ? si[lane] : -1;
        warp_best(bv, bi);
        if (lane == 0)
            out[blockIdx.x] = bi < 0 ? 0 : bi;
    }
}

} /* namespace dsv3cu */

extern "C" int dsv3__cuda_argmax(dsv3_cuda_exec *x, const dsv3_op_argmax_args *a)
{
    if (a->rows < 0 || a->n <= 0 || a->ld < a->n || (a->rows > 0 && (!a->x || !a->out)))
        return DSV3_E_INVAL;
    if (a->n > INT32_MAX || a->rows > INT32_MAX)
        return DSV3_E_UNSUPPORTED;
    if (a->rows == 0)
        return DSV3_OK;
    DSV3_LAUNCH((k_argmax), (unsigned)a->rows, 256, 0, x->stream, a->x, a->out, a->n, a->ld);
    return dsv3__cuda_check(x, "argmax");
}

/* ---- device check ------------------------------------------------------------------ */

namespace dsv3cu {
/* Is there code for the current device in this build (a cubin for its
 * architecture or PTX it can compile)? */

} /* namespace dsv3cu */

extern "C" int dsv3__cuda_kernels_ok(char *msg, size_t cap)
{
    struct cudaFuncAttributes fa;
    cudaError_t e = cudaFuncGetAttributes(&fa, k_add);
    if (e == cudaSuccess)
        return DSV3_OK;
    cudaGetLastError();
    snprintf(msg, cap, "%s", cudaGetErrorString(e));
    return DSV3_E_NODEV;
}
