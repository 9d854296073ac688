/*
 * backend_check.c - a backend implementation against the CPU backend's
 * scalar ops (see backend_check.h): the two instances, buffers of the
 * backend under test, random data and weights, comparisons, the buffer
 * checks and the suite's TCases (ops in backend_check_ops.c, forward
 * passes in backend_check_model.c).
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_check_int.h"

const dsv3_backend_ops *bc_ops;
dsv3_backend bc_cpu, bc_dut;
int bc_quick; /* skip the largest op shapes */

#define MAX_BUFS 512
static dsv3_buf *bc_dbufs[MAX_BUFS];
size_t bc_n_dbufs;
static void *bc_hbufs[MAX_BUFS];
size_t bc_n_hbufs;

void bc_set_backend(const dsv3_backend_ops *ops)
{
    bc_ops = ops;
}

void bc_open_backends(void)
{
    dsv3_backend_config cfg = {.struct_size = sizeof cfg, .n_threads = 2};
    dsv3__err err = {{0}};
    ck_assert_int_eq(dsv3__backend_open(DSV3_BACKEND_CPU, &cfg, &bc_cpu, &err), DSV3_OK);
    dsv3_backend proto = {.ops = bc_ops};
    int rc = dsv3__backend_open_like(&proto, &cfg, &bc_dut, &err);
    ck_assert_msg(rc == DSV3_OK, "backend under test: %s", err.msg);
    bc_n_dbufs = bc_n_hbufs = 0;
}

/* Release the buffers made since mark (device and host). */
void bc_release_to(size_t dmark, size_t hmark)
{
    while (bc_n_dbufs > dmark)
        bc_dut.ops->buf_free(bc_dut.state, bc_dbufs[--bc_n_dbufs]);
    while (bc_n_hbufs > hmark)
        free(bc_hbufs[--bc_n_hbufs]);
}

void bc_close_backends(void)
{
    bc_release_to(0, 0);
    dsv3__backend_close(&bc_dut);
    dsv3__backend_close(&bc_cpu);
}

void *bc_hmem(size_t n)
{
    ck_assert(bc_n_hbufs < MAX_BUFS);
    void *p = calloc(1, n ? n : 1);
    ck_assert(p != NULL);
    bc_hbufs[bc_n_hbufs++] = p;
    return p;
}

void *bc_hdup(const void *src, size_t n)
{
    return memcpy(bc_hmem(n), src, n);
}

/* Backend memory holding a copy of host[0 .. n) (host NULL: not written). */
void *bc_dput(const void *host, size_t n)
{
    ck_assert(bc_n_dbufs < MAX_BUFS);
    dsv3_buf *b;
    ck_assert_int_eq(bc_dut.ops->buf_alloc(bc_dut.state, n, DSV3_BUF_COMPUTE, &b), DSV3_OK);
    bc_dbufs[bc_n_dbufs++] = b;
    if (host && n)
        ck_assert_int_eq(bc_dut.ops->buf_write(bc_dut.state, b, 0, host, n), DSV3_OK);
    return b->base;
}

void bc_dget(void *host, const void *dev, size_t n)
{
    for (size_t i = 0; i < bc_n_dbufs; i++) {
        const char *base = bc_dbufs[i]->base;
        if ((const char *)dev >= base && (const char *)dev + n <= base + bc_dbufs[i]->size) {
            size_t off = (size_t)((const char *)dev - base);
            ck_assert_int_eq(bc_dut.ops->buf_read(bc_dut.state, bc_dbufs[i], off, host, n),
                             DSV3_OK);
            return;
        }
    }
    ck_abort_msg("no buffer of the backend under test holds %p", dev);
}

int bc_run_on(const dsv3_backend *be, int32_t op, const void *args)
{
    dsv3_op_job job = {.op = op, .n_threads = 2, .args = args};
    return be->ops->run_op(be->state, &job);
}

/* ---- random data ------------------------------------------------------------------ */

static uint64_t bc_rng_state = 0x9e3779b97f4a7c15ull;

uint64_t bc_next_u64(void)
{
    uint64_t z = (bc_rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float bc_frand(void) /* uniform in [-1, 1) */
{
    return (float)((double)(bc_next_u64() >> 11) * 0x1p-52 - 1.0);
}

float *bc_frand_array(size_t n, float scale)
{
    float *p = bc_hmem(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = scale * bc_frand();
    return p;
}

const int32_t bc_wdtypes[4] = {DSV3_DTYPE_F32, DSV3_DTYPE_F16, DSV3_DTYPE_BF16,
                               DSV3_DTYPE_FP8_E4M3};

size_t bc_scale_count(const dsv3_tensor *t)
{
    int64_t E = t->n_dims == 3 ? t->ne[0] : 1, M = t->n_dims == 1 ? 1 : t->ne[t->n_dims - 2];
    int64_t K = t->ne[t->n_dims - 1];
    return (size_t)(E * ((M + 127) / 128) * ((K + 127) / 128));
}

/* A weight [E?][M][K] of dtype with values of about sigma: host tensor h,
 * and d, its copy in the backend under test. */
wpair bc_make_weight(int32_t dtype, int64_t E, int64_t M, int64_t K, float sigma)
{
    wpair w;
    memset(&w, 0, sizeof w);
    w.h.dtype = dtype;
    w.h.n_dims = E ? 3 : 2;
    w.h.ne[0] = E ? E : M;
    w.h.ne[1] = E ? M : K;
    w.h.ne[2] = E ? K : 1;
    w.h.ne[3] = 1;
    w.h.backend = DSV3_BACKEND_CPU;
    size_t n = (size_t)((E ? E : 1) * M * K);
    float a = sigma * 1.7320508f;
    switch (dtype) {
    case DSV3_DTYPE_F32:
        w.h.data = bc_frand_array(n, a);
        w.h.nbytes = n * 4;
        break;
    case DSV3_DTYPE_F16:
    case DSV3_DTYPE_BF16: {
        uint16_t *p = bc_hmem(n * 2);
        for (size_t i = 0; i < n; i++)
            p[i] = dtype == DSV3_DTYPE_F16 ? dsv3__f32_to_f16(a * bc_frand())
                                           : dsv3__f32_to_bf16(a * bc_frand());
        w.h.data = p;
        w.h.nbytes = n * 2;
        break;
    }
    default: { /* e4m3 bytes with exponents 0 ... 10 (subnormals too, no NaN) */
        uint8_t *q = bc_hmem(n);
        for (size_t i = 0; i < n; i++) {
            uint64_t r = bc_next_u64();
            q[i] = (uint8_t)(((r & 1) << 7) | (((r >> 1) % 11) << 3) | ((r >> 5) & 7));
        }
        size_t ns = bc_scale_count(&w.h);
        float *s = bc_hmem(ns * 4);
        for (size_t i = 0; i < ns; i++)
            s[i] = sigma * 0.25f * (1.25f + bc_frand() * 0.75f);
        w.h.data = q;
        w.h.scale = s;
        w.h.nbytes = n;
        break;
    }
    }
    w.d = w.h;
    w.d.backend = bc_ops->id;
    w.d.data = bc_dput(w.h.data, w.h.nbytes);
    if (dtype == DSV3_DTYPE_FP8_E4M3)
        w.d.scale = bc_dput(w.h.scale, bc_scale_count(&w.h) * 4);
    return w;
}

/* ---- comparisons -------------------------------------------------------------------- */

void bc_expect_close(const float *got, const float *want, size_t n, double atol, double rtol,
                     const char *what)
{
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        if (isnan(g) && isnan(w))
            continue;
        double d = fabs(g - w);
        ck_assert_msg(d <= atol + rtol * fabs(w), "%s: element %zu is %.9g, the CPU gives %.9g",
                      what, i, g, w);
    }
}

void bc_expect_same_bits(const void *a, const void *b, size_t n, const char *what)
{
    if (!memcmp(a, b, n))
        return;
    size_t i = 0;
    while (((const unsigned char *)a)[i] == ((const unsigned char *)b)[i])
        i++;
    ck_abort_msg("%s: byte %zu differs", what, i);
}

/* ---- buffers ----------------------------------------------------------------------------------
 */

START_TEST(buffers_copy_and_ranges)
{
    dsv3_buf *b, *z;
    ck_assert_int_eq(bc_dut.ops->buf_alloc(bc_dut.state, 1000, DSV3_BUF_KV, &b), DSV3_OK);
    ck_assert_uint_eq(b->size, 1000);
    ck_assert_int_eq(bc_dut.ops->buf_alloc(bc_dut.state, 0, DSV3_BUF_COMPUTE, &z), DSV3_OK);
    unsigned char in[1000], out[1000];
    for (int i = 0; i < 1000; i++)
        in[i] = (unsigned char)(i * 7 + 3);
    ck_assert_int_eq(bc_dut.ops->buf_write(bc_dut.state, b, 0, in, 1000), DSV3_OK);
    ck_assert_int_eq(bc_dut.ops->buf_write(bc_dut.state, b, 100, in, 50), DSV3_OK);
    ck_assert_int_eq(bc_dut.ops->buf_read(bc_dut.state, b, 90, out, 70), DSV3_OK);
    ck_assert(!memcmp(out, in + 90, 10) && !memcmp(out + 10, in, 50) &&
              !memcmp(out + 60, in + 150, 10));
    ck_assert_int_eq(bc_dut.ops->buf_write(bc_dut.state, b, 990, in, 11), DSV3_E_RANGE);
    ck_assert_int_eq(bc_dut.ops->buf_read(bc_dut.state, b, 1001, out, 0), DSV3_E_RANGE);
    ck_assert_int_eq(bc_dut.ops->buf_read(bc_dut.state, b, SIZE_MAX, out, 2), DSV3_E_RANGE);
    ck_assert_int_eq(bc_dut.ops->buf_read(bc_dut.state, b, 1000, out, 0), DSV3_OK);
    /* memory of one instance is usable through another one */
    dsv3_backend other;
    dsv3_backend_config cfg = {.struct_size = sizeof cfg};
    dsv3__err err;
    ck_assert_int_eq(dsv3__backend_open_like(&bc_dut, &cfg, &other, &err), DSV3_OK);
    memset(out, 0, sizeof out);
    ck_assert_int_eq(other.ops->buf_read(other.state, b, 0, out, 1000), DSV3_OK);
    ck_assert(!memcmp(out + 200, in + 200, 800));
    float fin[250], fout[250];
    ck_assert_int_eq(bc_dut.ops->buf_read(bc_dut.state, b, 0, fin, sizeof fin), DSV3_OK);
    dsv3_op_add_args a = {.a = b->base, .b = b->base, .y = b->base, .n = 250};
    ck_assert_int_eq(bc_run_on(&other, DSV3_OP_ADD, &a), DSV3_OK);
    if (other.ops->sync)
        ck_assert_int_eq(other.ops->sync(other.state), DSV3_OK);
    dsv3__backend_close(&other);
    ck_assert_int_eq(bc_dut.ops->buf_read(bc_dut.state, b, 0, fout, sizeof fout), DSV3_OK);
    for (int i = 0; i < 250; i++)
        ck_assert(isnan(fin[i]) ? isnan(fout[i]) : fout[i] == fin[i] + fin[i]);
    bc_dut.ops->buf_free(bc_dut.state, z);
    bc_dut.ops->buf_free(bc_dut.state, b);
    bc_dut.ops->buf_free(bc_dut.state, NULL);
}
END_TEST

void bc_add_tcases(Suite *s, int with_models)
{
    bc_quick = !with_models;
    TCase *tc = tcase_create("ops");
    tcase_add_checked_fixture(tc, bc_open_backends, bc_close_backends);
    tcase_set_timeout(tc, 600);
    bc_add_op_tests(tc);
    suite_add_tcase(s, tc);

    tc = tcase_create("buffers");
    tcase_add_checked_fixture(tc, bc_open_backends, bc_close_backends);
    tcase_add_test(tc, buffers_copy_and_ranges);
    suite_add_tcase(s, tc);
    if (with_models)
        bc_add_model_tcase(s);
}
