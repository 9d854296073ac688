/*
 * backend_check.h - conformance of a backend implementation against the
 * CPU backend's scalar ops (the oracle): every op on random inputs of every
 * dtype it takes, buffers, argument errors, and whole forward passes of
 * in-memory models copied onto it (all of the model, or everything but the
 * routed experts, which stay in a CPU backend). Used by the gpu suite
 * (check_cuda.c, the real CUDA backend) and by check_cudaemu.c (the CUDA
 * backend's sources run on the CPU).
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_BACKEND_CHECK_H
#define DSV3_BACKEND_CHECK_H

#include "model/model.h"
#include "testutil.h"

/* The implementation under test; set before the suite runs. */
void bc_set_backend(const dsv3_backend_ops *ops);

/* TCases: "ops" (conformance), "buffers" (copies, ranges, errors) and,
 * with models, "model" (forward passes vs the CPU backend). Without models
 * the ops also skip two of their largest shapes (for slow sanitizer runs). */
void bc_add_tcases(Suite *s, int with_models);

/* A copy of a model's weights in new backend memory: the model computes
 * on a fresh instance of `ops`; with apart, the routed experts go to a CPU
 * backend instead (DSV3_PLACE_EXPERTS_ON_CPU). */
typedef struct bc_model {
    dsv3_model *m;
    dsv3_buf **bufs;
    int *in_cpu; /* bufs[i] belongs to m->be_cpu */
    size_t n, cap;
} bc_model;

void bc_model_copy(const dsv3_model *src, const dsv3_backend_ops *ops, int apart, bc_model *out);
/* Free the model (after its contexts) and the copied weights. */
void bc_model_free(bc_model *bm);

#endif
