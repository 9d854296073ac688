/*
 * cuda_ops.h - the CUDA backend's internal interface between the vtable
 * (cuda.c, plain C) and the kernels (one .cu file per op family, compiled
 * by nvcc). Launchers validate their arguments like the CPU ops, queue
 * kernels on the instance's stream and never wait for them.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_CUDA_OPS_H
#define DSV3_CUDA_OPS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

/* Test builds that run the kernels on the CPU (tests/cudaemu) link next to
 * the real backend: their symbols get other names. */
#ifdef DSV3_CUDA_EMULATE
#define dsv3__backend_cuda dsv3__backend_cudaemu
#define dsv3__cuda_scratch dsv3__cudaemu_scratch
#define dsv3__cuda_check dsv3__cudaemu_check
#define dsv3__cuda_kernels_ok dsv3__cudaemu_kernels_ok
#define dsv3__cuda_wmat dsv3__cudaemu_wmat
#define dsv3__cuda_rmsnorm dsv3__cudaemu_rmsnorm
#define dsv3__cuda_rope dsv3__cudaemu_rope
#define dsv3__cuda_copy dsv3__cudaemu_copy
#define dsv3__cuda_swiglu dsv3__cudaemu_swiglu
#define dsv3__cuda_add dsv3__cudaemu_add
#define dsv3__cuda_argmax dsv3__cudaemu_argmax
#define dsv3__cuda_matmul dsv3__cudaemu_matmul
#define dsv3__cuda_dequant dsv3__cudaemu_dequant
#define dsv3__cuda_embed dsv3__cudaemu_embed
#define dsv3__cuda_mla_attn dsv3__cudaemu_mla_attn
#define dsv3__cuda_mha dsv3__cudaemu_mha
#define dsv3__cuda_route dsv3__cudaemu_route
#define dsv3__cuda_moe dsv3__cudaemu_moe
#endif

#ifdef __cplusplus
extern "C" {
#endif

#include "../backend.h"

/* What a launcher needs from its backend instance. */
typedef struct dsv3_cuda_exec {
    cudaStream_t stream;
    int n_sm;                  /* multiprocessors of the device */
    void *state;               /* the owning instance (for dsv3__cuda_scratch) */
    char msg[192];             /* detail of the last failure */
} dsv3_cuda_exec;

/*
 * Device scratch of at least `bytes` into *out, owned by the instance and
 * reused by every op: valid for the kernels the current op queues (ops of
 * one instance run one after the other on its stream). DSV3_OK, or
 * DSV3_E_NOMEM / DSV3_E_BACKEND with x->msg set.
 */
int dsv3__cuda_scratch(dsv3_cuda_exec *x, size_t bytes, void **out);

/* DSV3_OK if the kernels queued so far were launched, else DSV3_E_BACKEND
 * with x->msg = "<what>: <CUDA error>". */
int dsv3__cuda_check(dsv3_cuda_exec *x, const char *what);

/* DSV3_OK when this build has code the current device can run; else
 * DSV3_E_NODEV with the CUDA message in msg. */
int dsv3__cuda_kernels_ok(char *msg, size_t cap);

/* A weight matrix (2-D, or one expert of a stack) in device memory. */
typedef struct dsv3_cuda_wmat {
    const void *data;   /* the tensor's first element */
    const float *scale; /* FP8: the expert's scale grid [ceil(M/128)][ceil(K/128)] */
    int64_t row0;       /* first row of the matrix within the tensor (expert * M) */
    int64_t M, K;       /* rows, columns */
    int64_t sk;         /* FP8: scale columns, ceil(K/128) */
    int32_t dtype;      /* F32, F16, BF16 or FP8_E4M3 */
    int32_t n_experts;  /* 1 for a 2-D tensor */
} dsv3_cuda_wmat;

/* Describe w (or its expert `expert`): DSV3_OK, DSV3_E_UNSUPPORTED (dtype)
 * or DSV3_E_INVAL (shape, expert index, missing data or scales), the same
 * rules as the CPU ops. */
int dsv3__cuda_wmat(const dsv3_tensor *w, int64_t expert, dsv3_cuda_wmat *out);

/* Element-wise ops (elem.cu, norm.cu, rope.cu). */
int dsv3__cuda_rmsnorm(dsv3_cuda_exec *x, const dsv3_op_rmsnorm_args *a);
int dsv3__cuda_rope(dsv3_cuda_exec *x, const dsv3_op_rope_args *a);
int dsv3__cuda_copy(dsv3_cuda_exec *x, const dsv3_op_copy_args *a);
int dsv3__cuda_swiglu(dsv3_cuda_exec *x, const dsv3_op_swiglu_args *a);
int dsv3__cuda_add(dsv3_cuda_exec *x, const dsv3_op_add_args *a);
int dsv3__cuda_argmax(dsv3_cuda_exec *x, const dsv3_op_argmax_args *a);

/* Weights (matmul.cu). */
int dsv3__cuda_matmul(dsv3_cuda_exec *x, const dsv3_op_matmul_args *a);
int dsv3__cuda_dequant(dsv3_cuda_exec *x, const dsv3_op_dequant_args *a);
int dsv3__cuda_embed(dsv3_cuda_exec *x, const dsv3_op_embed_args *a);

/* Attention (attn.cu), router (route.cu), routed experts (moe.cu). */
int dsv3__cuda_mla_attn(dsv3_cuda_exec *x, const dsv3_op_mla_attn_args *a);
int dsv3__cuda_mha(dsv3_cuda_exec *x, const dsv3_op_mha_args *a);
int dsv3__cuda_route(dsv3_cuda_exec *x, const dsv3_op_route_args *a);
int dsv3__cuda_moe(dsv3_cuda_exec *x, const dsv3_op_moe_args *a);

#ifdef __cplusplus
}
#endif

#endif /* DSV3_CUDA_OPS_H */
