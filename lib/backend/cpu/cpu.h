/*
 * cpu.h - the CPU backend: host buffers, CPU feature detection, kernels.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_BACKEND_CPU_H
#define DSV3_BACKEND_CPU_H

#include "../backend.h"

/* CPU features detected at run time (immutable after the first call). */
enum dsv3_cpu_feature {
    DSV3_CPU_AVX2 = 1u << 0,
    DSV3_CPU_FMA = 1u << 1,
    DSV3_CPU_F16C = 1u << 2,
    DSV3_CPU_AVX512F = 1u << 3,
    DSV3_CPU_AVX512BW = 1u << 4,
    DSV3_CPU_NEON = 1u << 5
};

uint32_t dsv3__cpu_features(void);

/* The CPU backend's per-instance state. */
typedef struct dsv3_cpu_state {
    dsv3__alloc alloc;
    dsv3__log log;
    int32_t n_threads;
    uint32_t features;
} dsv3_cpu_state;

/* ---- scalar ops (ops.c, ops_attn.c, ops_moe.c) ---------------------------- */

/* Run one op with n_threads workers (the conformance oracle). */
int dsv3__cpu_run_op(dsv3_cpu_state *s, const dsv3_op_job *job);

/* Work split: fn(arg, worker, i0, i1) runs on `workers` threads (the caller
 * is worker 0), each on a contiguous range of [0, n). Ranges depend only on
 * n and the number of workers; every op computes each output element the
 * same way whatever the split, so results do not depend on it. */
typedef void (*dsv3_cpu_range_fn)(void *arg, int worker, int64_t i0, int64_t i1);
void dsv3__cpu_parallel(int workers, int64_t n, dsv3_cpu_range_fn fn, void *arg);
/* Workers worth using for n items of `cost` scalar operations each. */
int dsv3__cpu_workers(int n_threads, int64_t n, double cost);

/* Shape of a weight matrix (or one expert of a stack): DSV3_OK, or
 * DSV3_E_UNSUPPORTED (dtype) / DSV3_E_INVAL (shape, expert index). */
int dsv3__cpu_weight_dims(const dsv3_tensor *w, int64_t expert, int64_t *M, int64_t *K);
/* Row m of a weight matrix (or expert) as F32: out[0 .. K). */
void dsv3__cpu_weight_row(const dsv3_tensor *w, int64_t expert, int64_t m, int64_t M, int64_t K,
                          float *out);
/* y[t][m] (+)= x[t] . W[m] for t < T, m < M (args already validated). */
int dsv3__cpu_matmul(dsv3_cpu_state *s, int n_threads, const dsv3_op_matmul_args *a);

int dsv3__cpu_mla_attn(dsv3_cpu_state *s, int n_threads, const dsv3_op_mla_attn_args *a);
int dsv3__cpu_mha(dsv3_cpu_state *s, int n_threads, const dsv3_op_mha_args *a);
int dsv3__cpu_route(dsv3_cpu_state *s, const dsv3_op_route_args *a);
int dsv3__cpu_moe(dsv3_cpu_state *s, int n_threads, const dsv3_op_moe_args *a);

#endif /* DSV3_BACKEND_CPU_H */
