/*
 * backend_check_ops.c - every op of the backend under test on random inputs
 * of every dtype it takes, against the CPU backend's scalar ops: results
 * within tolerances that F32 accumulation in another order explains (1e-4
 * relative for products and attention, exact for data movement and
 * conversions), the same bits on a second run, the documented row
 * independence, and the same error codes for bad arguments.
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_check_int.h"

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
    for (size_t di = 0; di < DSV3__ARRAY_LEN(bc_wdtypes); di++)
        for (size_t ci = 0; ci < DSV3__ARRAY_LEN(mm_cases); ci++) {
            size_t dm = bc_n_dbufs, hm = bc_n_hbufs;
            const mm_case *c = &mm_cases[ci];
            int32_t dt = bc_wdtypes[di];
            char what[96];
            snprintf(what, sizeof what, "matmul %s case %zu", dsv3__dtype_name(dt), ci);
            wpair w = bc_make_weight(dt, c->E, c->M, c->K, 1.0f / sqrtf((float)c->K));
            int64_t ldx = c->K + c->ldx_pad, ldy = c->M + c->ldy_pad;
            size_t nx = (size_t)(c->T * ldx), ny = (size_t)(c->T * ldy);
            float *x = bc_frand_array(nx, 1), *y0 = bc_frand_array(ny, 1);
            float *yc = bc_hdup(y0, ny * 4), *yd = bc_hmem(ny * 4), *yd2 = bc_hmem(ny * 4);
            dsv3_op_matmul_args a = {.w = &w.h,
                                     .expert = c->expert,
                                     .x = x,
                                     .y = yc,
                                     .T = c->T,
                                     .ldx = ldx,
                                     .ldy = ldy,
                                     .accumulate = c->accumulate};
            ck_assert_int_eq(bc_run_on(&bc_cpu, DSV3_OP_MATMUL, &a), DSV3_OK);
            float *dy = bc_dput(y0, ny * 4);
            a.w = &w.d;
            a.x = bc_dput(x, nx * 4);
            a.y = dy;
            ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_MATMUL, &a), DSV3_OK);
            bc_dget(yd, dy, ny * 4);
            bc_expect_close(yd, yc, ny, 1e-4, 1e-4, what);
            if (!c->accumulate) { /* the same bits again */
                ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_MATMUL, &a), DSV3_OK);
                bc_dget(yd2, dy, ny * 4);
                bc_expect_same_bits(yd, yd2, ny * 4, what);
            }
            bc_release_to(dm, hm);
        }
}
END_TEST

/* Decode property: with up to 8 rows, a row's result does not depend on the
 * other rows of the call (a token alone = the same token in a small batch). */
START_TEST(op_matmul_rows_independent)
{
    for (size_t di = 0; di < DSV3__ARRAY_LEN(bc_wdtypes); di++) {
        size_t dm = bc_n_dbufs, hm = bc_n_hbufs;
        wpair w = bc_make_weight(bc_wdtypes[di], 0, 200, 512, 0.05f);
        float *x = bc_frand_array(5 * 512, 1);
        float *y1 = bc_hmem(200 * 4), *y5 = bc_hmem(5 * 200 * 4);
        float *dx = bc_dput(x, 5 * 512 * 4), *dy = bc_dput(NULL, 5 * 200 * 4);
        dsv3_op_matmul_args a = {
            .w = &w.d, .x = dx + 512 * 3, .y = dy, .T = 1, .ldx = 512, .ldy = 200};
        ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_MATMUL, &a), DSV3_OK);
        bc_dget(y1, dy, 200 * 4);
        a.x = dx;
        a.T = 5;
        ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_MATMUL, &a), DSV3_OK);
        bc_dget(y5, dy, 5 * 200 * 4);
        bc_expect_same_bits(y1, y5 + 3 * 200, 200 * 4, dsv3__dtype_name(bc_wdtypes[di]));
        bc_release_to(dm, hm);
    }
}
END_TEST

START_TEST(op_dequant_embed)
{
    for (size_t di = 0; di < DSV3__ARRAY_LEN(bc_wdtypes); di++) {
        size_t dm = bc_n_dbufs, hm = bc_n_hbufs;
        int32_t dt = bc_wdtypes[di];
        wpair w = bc_make_weight(dt, 2, 200, 300, 0.1f);
        float *yc = bc_hmem(190 * 300 * 4), *yd = bc_hmem(190 * 300 * 4);
        dsv3_op_dequant_args a = {.w = &w.h, .expert = 1, .row0 = 5, .rows = 190, .y = yc};
        ck_assert_int_eq(bc_run_on(&bc_cpu, DSV3_OP_DEQUANT, &a), DSV3_OK);
        float *dy = bc_dput(NULL, 190 * 300 * 4);
        a.w = &w.d;
        a.y = dy;
        ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_DEQUANT, &a), DSV3_OK);
        bc_dget(yd, dy, 190 * 300 * 4);
        bc_expect_same_bits(yd, yc, 190 * 300 * 4, "dequant");

        wpair t = bc_make_weight(dt, 0, 50, 70, 1);
        int32_t tok[5] = {0, 49, 7, 7, 23};
        float *oc = bc_frand_array(5 * 80, 1), *od = bc_hmem(5 * 80 * 4);
        float *dout = bc_dput(oc, 5 * 80 * 4);
        dsv3_op_embed_args e = {.table = &t.h, .tokens = tok, .out = oc, .n = 5, .ld_out = 80};
        ck_assert_int_eq(bc_run_on(&bc_cpu, DSV3_OP_EMBED, &e), DSV3_OK);
        e.table = &t.d;
        e.tokens = bc_dput(tok, sizeof tok);
        e.out = dout;
        ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_EMBED, &e), DSV3_OK);
        bc_dget(od, dout, 5 * 80 * 4);
        bc_expect_same_bits(od, oc, 5 * 80 * 4, "embed"); /* padding untouched too */
        bc_release_to(dm, hm);
    }
}
END_TEST

/* ---- element-wise ops ------------------------------------------------------------------ */

START_TEST(op_rmsnorm_rope)
{
    float *x = bc_frand_array(5 * 310, 2), *wt = bc_frand_array(300, 1);
    float *yc = bc_frand_array(5 * 305, 1), *yd = bc_hmem(5 * 305 * 4);
    float *dx = bc_dput(x, 5 * 310 * 4), *dy = bc_dput(yc, 5 * 305 * 4);
    dsv3_op_rmsnorm_args a = {
        .x = x, .y = yc, .weight = wt, .rows = 5, .n = 300, .ldx = 310, .ldy = 305, .eps = 1e-6f};
    ck_assert_int_eq(bc_run_on(&bc_cpu, DSV3_OP_RMSNORM, &a), DSV3_OK);
    a.x = dx;
    a.y = dy;
    a.weight = bc_dput(wt, 300 * 4);
    ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_RMSNORM, &a), DSV3_OK);
    bc_dget(yd, dy, 5 * 305 * 4);
    bc_expect_close(yd, yc, 5 * 305, 1e-6, 1e-5, "rmsnorm");
    /* in place */
    float *xc = bc_hdup(x, 5 * 310 * 4), *xd = bc_hmem(5 * 310 * 4);
    a.x = a.y = xc;
    a.ldy = 310;
    a.weight = wt;
    ck_assert_int_eq(bc_run_on(&bc_cpu, DSV3_OP_RMSNORM, &a), DSV3_OK);
    a.x = a.y = dx;
    a.weight = bc_dput(wt, 300 * 4);
    ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_RMSNORM, &a), DSV3_OK);
    bc_dget(xd, dx, 5 * 310 * 4);
    bc_expect_close(xd, xc, 5 * 310, 1e-6, 1e-5, "rmsnorm in place");

    /* RoPE: 4 heads of 16 at offset 8, stride 24, rows of 100, positions 1000 ... */
    float fr[8];
    for (int i = 0; i < 8; i++)
        fr[i] = powf(10000.0f, -2.0f * (float)i / 16.0f);
    float *rc = bc_frand_array(3 * 100, 1), *rd = bc_hmem(3 * 100 * 4);
    float *drx = bc_dput(rc, 3 * 100 * 4);
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
    ck_assert_int_eq(bc_run_on(&bc_cpu, DSV3_OP_ROPE, &r), DSV3_OK);
    r.x = drx;
    r.freqs = bc_dput(fr, sizeof fr);
    ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_ROPE, &r), DSV3_OK);
    bc_dget(rd, drx, 3 * 100 * 4);
    bc_expect_close(rd, rc, 300, 1e-6, 1e-5, "rope");
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
        v[i] = i < DSV3__ARRAY_LEN(sp) ? sp[i] : 100.0f * bc_frand();
}

START_TEST(op_copy)
{
    static const int32_t dts[] = {DSV3_DTYPE_F32, DSV3_DTYPE_BF16, DSV3_DTYPE_F16};
    for (size_t si = 0; si < 3; si++)
        for (size_t di = 0; di < 3; di++) {
            size_t dm = bc_n_dbufs, hm = bc_n_hbufs;
            int32_t sd = dts[si], dd = dts[di];
            size_t ss = sd == DSV3_DTYPE_F32 ? 4 : 2, ds = dd == DSV3_DTYPE_F32 ? 4 : 2;
            float *v = bc_hmem(7 * 40 * 4);
            fill_special(v, 7 * 40);
            /* the source in its own format */
            void *src = bc_hmem(7 * 40 * ss);
            dsv3_op_copy_args cv = {.src = v,
                                    .dst = src,
                                    .src_dtype = DSV3_DTYPE_F32,
                                    .dst_dtype = sd,
                                    .rows = 7,
                                    .cols = 40,
                                    .ld_src = 40,
                                    .ld_dst = 40};
            ck_assert_int_eq(bc_run_on(&bc_cpu, DSV3_OP_COPY, &cv), DSV3_OK);
            void *dc = bc_hmem(7 * 35 * ds), *dd_host = bc_hmem(7 * 35 * ds);
            memset(dc, 0x5a, 7 * 35 * ds);
            void *ddst = bc_dput(dc, 7 * 35 * ds);
            dsv3_op_copy_args a = {.src = src,
                                   .dst = dc,
                                   .src_dtype = sd,
                                   .dst_dtype = dd,
                                   .rows = 7,
                                   .cols = 33,
                                   .ld_src = 40,
                                   .ld_dst = 35};
            ck_assert_int_eq(bc_run_on(&bc_cpu, DSV3_OP_COPY, &a), DSV3_OK);
            a.src = bc_dput(src, 7 * 40 * ss);
            a.dst = ddst;
            ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_COPY, &a), DSV3_OK);
            bc_dget(dd_host, ddst, 7 * 35 * ds);
            char what[64];
            snprintf(what, sizeof what, "copy %s -> %s", dsv3__dtype_name(sd),
                     dsv3__dtype_name(dd));
            bc_expect_same_bits(dd_host, dc, 7 * 35 * ds, what);
            bc_release_to(dm, hm);
        }
}
END_TEST

START_TEST(op_swiglu_add_argmax)
{
    size_t n = 1000;
    float *g = bc_frand_array(n, 6), *u = bc_frand_array(n, 2), *yc = bc_hmem(n * 4),
          *yd = bc_hmem(n * 4);
    float *dg = bc_dput(g, n * 4), *du = bc_dput(u, n * 4), *dy = bc_dput(NULL, n * 4);
    dsv3_op_swiglu_args s = {.g = g, .u = u, .y = yc, .n = (int64_t)n};
    ck_assert_int_eq(bc_run_on(&bc_cpu, DSV3_OP_SWIGLU, &s), DSV3_OK);
    dsv3_op_swiglu_args sd = {.g = dg, .u = du, .y = dy, .n = (int64_t)n};
    ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_SWIGLU, &sd), DSV3_OK);
    bc_dget(yd, dy, n * 4);
    bc_expect_close(yd, yc, n, 1e-6, 1e-5, "swiglu");
    sd.y = dg; /* in place */
    ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_SWIGLU, &sd), DSV3_OK);
    bc_dget(yd, dg, n * 4);
    bc_expect_close(yd, yc, n, 1e-6, 1e-5, "swiglu in place");

    dsv3_op_add_args a = {.a = g, .b = u, .y = yc, .n = (int64_t)n};
    ck_assert_int_eq(bc_run_on(&bc_cpu, DSV3_OP_ADD, &a), DSV3_OK);
    dsv3_op_add_args ad = {.a = bc_dput(g, n * 4), .b = du, .y = du, .n = (int64_t)n};
    ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_ADD, &ad), DSV3_OK);
    bc_dget(yd, du, n * 4);
    bc_expect_same_bits(yd, yc, n * 4, "add");

    /* argmax: random; a tie (lower index wins); NaNs that must not win; all
     * NaN; all -inf; max in the last column */
    int64_t ld = 1003, rows = 6;
    float *x = bc_frand_array((size_t)(rows * ld), 1);
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
    ck_assert_int_eq(bc_run_on(&bc_cpu, DSV3_OP_ARGMAX, &m), DSV3_OK);
    int32_t *dout = bc_dput(NULL, sizeof od);
    m.x = bc_dput(x, (size_t)(rows * ld) * 4);
    m.out = dout;
    ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_ARGMAX, &m), DSV3_OK);
    bc_dget(od, dout, sizeof od);
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
        size_t dm = bc_n_dbufs, hm = bc_n_hbufs;
        const route_case *c = &cs[ci];
        int64_t T = 7, ld = c->E + 3;
        float *z = bc_frand_array((size_t)(T * ld), 3), *b = bc_frand_array((size_t)c->E, 0.1f);
        int32_t *ic = bc_hmem((size_t)(T * c->k) * 4), *id = bc_hmem((size_t)(T * c->k) * 4);
        float *wc = bc_hmem((size_t)(T * c->k) * 4), *wd = bc_hmem((size_t)(T * c->k) * 4);
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
        ck_assert_int_eq(bc_run_on(&bc_cpu, DSV3_OP_ROUTE, &a), DSV3_OK);
        int32_t *di = bc_dput(NULL, (size_t)(T * c->k) * 4);
        float *dw = bc_dput(NULL, (size_t)(T * c->k) * 4);
        a.logits = bc_dput(z, (size_t)(T * ld) * 4);
        a.bias = c->bias ? bc_dput(b, (size_t)c->E * 4) : NULL;
        a.idx = di;
        a.weight = dw;
        ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_ROUTE, &a), DSV3_OK);
        bc_dget(id, di, (size_t)(T * c->k) * 4);
        bc_dget(wd, dw, (size_t)(T * c->k) * 4);
        for (int64_t i = 0; i < T * c->k; i++)
            ck_assert_msg(id[i] == ic[i], "route case %zu: choice %lld is %d, the CPU gives %d", ci,
                          (long long)i, id[i], ic[i]);
        bc_expect_close(wd, wc, (size_t)(T * c->k), 1e-7, 1e-5, "route weights");
        bc_release_to(dm, hm);
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
        size_t dm = bc_n_dbufs, hm = bc_n_hbufs;
        int64_t T = Ts[ti];
        wpair g = bc_make_weight(DSV3_DTYPE_BF16, E, f, d, 0.1f);
        wpair u = bc_make_weight(DSV3_DTYPE_BF16, E, f, d, 0.1f);
        wpair dn = bc_make_weight(DSV3_DTYPE_BF16, E, d, f, 0.1f);
        float *x = bc_frand_array((size_t)(T * d), 1), *wt = bc_frand_array((size_t)(T * k), 1);
        int32_t *idx = bc_hmem((size_t)(T * k) * 4);
        for (int64_t i = 0; i < T * k; i++)
            idx[i] = (i % k == 3 && i % 2) ? 1 : 5;
        float *yc = bc_hmem((size_t)(T * d) * 4), *yd = bc_hmem((size_t)(T * d) * 4);
        float *dy = bc_dput(NULL, (size_t)(T * d) * 4);
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
        ck_assert_int_eq(bc_run_on(&bc_cpu, DSV3_OP_MOE, &a), DSV3_OK);
        a.gate = &g.d;
        a.up = &u.d;
        a.down = &dn.d;
        a.x = bc_dput(x, (size_t)(T * d) * 4);
        a.idx = bc_dput(idx, (size_t)(T * k) * 4);
        a.weight = bc_dput(wt, (size_t)(T * k) * 4);
        a.y = dy;
        ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_MOE, &a), DSV3_OK);
        bc_dget(yd, dy, (size_t)(T * d) * 4);
        bc_expect_close(yd, yc, (size_t)(T * d), 1e-4, 1e-4, "moe with repeated experts");
        bc_release_to(dm, hm);
    }
}
END_TEST

START_TEST(op_moe)
{
    static const int64_t Ts[] = {1, 5, 9, 40, 300};
    int64_t E = 16, k = 4, d = 96, f = 80;
    for (size_t di = 0; di < DSV3__ARRAY_LEN(bc_wdtypes); di++)
        for (size_t ti = 0; ti < DSV3__ARRAY_LEN(Ts); ti++) {
            if (bc_quick && (Ts[ti] == 5 || Ts[ti] == 40))
                continue;
            size_t dm = bc_n_dbufs, hm = bc_n_hbufs;
            int64_t T = Ts[ti], ldx = d + 4, ldy = d + 2;
            wpair g = bc_make_weight(bc_wdtypes[di], E, f, d, 1 / sqrtf((float)d));
            wpair u = bc_make_weight(bc_wdtypes[di], E, f, d, 1 / sqrtf((float)d));
            wpair dn = bc_make_weight(bc_wdtypes[di], E, d, f, 1 / sqrtf((float)f));
            float *x = bc_frand_array((size_t)(T * ldx), 1), *wt = bc_hmem((size_t)(T * k) * 4);
            int32_t *idx = bc_hmem((size_t)(T * k) * 4);
            for (int64_t t = 0; t < T; t++) { /* k distinct experts, expert 3 never */
                int32_t perm[16];
                for (int i = 0; i < 16; i++)
                    perm[i] = i;
                for (int64_t j = 0; j < k; j++) {
                    int32_t r;
                    do {
                        r = (int32_t)(j + (int64_t)(bc_next_u64() % (uint64_t)(16 - j)));
                    } while (perm[r] == 3);
                    int32_t tmp = perm[j];
                    perm[j] = perm[r];
                    perm[r] = tmp;
                    idx[t * k + j] = perm[j];
                    wt[t * k + j] = 0.1f + 0.9f * fabsf(bc_frand());
                }
            }
            float *yc = bc_frand_array((size_t)(T * ldy), 1), *yd = bc_hmem((size_t)(T * ldy) * 4);
            float *dy = bc_dput(yc, (size_t)(T * ldy) * 4);
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
            ck_assert_int_eq(bc_run_on(&bc_cpu, DSV3_OP_MOE, &a), DSV3_OK);
            a.gate = &g.d;
            a.up = &u.d;
            a.down = &dn.d;
            a.x = bc_dput(x, (size_t)(T * ldx) * 4);
            a.idx = bc_dput(idx, (size_t)(T * k) * 4);
            a.weight = bc_dput(wt, (size_t)(T * k) * 4);
            a.y = dy;
            ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_MOE, &a), DSV3_OK);
            bc_dget(yd, dy, (size_t)(T * ldy) * 4);
            char what[64];
            snprintf(what, sizeof what, "moe %s T=%lld", dsv3__dtype_name(bc_wdtypes[di]),
                     (long long)T);
            bc_expect_close(yd, yc, (size_t)(T * ldy), 1e-4, 1e-4, what);
            bc_release_to(dm, hm);
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
    in.q = bc_frand_array((size_t)(c->T * in.ldq), 1);
    in.wkv = bc_frand_array((size_t)(c->n_h * (c->d_n + c->d_v) * c->r), 1 / sqrtf((float)c->r));
    float *cf = bc_frand_array((size_t)(n_kv * in.ld_cache), 1);
    if (cache_dtype == DSV3_DTYPE_BF16) {
        uint16_t *cb = bc_hmem((size_t)(n_kv * in.ld_cache) * 2);
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
            if (bc_quick && mla_cases[ci].T > 64)
                continue;
            size_t dm = bc_n_dbufs, hm = bc_n_hbufs;
            const mla_case *c = &mla_cases[ci];
            mla_in in = mla_make(c, cds[k]);
            size_t no = (size_t)(c->T * in.ld_out), es = cds[k] == DSV3_DTYPE_BF16 ? 2 : 4;
            size_t nc = (size_t)((c->pos0 + c->T) * in.ld_cache) * es;
            float *oc = bc_frand_array(no, 1), *od = bc_hmem(no * 4), *od2 = bc_hmem(no * 4);
            float *dout = bc_dput(oc, no * 4);
            dsv3_op_mla_attn_args a;
            mla_args(c, &in, cds[k], &a);
            a.out = oc;
            ck_assert_int_eq(bc_run_on(&bc_cpu, DSV3_OP_MLA_ATTN, &a), DSV3_OK);
            a.q = bc_dput(in.q, (size_t)(c->T * in.ldq) * 4);
            a.cache = bc_dput(in.cache, nc);
            a.wkv_b = bc_dput(in.wkv, (size_t)(c->n_h * (c->d_n + c->d_v) * c->r) * 4);
            a.out = dout;
            ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_MLA_ATTN, &a), DSV3_OK);
            bc_dget(od, dout, no * 4);
            char what[64];
            snprintf(what, sizeof what, "mla_attn case %zu %s cache", ci, k ? "bf16" : "f32");
            bc_expect_close(od, oc, no, 1e-4, 1e-4, what);
            ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_MLA_ATTN, &a), DSV3_OK);
            bc_dget(od2, dout, no * 4);
            bc_expect_same_bits(od, od2, no * 4, what);
            bc_release_to(dm, hm);
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
    float *op = bc_hmem(no * 4), *o1 = bc_hmem((size_t)in.ld_out * 4);
    float *dout = bc_dput(NULL, no * 4), *dq = bc_dput(in.q, (size_t)(c->T * in.ldq) * 4);
    dsv3_op_mla_attn_args a;
    mla_args(c, &in, DSV3_DTYPE_F32, &a);
    a.q = dq;
    a.cache = bc_dput(in.cache, (size_t)((c->pos0 + c->T) * in.ld_cache) * 4);
    a.wkv_b = bc_dput(in.wkv, (size_t)(c->n_h * (c->d_n + c->d_v) * c->r) * 4);
    a.out = dout;
    ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_MLA_ATTN, &a), DSV3_OK);
    bc_dget(op, dout, no * 4);
    a.q = dq + (c->T - 1) * in.ldq;
    a.pos0 = c->pos0 + c->T - 1;
    a.T = 1;
    ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_MLA_ATTN, &a), DSV3_OK);
    bc_dget(o1, dout, (size_t)in.ld_out * 4);
    bc_expect_same_bits(o1, op + (c->T - 1) * in.ld_out, (size_t)(c->n_h * c->d_v) * 4,
                        "decode vs prefill row");
}
END_TEST

START_TEST(op_mha)
{
    int64_t T = 3, pos0 = 5, n_h = 3, dn = 16, dr = 8, dv = 12, n_kv = pos0 + T;
    int64_t ldq = n_h * (dn + dr) + 2, ld_kv = n_h * (dn + dv) + 1, ld_kr = dr + 3,
            ld_out = n_h * dv;
    float *q = bc_frand_array((size_t)(T * ldq), 1),
          *kv = bc_frand_array((size_t)(n_kv * ld_kv), 1);
    float *kr = bc_frand_array((size_t)(n_kv * ld_kr), 1);
    float *oc = bc_hmem((size_t)(T * ld_out) * 4), *od = bc_hmem((size_t)(T * ld_out) * 4);
    float *dout = bc_dput(NULL, (size_t)(T * ld_out) * 4);
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
    ck_assert_int_eq(bc_run_on(&bc_cpu, DSV3_OP_MHA, &a), DSV3_OK);
    a.q = bc_dput(q, (size_t)(T * ldq) * 4);
    a.kv = bc_dput(kv, (size_t)(n_kv * ld_kv) * 4);
    a.k_rope = bc_dput(kr, (size_t)(n_kv * ld_kr) * 4);
    a.out = dout;
    ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_MHA, &a), DSV3_OK);
    bc_dget(od, dout, (size_t)(T * ld_out) * 4);
    bc_expect_close(od, oc, (size_t)(T * ld_out), 1e-5, 1e-5, "mha");
}
END_TEST

/* ---- argument errors, supports -------------------------------------------------------------- */

/* Both backends refuse the same bad arguments with the same code. */
START_TEST(op_errors_match_cpu)
{
    float *dx = bc_dput(NULL, 4096), *dy = bc_dput(NULL, 4096);
    wpair w = bc_make_weight(DSV3_DTYPE_BF16, 0, 8, 16, 0.1f);
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
        int rc = bc_run_on(&bc_dut, DSV3_OP_MATMUL, &m[i]);
        ck_assert_msg(rc != DSV3_OK && rc == bc_run_on(&bc_cpu, DSV3_OP_MATMUL, &m[i]),
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
    ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_COPY, &c), DSV3_E_UNSUPPORTED);
    dsv3_op_route_args r = {
        .logits = dx, .idx = (int32_t *)dy, .weight = dy, .T = 1, .ld = 8, .n_experts = 8, .k = 9};
    ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_ROUTE, &r), DSV3_E_INVAL);
    dsv3_op_mla_attn_args a;
    mla_args(&mla_cases[0], &(mla_in){dx, dx, dx, 64, 64, 64}, DSV3_DTYPE_F16, &a);
    a.out = dy;
    ck_assert_int_eq(bc_run_on(&bc_dut, DSV3_OP_MLA_ATTN, &a), DSV3_E_UNSUPPORTED);
    ck_assert_int_eq(bc_run_on(&bc_cpu, DSV3_OP_MLA_ATTN, &a), DSV3_E_UNSUPPORTED);
    dsv3_op_job job = {.op = DSV3_OP__COUNT, .args = &a};
    ck_assert_int_eq(bc_dut.ops->run_op(bc_dut.state, &job), DSV3_E_UNSUPPORTED);
    job.op = DSV3_OP_ADD;
    job.args = NULL;
    ck_assert_int_eq(bc_dut.ops->run_op(bc_dut.state, &job), DSV3_E_INVAL);
    for (int32_t op = 1; op < DSV3_OP__COUNT; op++)
        for (int32_t dt = 0; dt <= DSV3_DTYPE_Q4; dt++)
            ck_assert_msg(bc_dut.ops->supports(bc_dut.state, op, dt) ==
                              bc_cpu.ops->supports(bc_cpu.state, op, dt),
                          "supports(op %d, dtype %d) differs from the CPU backend", op, dt);
}
END_TEST

void bc_add_op_tests(TCase *tc)
{
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
}
