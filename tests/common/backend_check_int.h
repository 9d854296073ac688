/*
 * backend_check_int.h - state and helpers shared by backend_check.c (the
 * backends, buffers, data, comparisons), backend_check_ops.c (the ops)
 * and backend_check_model.c (forward passes). Test code only.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_BACKEND_CHECK_INT_H
#define DSV3_BACKEND_CHECK_INT_H

#include "backend_check.h"

extern const dsv3_backend_ops *bc_ops; /* under test */
extern dsv3_backend bc_cpu, bc_dut;    /* the oracle and an instance under test */
extern int bc_quick;                   /* skip the largest op shapes */
extern size_t bc_n_dbufs, bc_n_hbufs;  /* marks for bc_release_to */
extern const int32_t bc_wdtypes[4];    /* F32, F16, BF16, FP8 */

/* Fixture: both instances; teardown releases every buffer. */
void bc_open_backends(void);
void bc_close_backends(void);
/* Release the buffers made since the marks (device and host). */
void bc_release_to(size_t dmark, size_t hmark);
/* Host memory (zeroed) and a copy of src, released by bc_release_to. */
void *bc_hmem(size_t n);
void *bc_hdup(const void *src, size_t n);
/* Memory of the backend under test with a copy of host (NULL: not
 * written), and a copy back to host. */
void *bc_dput(const void *host, size_t n);
void bc_dget(void *host, const void *dev, size_t n);
int bc_run_on(const dsv3_backend *be, int32_t op, const void *args);

uint64_t bc_next_u64(void);
float bc_frand(void); /* uniform in [-1, 1) */
float *bc_frand_array(size_t n, float scale);

/* FP8 scale values of a weight tensor. */
size_t bc_scale_count(const dsv3_tensor *t);
/* A weight [E?][M][K] of dtype with values of about sigma: host tensor h,
 * and d, its copy in the backend under test. */
typedef struct wpair {
    dsv3_tensor h, d;
} wpair;
wpair bc_make_weight(int32_t dtype, int64_t E, int64_t M, int64_t K, float sigma);

/* got within atol + rtol |want| of want (both NaN passes); same bytes. */
void bc_expect_close(const float *got, const float *want, size_t n, double atol, double rtol,
                     const char *what);
void bc_expect_same_bits(const void *a, const void *b, size_t n, const char *what);

void bc_add_op_tests(TCase *tc);   /* backend_check_ops.c */
void bc_add_model_tcase(Suite *s); /* backend_check_model.c */

#endif
