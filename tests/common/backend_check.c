/*
 * backend_check.c - a backend implementation against the CPU backend's
 * scalar ops (see backend_check.h). Every op runs on random inputs on both
 * backends; results must agree within tolerances that F32 accumulation in
 * another order explains (1e-4 relative for products and attention, exact
 * for data movement and conversions), and a second run on the backend
 * under test must give the same bits.
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_check.h"
#include "tinymodel.h"

static const dsv3_backend_ops *ut_ops;
static dsv3_backend cpu, dut;
static int quick; /* skip the largest op shapes */

#define MAX_BUFS 512
static dsv3_buf *dbufs[MAX_BUFS];
static size_t n_dbufs;
static void *hbufs[MAX_BUFS];
static size_t n_hbufs;

void bc_set_backend(const dsv3_backend_ops *ops)
{
    ut_ops = ops;
}

static void open_backends(void)
{
    dsv3_backend_config cfg = {.struct_size = sizeof cfg, .n_threads = 2};
    dsv3__err err = {{0}};
    ck_assert_int_eq(dsv3__backend_open(DSV3_BACKEND_CPU, &cfg, &cpu, &err), DSV3_OK);
    dsv3_backend proto = {.ops = ut_ops};
    int rc = dsv3__backend_open_like(&proto, &cfg, &dut, &err);
    ck_assert_msg(rc == DSV3_OK, "backend under test: %s", err.msg);
    n_dbufs = n_hbufs = 0;
}

/* Release the buffers made since mark (device and host). */
static void release_to(size_t dmark, size_t hmark)
{
    while (n_dbufs > dmark)
        dut.ops->buf_free(dut.state, dbufs[--n_dbufs]);
    while (n_hbufs > hmark)
        free(hbufs[--n_hbufs]);
}

static void close_backends(void)
{
    release_to(0, 0);
    dsv3__backend_close(&dut);
    dsv3__backend_close(&cpu);
}

static void *hmem(size_t n)
{
    ck_assert(n_hbufs < MAX_BUFS);
    void *p = calloc(1, n ? n : 1);
    ck_assert(p != NULL);
    hbufs[n_hbufs++] = p;
    return p;
}

static void *hdup(const void *src, size_t n)
{
    return memcpy(hmem(n), src, n);
}

/* Backend memory holding a copy of host[0 .. n) (host NULL: not written). */
static void *dput(const void *host, size_t n)
{
    ck_assert(n_dbufs < MAX_BUFS);
    dsv3_buf *b;
    ck_assert_int_eq(dut.ops->buf_alloc(dut.state, n, DSV3_BUF_COMPUTE, &b), DSV3_OK);
    dbufs[n_dbufs++] = b;
    if (host && n)
        ck_assert_int_eq(dut.ops->buf_write(dut.state, b, 0, host, n), DSV3_OK);
    return b->base;
}

static void dget(void *host, const void *dev, size_t n)
{
    for (size_t i = 0; i < n_dbufs; i++) {
        const char *base = dbufs[i]->base;
        if ((const char *)dev >= base && (const char *)dev + n <= base + dbufs[i]->size) {
            size_t off = (size_t)((const char *)dev - base);
            ck_assert_int_eq(dut.ops->buf_read(dut.state, dbufs[i], off, host, n), DSV3_OK);
            return;
        }
    }
    ck_abort_msg("no buffer of the backend under test holds %p", dev);
}

static int run_on(const dsv3_backend *be, int32_t op, const void *args)
{
    dsv3_op_job job = {.op = op, .n_threads = 2, .args = args};
    return be->ops->run_op(be->state, &job);
}

/* ---- random data ------------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t next_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float frand(void) /* uniform in [-1, 1) */
{
    return (float)((double)(next_u64() >> 11) * 0x1p-52 - 1.0);
}

static float *frand_array(size_t n, float scale)
{
    float *p = hmem(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = scale * frand();
    return p;
}

static const int32_t wdtypes[] = {DSV3_DTYPE_F32, DSV3_DTYPE_F16, DSV3_DTYPE_BF16,
                                  DSV3_DTYPE_FP8_E4M3};

static size_t scale_count(const dsv3_tensor *t)
{
    int64_t E = t->n_dims == 3 ? t->ne[0] : 1, M = t->n_dims == 1 ? 1 : t->ne[t->n_dims - 2];
    int64_t K = t->ne[t->n_dims - 1];
    return (size_t)(E * ((M + 127) / 128) * ((K + 127) / 128));
}

/* A weight [E?][M][K] of dtype with values of about sigma: host tensor h,
 * and d, its copy in the backend under test. */
typedef struct wpair {
    dsv3_tensor h, d;
} wpair;

static wpair make_weight(int32_t dtype, int64_t E, int64_t M, int64_t K, float sigma)
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
        w.h.data = frand_array(n, a);
        w.h.nbytes = n * 4;
        break;
    case DSV3_DTYPE_F16:
    case DSV3_DTYPE_BF16: {
        uint16_t *p = hmem(n * 2);
        for (size_t i = 0; i < n; i++)
            p[i] = dtype == DSV3_DTYPE_F16 ? dsv3__f32_to_f16(a * frand())
                                           : dsv3__f32_to_bf16(a * frand());
        w.h.data = p;
        w.h.nbytes = n * 2;
        break;
    }
    default: { /* e4m3 bytes with exponents 0 ... 10 (subnormals too, no NaN) */
        uint8_t *q = hmem(n);
        for (size_t i = 0; i < n; i++) {
            uint64_t r = next_u64();
            q[i] = (uint8_t)(((r & 1) << 7) | (((r >> 1) % 11) << 3) | ((r >> 5) & 7));
        }
        size_t ns = scale_count(&w.h);
        float *s = hmem(ns * 4);
        for (size_t i = 0; i < ns; i++)
            s[i] = sigma * 0.25f * (1.25f + frand() * 0.75f);
        w.h.data = q;
        w.h.scale = s;
        w.h.nbytes = n;
        break;
    }
    }
    w.d = w.h;
    w.d.backend = ut_ops->id;
    w.d.data = dput(w.h.data, w.h.nbytes);
    if (dtype == DSV3_DTYPE_FP8_E4M3)
        w.d.scale = dput(w.h.scale, scale_count(&w.h) * 4);
    return w;
}

/* ---- comparisons -------------------------------------------------------------------- */

static void expect_close(const float *got, const float *want, size_t n, double atol, double rtol,
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

static void expect_same_bits(const void *a, const void *b, size_t n, const char *what)
{
    if (!memcmp(a, b, n))
        return;
    size_t i = 0;
    while (((const unsigned char *)a)[i] == ((const unsigned char *)b)[i])
        i++;
    ck_abort_msg("%s: byte %zu differs", what, i);
}

/* ---- MATMUL, DEQUANT, EMBED -------------------------------------------------------------- */

typedef struct mm_case {
    int64_t T, M, K, E, expert, ldx_pad, ldy_pad;
    int accumulate;
} mm_case;

static const mm_case mm_cases[] = {
    {1, 37, 100, 0, 0, 0, 0, 0},   /* K not a multiple of 8: element-wise loads */
    {1, 300, 256, 0, 0, 0, 0, 0},  /* 16-byte loads */
    {3, 130, 200, 0, 0, 5, 3, 1},  /* padded rows, accumulate */
    {8, 64, 384, 3, 2, 0, 0, 0},   /* one expert of a stack, the most GEMV rows */
    {9, 70, 150, 0, 0, 2, 0, 1},   /* tiled */
    {70, 129, 257, 2, 1, 0, 7, 0}, /* several tiles both ways, partial FP8 blocks */
};

START_TEST(op_matmul)
{
    for (size_t di = 0; di < DSV3__ARRAY_LEN(wdtypes); di++)
        for (size_t ci = 0; ci < DSV3__ARRAY_LEN(mm_cases); ci++) {
            size_t dm = n_dbufs, hm = n_hbufs;
            const mm_case *c = &mm_cases[ci];
            int32_t dt = wdtypes[di];
            char what[96];
            snprintf(what, sizeof what, "matmul %s case %zu", dsv3__dtype_name(dt), ci);
            wpair w = make_weight(dt, c->E, c->M, c->K, 1.0f / sqrtf((float)c->K));
            int64_t ldx = c->K + c->ldx_pad, ldy = c->M + c->ldy_pad;
            size_t nx = (size_t)(c->T * ldx), ny = (size_t)(c->T * ldy);
            float *x = frand_array(nx, 1), *y0 = frand_array(ny, 1);
            float *yc = hdup(y0, ny * 4), *yd = hmem(ny * 4), *yd2 = hmem(ny * 4);
            dsv3_op_matmul_args a = {.w = &w.h,
                                     .expert = c->expert,
                                     .x = x,
                                     .y = yc,
                                     .T = c->T,
                                     .ldx = ldx,
                                     .ldy = ldy,
                                     .accumulate = c->accumulate};
            ck_assert_int_eq(run_on(&cpu, DSV3_OP_MATMUL, &a), DSV3_OK);
            float *dy = dput(y0, ny * 4);
            a.w = &w.d;
            a.x = dput(x, nx * 4);
            a.y = dy;
            ck_assert_int_eq(run_on(&dut, DSV3_OP_MATMUL, &a), DSV3_OK);
            dget(yd, dy, ny * 4);
            expect_close(yd, yc, ny, 1e-4, 1e-4, what);
            if (!c->accumulate) { /* the same bits again */
                ck_assert_int_eq(run_on(&dut, DSV3_OP_MATMUL, &a), DSV3_OK);
                dget(yd2, dy, ny * 4);
                expect_same_bits(yd, yd2, ny * 4, what);
            }
            release_to(dm, hm);
        }
}
END_TEST

/* Decode property: with up to 8 rows, a row's result does not depend on the
 * other rows of the call (a token alone = the same token in a small batch). */
START_TEST(op_matmul_rows_independent)
{
    for (size_t di = 0; di < DSV3__ARRAY_LEN(wdtypes); di++) {
        size_t dm = n_dbufs, hm = n_hbufs;
        wpair w = make_weight(wdtypes[di], 0, 200, 512, 0.05f);
        float *x = frand_array(5 * 512, 1);
        float *y1 = hmem(200 * 4), *y5 = hmem(5 * 200 * 4);
        float *dx = dput(x, 5 * 512 * 4), *dy = dput(NULL, 5 * 200 * 4);
        dsv3_op_matmul_args a = {
            .w = &w.d, .x = dx + 512 * 3, .y = dy, .T = 1, .ldx = 512, .ldy = 200};
        ck_assert_int_eq(run_on(&dut, DSV3_OP_MATMUL, &a), DSV3_OK);
        dget(y1, dy, 200 * 4);
        a.x = dx;
        a.T = 5;
        ck_assert_int_eq(run_on(&dut, DSV3_OP_MATMUL, &a), DSV3_OK);
        dget(y5, dy, 5 * 200 * 4);
        expect_same_bits(y1, y5 + 3 * 200, 200 * 4, dsv3__dtype_name(wdtypes[di]));
        release_to(dm, hm);
    }
}
END_TEST

START_TEST(op_dequant_embed)
{
    for (size_t di = 0; di < DSV3__ARRAY_LEN(wdtypes); di++) {
        size_t dm = n_dbufs, hm = n_hbufs;
        int32_t dt = wdtypes[di];
        wpair w = make_weight(dt, 2, 200, 300, 0.1f);
        float *yc = hmem(190 * 300 * 4), *yd = hmem(190 * 300 * 4);
        dsv3_op_dequant_args a = {.w = &w.h, .expert = 1, .row0 = 5, .rows = 190, .y = yc};
        ck_assert_int_eq(run_on(&cpu, DSV3_OP_DEQUANT, &a), DSV3_OK);
        float *dy = dput(NULL, 190 * 300 * 4);
        a.w = &w.d;
        a.y = dy;
        ck_assert_int_eq(run_on(&dut, DSV3_OP_DEQUANT, &a), DSV3_OK);
        dget(yd, dy, 190 * 300 * 4);
        expect_same_bits(yd, yc, 190 * 300 * 4, "dequant");

        wpair t = make_weight(dt, 0, 50, 70, 1);
        int32_t tok[5] = {0, 49, 7, 7, 23};
        float *oc = frand_array(5 * 80, 1), *od = hmem(5 * 80 * 4);
        float *dout = dput(oc, 5 * 80 * 4);
        dsv3_op_embed_args e = {.table = &t.h, .tokens = tok, .out = oc, .n = 5, .ld_out = 80};
        ck_assert_int_eq(run_on(&cpu, DSV3_OP_EMBED, &e), DSV3_OK);
        e.table = &t.d;
        e.tokens = dput(tok, sizeof tok);
        e.out = dout;
        ck_assert_int_eq(run_on(&dut, DSV3_OP_EMBED, &e), DSV3_OK);
        dget(od, dout, 5 * 80 * 4);
        expect_same_bits(od, oc, 5 * 80 * 4, "embed"); /* padding untouched too */
        release_to(dm, hm);
    }
}
END_TEST

/* ---- element-wise ops ------------------------------------------------------------------ */

START_TEST(op_rmsnorm_rope)
{
    float *x = frand_array(5 * 310, 2), *wt = frand_array(300, 1);
    float *yc = frand_array(5 * 305, 1), *yd = hmem(5 * 305 * 4);
    float *dx = dput(x, 5 * 310 * 4), *dy = dput(yc, 5 * 305 * 4);
    dsv3_op_rmsnorm_args a = {
        .x = x, .y = yc, .weight = wt, .rows = 5, .n = 300, .ldx = 310, .ldy = 305, .eps = 1e-6f};
    ck_assert_int_eq(run_on(&cpu, DSV3_OP_RMSNORM, &a), DSV3_OK);
    a.x = dx;
    a.y = dy;
    a.weight = dput(wt, 300 * 4);
    ck_assert_int_eq(run_on(&dut, DSV3_OP_RMSNORM, &a), DSV3_OK);
    dget(yd, dy, 5 * 305 * 4);
    expect_close(yd, yc, 5 * 305, 1e-6, 1e-5, "rmsnorm");
    /* in place */
    float *xc = hdup(x, 5 * 310 * 4), *xd = hmem(5 * 310 * 4);
    a.x = a.y = xc;
    a.ldy = 310;
    a.weight = wt;
    ck_assert_int_eq(run_on(&cpu, DSV3_OP_RMSNORM, &a), DSV3_OK);
    a.x = a.y = dx;
    a.weight = dput(wt, 300 * 4);
    ck_assert_int_eq(run_on(&dut, DSV3_OP_RMSNORM, &a), DSV3_OK);
    dget(xd, dx, 5 * 310 * 4);
    expect_close(xd, xc, 5 * 310, 1e-6, 1e-5, "rmsnorm in place");

    /* RoPE: 4 heads of 16 at offset 8, stride 24, rows of 100, positions 1000 ... */
    float fr[8];
    for (int i = 0; i < 8; i++)
        fr[i] = powf(10000.0f, -2.0f * (float)i / 16.0f);
    float *rc = frand_array(3 * 100, 1), *rd = hmem(3 * 100 * 4);
    float *drx = dput(rc, 3 * 100 * 4);
    dsv3_op_rope_args r = {.x = rc,
                           .freqs = fr,
                           .T = 3,
                           .ldx = 100,
                           .offset = 8,
                           .head_stride = 24,
                           .n_heads = 4,
                           .dim = 16,
                           .pos0 = 1000,
                           .scale = 1.25f};
    ck_assert_int_eq(run_on(&cpu, DSV3_OP_ROPE, &r), DSV3_OK);
    r.x = drx;
    r.freqs = dput(fr, sizeof fr);
    ck_assert_int_eq(run_on(&dut, DSV3_OP_ROPE, &r), DSV3_OK);
    dget(rd, drx, 3 * 100 * 4);
    expect_close(rd, rc, 300, 1e-6, 1e-5, "rope");
}
END_TEST

/* Special values for the conversions: signed zeros, subnormals of both
 * formats, halfway cases, overflow to infinity, NaN. */
static void fill_special(float *v, size_t n)
{
    /* halfway cases: 1 + 2^-8 and 1 + 3 2^-8 for BF16, 1 + 2^-11 and
     * 1 + 3 2^-11 for F16 (to even: down, then up) */
    static const float sp[] = {
        0.0f,           -0.0f,          1e-8f,       -3e-6f,      6.1e-5f,     65504.0f,
        65520.0f,       70000.0f,       -1e30f,      1.00390625f, 1.01171875f, 1.005859375f,
        1.00048828125f, 1.00146484375f, 3.14159265f, INFINITY,    -INFINITY,   NAN};
    for (size_t i = 0; i < n; i++)
        v[i] = i < DSV3__ARRAY_LEN(sp) ? sp[i] : 100.0f * frand();
}

START_TEST(op_copy)
{
    static const int32_t dts[] = {DSV3_DTYPE_F32, DSV3_DTYPE_BF16, DSV3_DTYPE_F16};
    for (size_t si = 0; si < 3; si++)
        for (size_t di = 0; di < 3; di++) {
            size_t dm = n_dbufs, hm = n_hbufs;
            int32_t sd = dts[si], dd = dts[di];
            size_t ss = sd == DSV3_DTYPE_F32 ? 4 : 2, ds = dd == DSV3_DTYPE_F32 ? 4 : 2;
            float *v = hmem(7 * 40 * 4);
            fill_special(v, 7 * 40);
            /* the source in its own format */
            void *src = hmem(7 * 40 * ss);
            dsv3_op_copy_args cv = {.src = v,
                                    .dst = src,
                                    .src_dtype = DSV3_DTYPE_F32,
                                    .dst_dtype = sd,
                                    .rows = 7,
                                    .cols = 40,
                                    .ld_src = 40,
                                    .ld_dst = 40};
            ck_assert_int_eq(run_on(&cpu, DSV3_OP_COPY, &cv), DSV3_OK);
            void *dc = hmem(7 * 35 * ds), *dd_host = hmem(7 * 35 * ds);
            memset(dc, 0x5a, 7 * 35 * ds);
            void *ddst = dput(dc, 7 * 35 * ds);
            dsv3_op_copy_args a = {.src = src,
                                   .dst = dc,
                                   .src_dtype = sd,
                                   .dst_dtype = dd,
                                   .rows = 7,
                                   .cols = 33,
                                   .ld_src = 40,
                                   .ld_dst = 35};
            ck_assert_int_eq(run_on(&cpu, DSV3_OP_COPY, &a), DSV3_OK);
            a.src = dput(src, 7 * 40 * ss);
            a.dst = ddst;
            ck_assert_int_eq(run_on(&dut, DSV3_OP_COPY, &a), DSV3_OK);
            dget(dd_host, ddst, 7 * 35 * ds);
            char what[64];
            snprintf(what, sizeof what, "copy %s -> %s", dsv3__dtype_name(sd),
                     dsv3__dtype_name(dd));
            expect_same_bits(dd_host, dc, 7 * 35 * ds, what);
            release_to(dm, hm);
        }
}
END_TEST

START_TEST(op_swiglu_add_argmax)
{
    size_t n = 1000;
    float *g = frand_array(n, 6), *u = frand_array(n, 2), *yc = hmem(n * 4), *yd = hmem(n * 4);
    float *dg = dput(g, n * 4), *du = dput(u, n * 4), *dy = dput(NULL, n * 4);
    dsv3_op_swiglu_args s = {.g = g, .u = u, .y = yc, .n = (int64_t)n};
    ck_assert_int_eq(run_on(&cpu, DSV3_OP_SWIGLU, &s), DSV3_OK);
    dsv3_op_swiglu_args sd = {.g = dg, .u = du, .y = dy, .n = (int64_t)n};
    ck_assert_int_eq(run_on(&dut, DSV3_OP_SWIGLU, &sd), DSV3_OK);
    dget(yd, dy, n * 4);
    expect_close(yd, yc, n, 1e-6, 1e-5, "swiglu");
    sd.y = dg; /* in place */
    ck_assert_int_eq(run_on(&dut, DSV3_OP_SWIGLU, &sd), DSV3_OK);
    dget(yd, dg, n * 4);
    expect_close(yd, yc, n, 1e-6, 1e-5, "swiglu in place");

    dsv3_op_add_args a = {.a = g, .b = u, .y = yc, .n = (int64_t)n};
    ck_assert_int_eq(run_on(&cpu, DSV3_OP_ADD, &a), DSV3_OK);
    dsv3_op_add_args ad = {.a = dput(g, n * 4), .b = du, .y = du, .n = (int64_t)n};
    ck_assert_int_eq(run_on(&dut, DSV3_OP_ADD, &ad), DSV3_OK);
    dget(yd, du, n * 4);
    expect_same_bits(yd, yc, n * 4, "add");

    /* argmax: random; a tie (lower index wins); NaNs that must not win; all
     * NaN; all -inf; max in the last column */
    int64_t ld = 1003, rows = 6;
    float *x = frand_array((size_t)(rows * ld), 1);
    x[1 * ld + 10] = x[1 * ld + 900] = 5;
    x[2 * ld + 0] = x[2 * ld + 5] = NAN;
    x[2 * ld + 777] = 3;
    for (int64_t i = 0; i < 1000; i++) {
        x[3 * ld + i] = NAN;
        x[4 * ld + i] = -INFINITY;
    }
    x[5 * ld + 999] = 7;
    int32_t oc[6], od[6];
    dsv3_op_argmax_args m = {.x = x, .out = oc, .rows = rows, .n = 1000, .ld = ld};
    ck_assert_int_eq(run_on(&cpu, DSV3_OP_ARGMAX, &m), DSV3_OK);
    int32_t *dout = dput(NULL, sizeof od);
    m.x = dput(x, (size_t)(rows * ld) * 4);
    m.out = dout;
    ck_assert_int_eq(run_on(&dut, DSV3_OP_ARGMAX, &m), DSV3_OK);
    dget(od, dout, sizeof od);
    for (int r = 0; r < 6; r++)
        ck_assert_msg(od[r] == oc[r], "argmax row %d: %d, the CPU gives %d", r, od[r], oc[r]);
    ck_assert_int_eq(oc[1], 10);
    ck_assert_int_eq(oc[2], 777);
    ck_assert_int_eq(oc[5], 999);
}
END_TEST

/* ---- ROUTE, MOE -------------------------------------------------------------------------- */

typedef struct route_case {
    int64_t E, k, G, topk_group;
    int32_t scoring, groups, renorm, bias;
    float scaling;
} route_case;

START_TEST(op_route)
{
    static const route_case cs[] = {
        {64, 6, 8, 3, DSV3_ROUTE_SIGMOID, DSV3_GROUPS_TOP2, 1, 1, 2.5f}, /* V3 */
        {32, 4, 4, 2, DSV3_ROUTE_SOFTMAX, DSV3_GROUPS_MAX, 0, 0, 1.0f},  /* V2 */
        {16, 3, 1, 1, DSV3_ROUTE_SOFTMAX, DSV3_GROUPS_NONE, 1, 0, 1.0f}, /* V2-Lite */
        {256, 8, 8, 4, DSV3_ROUTE_SIGMOID, DSV3_GROUPS_TOP2, 1, 1, 2.5f},
    };
    for (size_t ci = 0; ci < DSV3__ARRAY_LEN(cs); ci++) {
        size_t dm = n_dbufs, hm = n_hbufs;
        const route_case *c = &cs[ci];
        int64_t T = 7, ld = c->E + 3;
        float *z = frand_array((size_t)(T * ld), 3), *b = frand_array((size_t)c->E, 0.1f);
        int32_t *ic = hmem((size_t)(T * c->k) * 4), *id = hmem((size_t)(T * c->k) * 4);
        float *wc = hmem((size_t)(T * c->k) * 4), *wd = hmem((size_t)(T * c->k) * 4);
        dsv3_op_route_args a = {.logits = z,
                                .bias = c->bias ? b : NULL,
                                .idx = ic,
                                .weight = wc,
                                .T = T,
                                .ld = ld,
                                .n_experts = c->E,
                                .k = c->k,
                                .n_group = c->G,
                                .topk_group = c->topk_group,
                                .scoring = c->scoring,
                                .groups = c->groups,
                                .renorm = c->renorm,
                                .scaling = c->scaling};
        ck_assert_int_eq(run_on(&cpu, DSV3_OP_ROUTE, &a), DSV3_OK);
        int32_t *di = dput(NULL, (size_t)(T * c->k) * 4);
        float *dw = dput(NULL, (size_t)(T * c->k) * 4);
        a.logits = dput(z, (size_t)(T * ld) * 4);
        a.bias = c->bias ? dput(b, (size_t)c->E * 4) : NULL;
        a.idx = di;
        a.weight = dw;
        ck_assert_int_eq(run_on(&dut, DSV3_OP_ROUTE, &a), DSV3_OK);
        dget(id, di, (size_t)(T * c->k) * 4);
        dget(wd, dw, (size_t)(T * c->k) * 4);
        for (int64_t i = 0; i < T * c->k; i++)
            ck_assert_msg(id[i] == ic[i], "route case %zu: choice %lld is %d, the CPU gives %d", ci,
                          (long long)i, id[i], ic[i]);
        expect_close(wd, wc, (size_t)(T * c->k), 1e-7, 1e-5, "route weights");
        release_to(dm, hm);
    }
}
END_TEST

/* Every token picks expert 5 for all its choices: the expert has more rows
 * than tokens (the CPU op adds the duplicates up as well). */
START_TEST(op_moe_duplicate_choices)
{
    int64_t E = 8, k = 4, d = 64, f = 48;
    static const int64_t Ts[] = {3, 70};
    for (size_t ti = 0; ti < 2; ti++) {
        size_t dm = n_dbufs, hm = n_hbufs;
        int64_t T = Ts[ti];
        wpair g = make_weight(DSV3_DTYPE_BF16, E, f, d, 0.1f);
        wpair u = make_weight(DSV3_DTYPE_BF16, E, f, d, 0.1f);
        wpair dn = make_weight(DSV3_DTYPE_BF16, E, d, f, 0.1f);
        float *x = frand_array((size_t)(T * d), 1), *wt = frand_array((size_t)(T * k), 1);
        int32_t *idx = hmem((size_t)(T * k) * 4);
        for (int64_t i = 0; i < T * k; i++)
            idx[i] = (i % k == 3 && i % 2) ? 1 : 5;
        float *yc = hmem((size_t)(T * d) * 4), *yd = hmem((size_t)(T * d) * 4);
        float *dy = dput(NULL, (size_t)(T * d) * 4);
        dsv3_op_moe_args a = {.gate = &g.h,
                              .up = &u.h,
                              .down = &dn.h,
                              .x = x,
                              .idx = idx,
                              .weight = wt,
                              .y = yc,
                              .T = T,
                              .k = k,
                              .ldx = d,
                              .ldy = d};
        ck_assert_int_eq(run_on(&cpu, DSV3_OP_MOE, &a), DSV3_OK);
        a.gate = &g.d;
        a.up = &u.d;
        a.down = &dn.d;
        a.x = dput(x, (size_t)(T * d) * 4);
        a.idx = dput(idx, (size_t)(T * k) * 4);
        a.weight = dput(wt, (size_t)(T * k) * 4);
        a.y = dy;
        ck_assert_int_eq(run_on(&dut, DSV3_OP_MOE, &a), DSV3_OK);
        dget(yd, dy, (size_t)(T * d) * 4);
        expect_close(yd, yc, (size_t)(T * d), 1e-4, 1e-4, "moe with repeated experts");
        release_to(dm, hm);
    }
}
END_TEST

START_TEST(op_moe)
{
    static const int64_t Ts[] = {1, 5, 9, 40, 300};
    int64_t E = 16, k = 4, d = 96, f = 80;
    for (size_t di = 0; di < DSV3__ARRAY_LEN(wdtypes); di++)
        for (size_t ti = 0; ti < DSV3__ARRAY_LEN(Ts); ti++) {
            if (quick && (Ts[ti] == 5 || Ts[ti] == 40))
                continue;
            size_t dm = n_dbufs, hm = n_hbufs;
            int64_t T = Ts[ti], ldx = d + 4, ldy = d + 2;
            wpair g = make_weight(wdtypes[di], E, f, d, 1 / sqrtf((float)d));
            wpair u = make_weight(wdtypes[di], E, f, d, 1 / sqrtf((float)d));
            wpair dn = make_weight(wdtypes[di], E, d, f, 1 / sqrtf((float)f));
            float *x = frand_array((size_t)(T * ldx), 1), *wt = hmem((size_t)(T * k) * 4);
            int32_t *idx = hmem((size_t)(T * k) * 4);
            for (int64_t t = 0; t < T; t++) { /* k distinct experts, expert 3 never */
                int32_t perm[16];
                for (int i = 0; i < 16; i++)
                    perm[i] = i;
                for (int64_t j = 0; j < k; j++) {
                    int32_t r;
                    do {
                        r = (int32_t)(j + (int64_t)(next_u64() % (uint64_t)(16 - j)));
                    } while (perm[r] == 3);
                    int32_t tmp = perm[j];
                    perm[j] = perm[r];
                    perm[r] = tmp;
                    idx[t * k + j] = perm[j];
                    wt[t * k + j] = 0.1f + 0.9f * fabsf(frand());
                }
            }
            float *yc = frand_array((size_t)(T * ldy), 1), *yd = hmem((size_t)(T * ldy) * 4);
            float *dy = dput(yc, (size_t)(T * ldy) * 4);
            dsv3_op_moe_args a = {.gate = &g.h,
                                  .up = &u.h,
                                  .down = &dn.h,
                                  .x = x,
                                  .idx = idx,
                                  .weight = wt,
                                  .y = yc,
                                  .T = T,
                                  .k = k,
                                  .ldx = ldx,
                                  .ldy = ldy};
            ck_assert_int_eq(run_on(&cpu, DSV3_OP_MOE, &a), DSV3_OK);
            a.gate = &g.d;
            a.up = &u.d;
            a.down = &dn.d;
            a.x = dput(x, (size_t)(T * ldx) * 4);
            a.idx = dput(idx, (size_t)(T * k) * 4);
            a.weight = dput(wt, (size_t)(T * k) * 4);
            a.y = dy;
            ck_assert_int_eq(run_on(&dut, DSV3_OP_MOE, &a), DSV3_OK);
            dget(yd, dy, (size_t)(T * ldy) * 4);
            char what[64];
            snprintf(what, sizeof what, "moe %s T=%lld", dsv3__dtype_name(wdtypes[di]),
                     (long long)T);
            expect_close(yd, yc, (size_t)(T * ldy), 1e-4, 1e-4, what);
            release_to(dm, hm);
        }
}
END_TEST

/* ---- attention ---------------------------------------------------------------------------- */

typedef struct mla_case {
    int64_t n_h, d_n, d_r, d_v, r, T, pos0;
} mla_case;

static const mla_case mla_cases[] = {
    {5, 16, 8, 12, 40, 1, 0},       /* first token */
    {5, 16, 8, 12, 40, 1, 600},     /* decode over three chunks of the cache */
    {5, 16, 8, 12, 40, 5, 300},     /* prefill on a cache */
    {5, 16, 8, 12, 40, 70, 10},     /* more rows than one pass */
    {2, 128, 64, 128, 512, 2, 260}, /* DeepSeek-V3's head dims */
};

/* Inputs of one MLA case; cache rows of F32 or BF16. */
typedef struct mla_in {
    float *q, *wkv;
    void *cache;
    int64_t ldq, ld_cache, ld_out;
} mla_in;

static mla_in mla_make(const mla_case *c, int32_t cache_dtype)
{
    mla_in in;
    int64_t n_kv = c->pos0 + c->T, dq = c->d_n + c->d_r;
    in.ldq = c->n_h * dq + 3;
    in.ld_cache = c->r + c->d_r + 3;
    in.ld_out = c->n_h * c->d_v + 1;
    in.q = frand_array((size_t)(c->T * in.ldq), 1);
    in.wkv = frand_array((size_t)(c->n_h * (c->d_n + c->d_v) * c->r), 1 / sqrtf((float)c->r));
    float *cf = frand_array((size_t)(n_kv * in.ld_cache), 1);
    if (cache_dtype == DSV3_DTYPE_BF16) {
        uint16_t *cb = hmem((size_t)(n_kv * in.ld_cache) * 2);
        for (int64_t i = 0; i < n_kv * in.ld_cache; i++)
            cb[i] = dsv3__f32_to_bf16(cf[i]);
        in.cache = cb;
    } else {
        in.cache = cf;
    }
    return in;
}

static void mla_args(const mla_case *c, const mla_in *in, int32_t cache_dtype,
                     dsv3_op_mla_attn_args *a)
{
    *a = (dsv3_op_mla_attn_args){.q = in->q,
                                 .cache = in->cache,
                                 .wkv_b = in->wkv,
                                 .cache_dtype = cache_dtype,
                                 .T = c->T,
                                 .pos0 = c->pos0,
                                 .n_heads = c->n_h,
                                 .d_nope = c->d_n,
                                 .d_rope = c->d_r,
                                 .d_v = c->d_v,
                                 .kv_rank = c->r,
                                 .ldq = in->ldq,
                                 .ld_cache = in->ld_cache,
                                 .ld_out = in->ld_out,
                                 .scale = 1.0f / sqrtf((float)(c->d_n + c->d_r))};
}

START_TEST(op_mla_attn)
{
    static const int32_t cds[] = {DSV3_DTYPE_F32, DSV3_DTYPE_BF16};
    for (size_t ci = 0; ci < DSV3__ARRAY_LEN(mla_cases); ci++)
        for (size_t k = 0; k < 2; k++) {
            if (quick && mla_cases[ci].T > 64)
                continue;
            size_t dm = n_dbufs, hm = n_hbufs;
            const mla_case *c = &mla_cases[ci];
            mla_in in = mla_make(c, cds[k]);
            size_t no = (size_t)(c->T * in.ld_out), es = cds[k] == DSV3_DTYPE_BF16 ? 2 : 4;
            size_t nc = (size_t)((c->pos0 + c->T) * in.ld_cache) * es;
            float *oc = frand_array(no, 1), *od = hmem(no * 4), *od2 = hmem(no * 4);
            float *dout = dput(oc, no * 4);
            dsv3_op_mla_attn_args a;
            mla_args(c, &in, cds[k], &a);
            a.out = oc;
            ck_assert_int_eq(run_on(&cpu, DSV3_OP_MLA_ATTN, &a), DSV3_OK);
            a.q = dput(in.q, (size_t)(c->T * in.ldq) * 4);
            a.cache = dput(in.cache, nc);
            a.wkv_b = dput(in.wkv, (size_t)(c->n_h * (c->d_n + c->d_v) * c->r) * 4);
            a.out = dout;
            ck_assert_int_eq(run_on(&dut, DSV3_OP_MLA_ATTN, &a), DSV3_OK);
            dget(od, dout, no * 4);
            char what[64];
            snprintf(what, sizeof what, "mla_attn case %zu %s cache", ci, k ? "bf16" : "f32");
            expect_close(od, oc, no, 1e-4, 1e-4, what);
            ck_assert_int_eq(run_on(&dut, DSV3_OP_MLA_ATTN, &a), DSV3_OK);
            dget(od2, dout, no * 4);
            expect_same_bits(od, od2, no * 4, what);
            release_to(dm, hm);
        }
}
END_TEST

/* A query's result does not depend on the other rows of the call: the last
 * row of a prefill equals the same query decoded alone. */
START_TEST(op_mla_decode_equals_prefill)
{
    const mla_case *c = &mla_cases[2];
    mla_in in = mla_make(c, DSV3_DTYPE_F32);
    size_t no = (size_t)(c->T * in.ld_out);
    float *op = hmem(no * 4), *o1 = hmem((size_t)in.ld_out * 4);
    float *dout = dput(NULL, no * 4), *dq = dput(in.q, (size_t)(c->T * in.ldq) * 4);
    dsv3_op_mla_attn_args a;
    mla_args(c, &in, DSV3_DTYPE_F32, &a);
    a.q = dq;
    a.cache = dput(in.cache, (size_t)((c->pos0 + c->T) * in.ld_cache) * 4);
    a.wkv_b = dput(in.wkv, (size_t)(c->n_h * (c->d_n + c->d_v) * c->r) * 4);
    a.out = dout;
    ck_assert_int_eq(run_on(&dut, DSV3_OP_MLA_ATTN, &a), DSV3_OK);
    dget(op, dout, no * 4);
    a.q = dq + (c->T - 1) * in.ldq;
    a.pos0 = c->pos0 + c->T - 1;
    a.T = 1;
    ck_assert_int_eq(run_on(&dut, DSV3_OP_MLA_ATTN, &a), DSV3_OK);
    dget(o1, dout, (size_t)in.ld_out * 4);
    expect_same_bits(o1, op + (c->T - 1) * in.ld_out, (size_t)(c->n_h * c->d_v) * 4,
                     "decode vs prefill row");
}
END_TEST

START_TEST(op_mha)
{
    int64_t T = 3, pos0 = 5, n_h = 3, dn = 16, dr = 8, dv = 12, n_kv = pos0 + T;
    int64_t ldq = n_h * (dn + dr) + 2, ld_kv = n_h * (dn + dv) + 1, ld_kr = dr + 3,
            ld_out = n_h * dv;
    float *q = frand_array((size_t)(T * ldq), 1), *kv = frand_array((size_t)(n_kv * ld_kv), 1);
    float *kr = frand_array((size_t)(n_kv * ld_kr), 1);
    float *oc = hmem((size_t)(T * ld_out) * 4), *od = hmem((size_t)(T * ld_out) * 4);
    float *dout = dput(NULL, (size_t)(T * ld_out) * 4);
    dsv3_op_mha_args a = {.q = q,
                          .kv = kv,
                          .k_rope = kr,
                          .out = oc,
                          .T = T,
                          .pos0 = pos0,
                          .n_heads = n_h,
                          .d_nope = dn,
                          .d_rope = dr,
                          .d_v = dv,
                          .ldq = ldq,
                          .ld_kv = ld_kv,
                          .ld_kr = ld_kr,
                          .ld_out = ld_out,
                          .scale = 0.2f};
    ck_assert_int_eq(run_on(&cpu, DSV3_OP_MHA, &a), DSV3_OK);
    a.q = dput(q, (size_t)(T * ldq) * 4);
    a.kv = dput(kv, (size_t)(n_kv * ld_kv) * 4);
    a.k_rope = dput(kr, (size_t)(n_kv * ld_kr) * 4);
    a.out = dout;
    ck_assert_int_eq(run_on(&dut, DSV3_OP_MHA, &a), DSV3_OK);
    dget(od, dout, (size_t)(T * ld_out) * 4);
    expect_close(od, oc, (size_t)(T * ld_out), 1e-5, 1e-5, "mha");
}
END_TEST

/* ---- argument errors, supports -------------------------------------------------------------- */

/* Both backends refuse the same bad arguments with the same code. */
START_TEST(op_errors_match_cpu)
{
    float *dx = dput(NULL, 4096), *dy = dput(NULL, 4096);
    wpair w = make_weight(DSV3_DTYPE_BF16, 0, 8, 16, 0.1f);
    dsv3_tensor q8 = w.d;
    q8.dtype = DSV3_DTYPE_Q8_0;
    dsv3_tensor nodata = w.d;
    nodata.data = NULL;
    dsv3_op_matmul_args m[] = {
        {.w = &w.d, .x = dx, .y = dy, .T = 1, .ldx = 15, .ldy = 8}, /* ldx < K */
        {.w = &w.d, .x = dx, .y = dy, .T = 1, .ldx = 16, .ldy = 7}, /* ldy < M */
        {.w = &w.d, .expert = 1, .x = dx, .y = dy, .T = 1, .ldx = 16, .ldy = 8},
        {.w = &q8, .x = dx, .y = dy, .T = 1, .ldx = 16, .ldy = 8},
        {.w = &nodata, .x = dx, .y = dy, .T = 1, .ldx = 16, .ldy = 8},
        {.w = &w.d, .x = dx, .y = dy, .T = -1, .ldx = 16, .ldy = 8},
    };
    for (size_t i = 0; i < DSV3__ARRAY_LEN(m); i++) {
        int rc = run_on(&dut, DSV3_OP_MATMUL, &m[i]);
        ck_assert_msg(rc != DSV3_OK && rc == run_on(&cpu, DSV3_OP_MATMUL, &m[i]),
                      "matmul case %zu: %d", i, rc);
    }
    dsv3_op_copy_args c = {.src = dx,
                           .dst = dy,
                           .src_dtype = DSV3_DTYPE_FP8_E4M3,
                           .dst_dtype = DSV3_DTYPE_F32,
                           .rows = 1,
                           .cols = 4,
                           .ld_src = 4,
                           .ld_dst = 4};
    ck_assert_int_eq(run_on(&dut, DSV3_OP_COPY, &c), DSV3_E_UNSUPPORTED);
    dsv3_op_route_args r = {
        .logits = dx, .idx = (int32_t *)dy, .weight = dy, .T = 1, .ld = 8, .n_experts = 8, .k = 9};
    ck_assert_int_eq(run_on(&dut, DSV3_OP_ROUTE, &r), DSV3_E_INVAL);
    dsv3_op_mla_attn_args a;
    mla_args(&mla_cases[0], &(mla_in){dx, dx, dx, 64, 64, 64}, DSV3_DTYPE_F16, &a);
    a.out = dy;
    ck_assert_int_eq(run_on(&dut, DSV3_OP_MLA_ATTN, &a), DSV3_E_UNSUPPORTED);
    ck_assert_int_eq(run_on(&cpu, DSV3_OP_MLA_ATTN, &a), DSV3_E_UNSUPPORTED);
    dsv3_op_job job = {.op = DSV3_OP__COUNT, .args = &a};
    ck_assert_int_eq(dut.ops->run_op(dut.state, &job), DSV3_E_UNSUPPORTED);
    job.op = DSV3_OP_ADD;
    job.args = NULL;
    ck_assert_int_eq(dut.ops->run_op(dut.state, &job), DSV3_E_INVAL);
    for (int32_t op = 1; op < DSV3_OP__COUNT; op++)
        for (int32_t dt = 0; dt <= DSV3_DTYPE_Q4; dt++)
            ck_assert_msg(dut.ops->supports(dut.state, op, dt) ==
                              cpu.ops->supports(cpu.state, op, dt),
                          "supports(op %d, dtype %d) differs from the CPU backend", op, dt);
}
END_TEST

/* ---- buffers ----------------------------------------------------------------------------------
 */

START_TEST(buffers_copy_and_ranges)
{
    dsv3_buf *b, *z;
    ck_assert_int_eq(dut.ops->buf_alloc(dut.state, 1000, DSV3_BUF_KV, &b), DSV3_OK);
    ck_assert_uint_eq(b->size, 1000);
    ck_assert_int_eq(dut.ops->buf_alloc(dut.state, 0, DSV3_BUF_COMPUTE, &z), DSV3_OK);
    unsigned char in[1000], out[1000];
    for (int i = 0; i < 1000; i++)
        in[i] = (unsigned char)(i * 7 + 3);
    ck_assert_int_eq(dut.ops->buf_write(dut.state, b, 0, in, 1000), DSV3_OK);
    ck_assert_int_eq(dut.ops->buf_write(dut.state, b, 100, in, 50), DSV3_OK);
    ck_assert_int_eq(dut.ops->buf_read(dut.state, b, 90, out, 70), DSV3_OK);
    ck_assert(!memcmp(out, in + 90, 10) && !memcmp(out + 10, in, 50) &&
              !memcmp(out + 60, in + 150, 10));
    ck_assert_int_eq(dut.ops->buf_write(dut.state, b, 990, in, 11), DSV3_E_RANGE);
    ck_assert_int_eq(dut.ops->buf_read(dut.state, b, 1001, out, 0), DSV3_E_RANGE);
    ck_assert_int_eq(dut.ops->buf_read(dut.state, b, SIZE_MAX, out, 2), DSV3_E_RANGE);
    ck_assert_int_eq(dut.ops->buf_read(dut.state, b, 1000, out, 0), DSV3_OK);
    /* memory of one instance is usable through another one */
    dsv3_backend other;
    dsv3_backend_config cfg = {.struct_size = sizeof cfg};
    dsv3__err err;
    ck_assert_int_eq(dsv3__backend_open_like(&dut, &cfg, &other, &err), DSV3_OK);
    memset(out, 0, sizeof out);
    ck_assert_int_eq(other.ops->buf_read(other.state, b, 0, out, 1000), DSV3_OK);
    ck_assert(!memcmp(out + 200, in + 200, 800));
    float fin[250], fout[250];
    ck_assert_int_eq(dut.ops->buf_read(dut.state, b, 0, fin, sizeof fin), DSV3_OK);
    dsv3_op_add_args a = {.a = b->base, .b = b->base, .y = b->base, .n = 250};
    ck_assert_int_eq(run_on(&other, DSV3_OP_ADD, &a), DSV3_OK);
    if (other.ops->sync)
        ck_assert_int_eq(other.ops->sync(other.state), DSV3_OK);
    dsv3__backend_close(&other);
    ck_assert_int_eq(dut.ops->buf_read(dut.state, b, 0, fout, sizeof fout), DSV3_OK);
    for (int i = 0; i < 250; i++)
        ck_assert(isnan(fin[i]) ? isnan(fout[i]) : fout[i] == fin[i] + fin[i]);
    dut.ops->buf_free(dut.state, z);
    dut.ops->buf_free(dut.state, b);
    dut.ops->buf_free(dut.state, NULL);
}
END_TEST

/* ---- models ------------------------------------------------------------------------------------
 */

static void *mput(bc_model *bm, const dsv3_backend *be, int in_cpu, const void *src, size_t n)
{
    if (bm->n == bm->cap) {
        bm->cap = bm->cap ? 2 * bm->cap : 256;
        bm->bufs = realloc(bm->bufs, bm->cap * sizeof *bm->bufs);
        bm->in_cpu = realloc(bm->in_cpu, bm->cap * sizeof *bm->in_cpu);
        ck_assert(bm->bufs && bm->in_cpu);
    }
    dsv3_buf *b;
    ck_assert_int_eq(be->ops->buf_alloc(be->state, n, DSV3_BUF_WEIGHTS, &b), DSV3_OK);
    ck_assert_int_eq(be->ops->buf_write(be->state, b, 0, src, n), DSV3_OK);
    bm->bufs[bm->n] = b;
    bm->in_cpu[bm->n++] = in_cpu;
    return b->base;
}

static void tput(bc_model *bm, dsv3_tensor *t, int in_cpu)
{
    if (!t->data)
        return;
    const dsv3_backend *be = in_cpu ? &bm->m->be_cpu : &bm->m->be;
    size_t n =
        t->nbytes ? t->nbytes : (size_t)dsv3__tensor_nelem(t) * dsv3__dtype_row_bytes(t->dtype, 1);
    t->data = mput(bm, be, in_cpu, t->data, n);
    if (t->dtype == DSV3_DTYPE_FP8_E4M3 && t->scale)
        t->scale = mput(bm, be, in_cpu, t->scale, scale_count(t) * 4);
    t->backend = be->ops->id;
}

static void layer_put(bc_model *bm, dsv3_layer_weights *w, int apart)
{
    dsv3_tensor *t[] = {
        &w->attn_norm, &w->q_a,    &w->q_a_norm,    &w->q_b,         &w->q,         &w->kv_a,
        &w->kv_a_norm, &w->kv_b,   &w->o,           &w->ffn_norm,    &w->mlp.gate,  &w->mlp.up,
        &w->mlp.down,  &w->router, &w->router_bias, &w->shared.gate, &w->shared.up, &w->shared.down,
        &w->enorm,     &w->hnorm,  &w->eh_proj,     &w->head_norm,   &w->embed,     &w->head,
    };
    for (size_t i = 0; i < DSV3__ARRAY_LEN(t); i++)
        tput(bm, t[i], 0);
    tput(bm, &w->exp_gate, apart);
    tput(bm, &w->exp_up, apart);
    tput(bm, &w->exp_down, apart);
}

void bc_model_copy(const dsv3_model *src, const dsv3_backend_ops *ops, int apart, bc_model *bm)
{
    memset(bm, 0, sizeof *bm);
    dsv3__alloc a;
    dsv3__alloc_init(&a, NULL);
    dsv3_model *m = dsv3__calloc(&a, 1, sizeof *m);
    ck_assert(m != NULL);
    m->magic = DSV3__MAGIC_MODEL;
    atomic_init(&m->refs, 1);
    m->alloc = a;
    pthread_mutex_init(&m->err_lock, NULL);
    dsv3_model_params_init(&m->params, sizeof m->params);
    m->params.backend = ops->id;
    m->params.placement = apart ? DSV3_PLACE_EXPERTS_ON_CPU : DSV3_PLACE_DEFAULT;
    m->hp = src->hp;
    bm->m = m;
    dsv3_backend_config cfg = {.struct_size = sizeof cfg, .alloc = &m->alloc, .log = &m->log};
    dsv3_backend proto = {.ops = ops};
    int rc = dsv3__backend_open_like(&proto, &cfg, &m->be, &m->err);
    ck_assert_msg(rc == DSV3_OK, "%s", m->err.msg);
    if (apart)
        ck_assert_int_eq(dsv3__backend_open(DSV3_BACKEND_CPU, &cfg, &m->be_cpu, &m->err), DSV3_OK);
    m->w = src->w;
    m->w.layers = dsv3__calloc(&m->alloc, (size_t)src->w.n_layers, sizeof *m->w.layers);
    ck_assert(m->w.layers != NULL);
    memcpy(m->w.layers, src->w.layers, (size_t)src->w.n_layers * sizeof *m->w.layers);
    tput(bm, &m->w.embed, 0);
    tput(bm, &m->w.norm, 0);
    tput(bm, &m->w.head, 0);
    for (int32_t l = 0; l < m->w.n_layers; l++)
        layer_put(bm, &m->w.layers[l], apart);
    rc = dsv3__fwd_model_init(m);
    ck_assert_msg(rc == DSV3_OK, "fwd_model_init: %s", m->err.msg);
    ck_assert_int_eq(m->fwd->experts_apart, apart && m->hp.n_routed_experts > 0);
}

void bc_model_free(bc_model *bm)
{
    dsv3_model *m = bm->m;
    for (size_t i = 0; i < bm->n; i++) {
        const dsv3_backend *be = bm->in_cpu[i] ? &m->be_cpu : &m->be;
        be->ops->buf_free(be->state, bm->bufs[i]);
    }
    free(bm->bufs);
    free(bm->in_cpu);
    dsv3_model_free(m);
    memset(bm, 0, sizeof *bm);
}

static tm_model tm_bf16, tm_fp8;

static void models_setup(void)
{
    dsv3_hparams hp = tm_tiny_hparams();
    ck_assert_int_eq(tm_model_init(&tm_bf16, &hp, DSV3_DTYPE_BF16, 1, 7, NULL), DSV3_OK);
    hp.q_lora_rank = 0; /* the other query path too */
    ck_assert_int_eq(tm_model_init(&tm_fp8, &hp, DSV3_DTYPE_FP8_E4M3, 1, 8, NULL), DSV3_OK);
}

static void models_teardown(void)
{
    tm_model_release(&tm_bf16);
    tm_model_release(&tm_fp8);
}

static dsv3_context *ctx_new(dsv3_model *m, uint32_t flags, int32_t kv_dtype)
{
    dsv3_context_params p;
    dsv3_context_params_init(&p, sizeof p);
    p.flags = flags;
    p.n_ctx = 64;
    p.n_threads = 2;
    p.kv_dtype = kv_dtype;
    dsv3_context *c = NULL;
    int rc = dsv3_context_new(m, &p, &c);
    ck_assert_msg(rc == DSV3_OK, "context_new: %s", dsv3_context_errmsg(c));
    return c;
}

static void tokens(int32_t *t, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        t[i] = (int32_t)((seed >> 8) % 1024);
    }
}

static int32_t argmax_row(const float *l, size_t n)
{
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (l[i] > l[b])
            b = i;
    return (int32_t)b;
}

/* Compare logits of a and b on the same tokens: a prefill of 12 (every
 * row), then 3 single-token steps; with MTP, the drafts of the prefill. */
static void compare_contexts(dsv3_context *a, dsv3_context *b, double tol, int mtp,
                             const char *what)
{
    size_t V = 1024;
    int32_t t[16];
    tokens(t, 16, 11);
    const float *la, *lb;
    for (int step = 0; step < 4; step++) {
        const int32_t *tk = step ? t + 11 + step : t;
        size_t n = step ? 1 : 12;
        int rc = dsv3_context_decode(a, tk, n, DSV3_DECODE_ALL_LOGITS);
        ck_assert_msg(rc == DSV3_OK, "%s: %s", what, dsv3_context_errmsg(a));
        rc = dsv3_context_decode(b, tk, n, DSV3_DECODE_ALL_LOGITS);
        ck_assert_msg(rc == DSV3_OK, "%s: %s", what, dsv3_context_errmsg(b));
        for (size_t r = 0; r < n; r++) {
            ck_assert_int_eq(dsv3_context_logits(a, (int32_t)r, &la), DSV3_OK);
            ck_assert_int_eq(dsv3_context_logits(b, (int32_t)r, &lb), DSV3_OK);
            char w[96];
            snprintf(w, sizeof w, "%s: step %d row %zu", what, step, r);
            expect_close(lb, la, V, tol, 0, w);
            ck_assert_msg(argmax_row(la, V) == argmax_row(lb, V), "%s: greedy token differs", w);
        }
        if (step == 0 && mtp) {
            ck_assert_int_eq(dsv3__context_mtp_eval(a, t + 1, 11, DSV3_DECODE_ALL_LOGITS), DSV3_OK);
            ck_assert_int_eq(dsv3__context_mtp_eval(b, t + 1, 11, DSV3_DECODE_ALL_LOGITS), DSV3_OK);
            for (int32_t r = 0; r < 11; r++) {
                ck_assert_int_eq(dsv3__context_mtp_logits(a, r, &la), DSV3_OK);
                ck_assert_int_eq(dsv3__context_mtp_logits(b, r, &lb), DSV3_OK);
                expect_close(lb, la, V, tol, 0, "MTP draft");
            }
        }
    }
}

static void model_vs_cpu(const tm_model *ref, int apart, uint32_t flags, int32_t kv, double tol,
                         const char *what)
{
    bc_model bm;
    bc_model_copy(ref->m, ut_ops, apart, &bm);
    dsv3_context *a = ctx_new(ref->m, flags, kv), *b = ctx_new(bm.m, flags, kv);
    compare_contexts(a, b, tol, (flags & DSV3_CONTEXT_MTP) != 0, what);
    dsv3_context_free(a);
    dsv3_context_free(b);
    bc_model_free(&bm);
}

START_TEST(model_whole)
{
    model_vs_cpu(&tm_bf16, 0, DSV3_CONTEXT_MTP, DSV3_DTYPE_F32, 2e-4, "bf16 model");
    model_vs_cpu(&tm_fp8, 0, 0, DSV3_DTYPE_F32, 2e-4, "fp8 model without q-LoRA");
}
END_TEST

START_TEST(model_experts_apart)
{
    model_vs_cpu(&tm_bf16, 1, DSV3_CONTEXT_MTP, DSV3_DTYPE_F32, 2e-4, "bf16 model, experts apart");
    model_vs_cpu(&tm_fp8, 1, 0, DSV3_DTYPE_F32, 2e-4, "fp8 model, experts apart");
}
END_TEST

START_TEST(model_naive_and_bf16_cache)
{
    model_vs_cpu(&tm_bf16, 0, DSV3_CONTEXT_NAIVE_ATTN, DSV3_DTYPE_F32, 2e-4, "naive attention");
    model_vs_cpu(&tm_bf16, 0, 0, DSV3_DTYPE_BF16, 2e-3, "bf16 cache");
}
END_TEST

/* Contexts of one model compute independently (each on its own instance)
 * and give the same bits. */
START_TEST(model_two_contexts)
{
    bc_model bm;
    bc_model_copy(tm_bf16.m, ut_ops, 0, &bm);
    dsv3_context *a = ctx_new(bm.m, 0, DSV3_DTYPE_F32), *b = ctx_new(bm.m, 0, DSV3_DTYPE_F32);
    int32_t t[12];
    tokens(t, 12, 5);
    ck_assert_int_eq(dsv3_context_decode(a, t, 12, 0), DSV3_OK);
    ck_assert_int_eq(dsv3_context_decode(b, t, 7, 0), DSV3_OK);
    ck_assert_int_eq(dsv3_context_decode(b, t + 7, 5, 0), DSV3_OK);
    const float *la, *lb;
    ck_assert_int_eq(dsv3_context_logits(a, -1, &la), DSV3_OK);
    ck_assert_int_eq(dsv3_context_logits(b, -1, &lb), DSV3_OK);
    expect_close(lb, la, 1024, 1e-4, 0, "chunked prefill in a second context");
    /* one token at a time equals the same tokens in a second context */
    dsv3_context_clear(a);
    dsv3_context_clear(b);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(dsv3_context_decode(a, t + i, 1, 0), DSV3_OK);
        ck_assert_int_eq(dsv3_context_decode(b, t + i, 1, 0), DSV3_OK);
        ck_assert_int_eq(dsv3_context_logits(a, -1, &la), DSV3_OK);
        ck_assert_int_eq(dsv3_context_logits(b, -1, &lb), DSV3_OK);
        expect_same_bits(la, lb, 1024 * 4, "two contexts");
    }
    dsv3_context_free(a);
    dsv3_context_free(b);
    bc_model_free(&bm);
}
END_TEST

/* Placement mistakes are refused at model preparation, not found by a crash. */
START_TEST(model_bad_placement)
{
    bc_model bm;
    bc_model_copy(tm_bf16.m, ut_ops, 0, &bm);
    dsv3_model *m = bm.m;
    dsv3__fwd_model_free(m);
    dsv3_tensor keep = m->w.layers[3].exp_up;
    m->w.layers[3].exp_up.backend = DSV3_BACKEND_CPU; /* no CPU backend in this model */
    ck_assert_int_eq(dsv3__fwd_model_init(m), DSV3_E_INVAL);
    ck_assert(strstr(m->err.msg, "routed experts") != NULL);
    m->w.layers[3].exp_up = keep;
    m->w.layers[0].o.backend = DSV3_BACKEND_CPU;
    ck_assert_int_eq(dsv3__fwd_model_init(m), DSV3_E_INVAL);
    ck_assert(strstr(m->err.msg, "layer 0") != NULL);
    m->w.layers[0].o.backend = m->be.ops->id;
    ck_assert_int_eq(dsv3__fwd_model_init(m), DSV3_OK);
    bc_model_free(&bm);
}
END_TEST

void bc_add_tcases(Suite *s, int with_models)
{
    quick = !with_models;
    TCase *tc = tcase_create("ops");
    tcase_add_checked_fixture(tc, open_backends, close_backends);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, op_matmul);
    tcase_add_test(tc, op_matmul_rows_independent);
    tcase_add_test(tc, op_dequant_embed);
    tcase_add_test(tc, op_rmsnorm_rope);
    tcase_add_test(tc, op_copy);
    tcase_add_test(tc, op_swiglu_add_argmax);
    tcase_add_test(tc, op_route);
    tcase_add_test(tc, op_moe);
    tcase_add_test(tc, op_moe_duplicate_choices);
    tcase_add_test(tc, op_mla_attn);
    tcase_add_test(tc, op_mla_decode_equals_prefill);
    tcase_add_test(tc, op_mha);
    tcase_add_test(tc, op_errors_match_cpu);
    suite_add_tcase(s, tc);

    tc = tcase_create("buffers");
    tcase_add_checked_fixture(tc, open_backends, close_backends);
    tcase_add_test(tc, buffers_copy_and_ranges);
    suite_add_tcase(s, tc);
    if (!with_models)
        return;

    tc = tcase_create("model");
    tcase_add_checked_fixture(tc, models_setup, models_teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, model_whole);
    tcase_add_test(tc, model_experts_apart);
    tcase_add_test(tc, model_naive_and_bf16_cache);
    tcase_add_test(tc, model_two_contexts);
    tcase_add_test(tc, model_bad_placement);
    suite_add_tcase(s, tc);
}
