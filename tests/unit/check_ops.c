/*
 * check_ops.c - the CPU backend's ops, each against straightforward
 * expectations computed here (small hand-checkable cases, double-precision
 * re-computations), plus the RoPE/YaRN numbers of spec/TINY_CONFIGS.md.
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "model/model.h"
#include "testutil.h"

static dsv3_backend be;

static void be_setup(void)
{
    dsv3_backend_config cfg = {.struct_size = sizeof cfg, .n_threads = 1};
    dsv3__err err;
    ck_assert_int_eq(dsv3__backend_open(DSV3_BACKEND_CPU, &cfg, &be, &err), DSV3_OK);
}

static void be_teardown(void)
{
    dsv3__backend_close(&be);
}

static int run(int32_t op, const void *args, int n_threads)
{
    dsv3_op_job job = {.op = op, .n_threads = n_threads, .args = args};
    return be.ops->run_op(be.state, &job);
}

static dsv3_tensor tensor2(int32_t dtype, int64_t m, int64_t k, void *data)
{
    dsv3_tensor t = {.dtype = dtype, .n_dims = 2, .ne = {m, k, 1, 1}, .data = data,
                     .backend = DSV3_BACKEND_CPU};
    return t;
}

/* Independent e4m3 decoder (sign, 4-bit exponent bias 7, 3-bit mantissa). */
static double e4m3(uint8_t b)
{
    int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    if (e == 15 && m == 7)
        return NAN;
    double v = e == 0 ? m / 8.0 * ldexp(1.0, -6) : (1.0 + m / 8.0) * ldexp(1.0, e - 7);
    return s ? -v : v;
}

static uint32_t rng_state = 12345;
static float frand(void) /* uniform in [-1, 1) */
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xffffff) / 8388608.0f - 1.0f;
}

#define ASSERT_NEAR(a, b, tol)                                                             \
    ck_assert_msg(fabs((double)(a) - (double)(b)) <= (tol), "%s = %.9g, want %.9g (line %d)", \
                  #a, (double)(a), (double)(b), __LINE__)

/* ---- matmul ------------------------------------------------------------------ */

START_TEST(matmul_f32_by_hand)
{
    float w[6] = {1, 2, 3, 4, 5, 6};          /* [2, 3] */
    float x[8] = {1, 0, -1, 99, 0.5f, 1, 2, 99}; /* [2][ldx 4] */
    float y[6] = {0, 0, 7, 0, 0, 7};          /* [2][ldy 3] */
    dsv3_tensor t = tensor2(DSV3_DTYPE_F32, 2, 3, w);
    dsv3_op_matmul_args a = {.w = &t, .x = x, .y = y, .T = 2, .ldx = 4, .ldy = 3};
    ck_assert_int_eq(run(DSV3_OP_MATMUL, &a, 1), DSV3_OK);
    ASSERT_NEAR(y[0], -2, 0);
    ASSERT_NEAR(y[1], -2, 0);
    ASSERT_NEAR(y[2], 7, 0); /* outside M: untouched */
    ASSERT_NEAR(y[3], 8.5, 0);
    ASSERT_NEAR(y[4], 19, 0);
    a.accumulate = 1;
    ck_assert_int_eq(run(DSV3_OP_MATMUL, &a, 1), DSV3_OK);
    ASSERT_NEAR(y[0], -4, 0);
    ASSERT_NEAR(y[4], 38, 0);
}
END_TEST

START_TEST(matmul_bf16_f16)
{
    const float vals[6] = {1.5f, -2, 0.25f, 3, -0.125f, 8}; /* exact in both */
    uint16_t wb[6], wh[6];
    for (int i = 0; i < 6; i++) {
        wb[i] = dsv3__f32_to_bf16(vals[i]);
        wh[i] = dsv3__f32_to_f16(vals[i]);
    }
    float x[3] = {2, 1, -4}, y[2];
    dsv3_tensor tb = tensor2(DSV3_DTYPE_BF16, 2, 3, wb), th = tensor2(DSV3_DTYPE_F16, 2, 3, wh);
    dsv3_op_matmul_args a = {.w = &tb, .x = x, .y = y, .T = 1, .ldx = 3, .ldy = 2};
    for (int k = 0; k < 2; k++) {
        a.w = k ? &th : &tb;
        ck_assert_int_eq(run(DSV3_OP_MATMUL, &a, 1), DSV3_OK);
        ASSERT_NEAR(y[0], 3 - 2 - 1, 0);       /* 1.5*2 - 2*1 + 0.25*-4 */
        ASSERT_NEAR(y[1], 6 - 0.125 - 32, 0);  /* 3*2 - 0.125 + 8*-4 */
    }
}
END_TEST

START_TEST(fp8_table_values)
{
    ASSERT_NEAR(dsv3__fp8_e4m3_table[0x38], 1.0, 0);
    ASSERT_NEAR(dsv3__fp8_e4m3_table[0xb8], -1.0, 0);
    ASSERT_NEAR(dsv3__fp8_e4m3_table[0x7e], 448.0, 0);
    ASSERT_NEAR(dsv3__fp8_e4m3_table[0x01], 1.0 / 512, 0);
    ck_assert(isnan(dsv3__fp8_e4m3_table[0x7f]));
    for (int b = 0; b < 256; b++)
        if (!isnan(e4m3((uint8_t)b)))
            ASSERT_NEAR(dsv3__fp8_e4m3_table[b], e4m3((uint8_t)b), 0);
}
END_TEST

/* A stacked FP8 tensor [E, M, K] with random bytes (NaN codes avoided) and
 * scales; partial edge blocks when M or K is not a multiple of 128. */
typedef struct fp8w {
    dsv3_tensor t;
    uint8_t *q;
    float *s;
} fp8w;

static void fp8w_make(fp8w *w, int64_t E, int64_t M, int64_t K)
{
    int64_t sm = (M + 127) / 128, sk = (K + 127) / 128;
    w->q = malloc((size_t)(E * M * K));
    w->s = malloc((size_t)(E * sm * sk) * sizeof(float));
    for (int64_t i = 0; i < E * M * K; i++) {
        rng_state = rng_state * 1103515245u + 12345u;
        uint8_t b = (uint8_t)(rng_state >> 16);
        if ((b & 0x7f) == 0x7f)
            b = 0x30;
        w->q[i] = b;
    }
    for (int64_t i = 0; i < E * sm * sk; i++)
        w->s[i] = 0.001f * (float)(i + 1) * (i % 2 ? -1.0f : 1.0f) + 0.01f;
    w->t = (dsv3_tensor){.dtype = DSV3_DTYPE_FP8_E4M3, .n_dims = E > 1 ? 3 : 2,
                         .ne = {E, M, K, 1}, .data = w->q, .scale = w->s};
    if (E == 1) {
        w->t.ne[0] = M;
        w->t.ne[1] = K;
    }
}

/* Expected y[t][m] in double: fp8 x scale of the (m / 128, k / 128) block. */
static double fp8_expect(const fp8w *w, int64_t e, int64_t M, int64_t K, const float *x,
                         int64_t m)
{
    int64_t sm = (M + 127) / 128, sk = (K + 127) / 128;
    double acc = 0;
    for (int64_t k = 0; k < K; k++) {
        double s = w->s[e * sm * sk + (m / 128) * sk + k / 128];
        acc += (double)x[k] * e4m3(w->q[(e * M + m) * K + k]) * s;
    }
    return acc;
}

START_TEST(matmul_fp8_partial_blocks)
{
    int64_t M = 130, K = 200, T = 3;
    fp8w w;
    fp8w_make(&w, 1, M, K);
    float *x = malloc((size_t)(T * K) * sizeof(float)), *y = malloc((size_t)(T * M) * 4);
    for (int64_t i = 0; i < T * K; i++)
        x[i] = frand();
    dsv3_op_matmul_args a = {.w = &w.t, .x = x, .y = y, .T = T, .ldx = K, .ldy = M};
    ck_assert_int_eq(run(DSV3_OP_MATMUL, &a, 2), DSV3_OK);
    for (int64_t t = 0; t < T; t++)
        for (int64_t m = 0; m < M; m++) {
            double want = fp8_expect(&w, 0, M, K, x + t * K, m);
            ASSERT_NEAR(y[t * M + m], want, 1e-4 * (1 + fabs(want)));
        }
    /* the scale of block (1, 1) multiplies row 129, columns 128 ... 199 */
    float saved = w.s[3];
    w.s[3] = 0;
    ck_assert_int_eq(run(DSV3_OP_MATMUL, &a, 1), DSV3_OK);
    double part = 0;
    for (int64_t k = 0; k < 128; k++)
        part += (double)x[k] * e4m3(w.q[129 * K + k]) * w.s[2];
    ASSERT_NEAR(y[129], part, 1e-4 * (1 + fabs(part)));
    w.s[3] = saved;
    free(x);
    free(y);
    free(w.q);
    free(w.s);
}
END_TEST

START_TEST(matmul_fp8_expert_stack)
{
    int64_t E = 3, M = 40, K = 136;
    fp8w w;
    fp8w_make(&w, E, M, K);
    float x[136], y[40];
    for (int k = 0; k < K; k++)
        x[k] = frand();
    for (int64_t e = 0; e < E; e++) {
        dsv3_op_matmul_args a = {.w = &w.t, .expert = e, .x = x, .y = y, .T = 1, .ldx = K,
                                 .ldy = M};
        ck_assert_int_eq(run(DSV3_OP_MATMUL, &a, 1), DSV3_OK);
        for (int64_t m = 0; m < M; m++) {
            double want = fp8_expect(&w, e, M, K, x, m);
            ASSERT_NEAR(y[m], want, 1e-4 * (1 + fabs(want)));
        }
    }
    dsv3_op_matmul_args bad = {.w = &w.t, .expert = 3, .x = x, .y = y, .T = 1, .ldx = K,
                               .ldy = M};
    ck_assert_int_eq(run(DSV3_OP_MATMUL, &bad, 1), DSV3_E_INVAL);
    /* DEQUANT of expert 1, rows 5 ... 7 */
    float rows[3 * 136];
    dsv3_op_dequant_args da = {.w = &w.t, .expert = 1, .row0 = 5, .rows = 3, .y = rows};
    ck_assert_int_eq(run(DSV3_OP_DEQUANT, &da, 1), DSV3_OK);
    int64_t sk = 2;
    for (int r = 0; r < 3; r++)
        for (int64_t k = 0; k < K; k++)
            ASSERT_NEAR(rows[r * K + k],
                        e4m3(w.q[(M + 5 + r) * K + k]) * w.s[1 * 1 * sk + k / 128], 1e-6);
    free(w.q);
    free(w.s);
}
END_TEST

START_TEST(matmul_threads_bitwise)
{
    int64_t M = 256, K = 300, T = 9;
    float *w = malloc((size_t)(M * K) * 4), *x = malloc((size_t)(T * K) * 4);
    float *y1 = malloc((size_t)(T * M) * 4), *y4 = malloc((size_t)(T * M) * 4);
    for (int64_t i = 0; i < M * K; i++)
        w[i] = frand();
    for (int64_t i = 0; i < T * K; i++)
        x[i] = frand();
    dsv3_tensor t = tensor2(DSV3_DTYPE_F32, M, K, w);
    dsv3_op_matmul_args a = {.w = &t, .x = x, .y = y1, .T = T, .ldx = K, .ldy = M};
    ck_assert_int_eq(run(DSV3_OP_MATMUL, &a, 1), DSV3_OK);
    a.y = y4;
    ck_assert_int_eq(run(DSV3_OP_MATMUL, &a, 4), DSV3_OK);
    ck_assert_int_eq(memcmp(y1, y4, (size_t)(T * M) * 4), 0);
    free(w);
    free(x);
    free(y1);
    free(y4);
}
END_TEST

START_TEST(op_errors)
{
    float x[4] = {0}, y[4];
    uint8_t q[4] = {0};
    dsv3_tensor t = tensor2(DSV3_DTYPE_Q8_0, 1, 32, q);
    dsv3_op_matmul_args a = {.w = &t, .x = x, .y = y, .T = 1, .ldx = 32, .ldy = 1};
    ck_assert_int_eq(run(DSV3_OP_MATMUL, &a, 1), DSV3_E_UNSUPPORTED);
    ck_assert_int_eq(run(999, &a, 1), DSV3_E_UNSUPPORTED);
    ck_assert_int_eq(run(DSV3_OP_MATMUL, NULL, 1), DSV3_E_INVAL);
    dsv3_tensor f = tensor2(DSV3_DTYPE_F32, 2, 2, x);
    a.w = &f;
    a.ldx = 1; /* shorter than K */
    ck_assert_int_eq(run(DSV3_OP_MATMUL, &a, 1), DSV3_E_INVAL);
    dsv3_tensor fp = tensor2(DSV3_DTYPE_FP8_E4M3, 2, 2, q); /* no scales */
    a.w = &fp;
    a.ldx = 2;
    ck_assert_int_eq(run(DSV3_OP_MATMUL, &a, 1), DSV3_E_INVAL);
    ck_assert_int_eq(be.ops->supports(be.state, DSV3_OP_MATMUL, DSV3_DTYPE_FP8_E4M3), 1);
    ck_assert_int_eq(be.ops->supports(be.state, DSV3_OP_MATMUL, DSV3_DTYPE_Q4), 0);
}
END_TEST

/* ---- embed, norm, copy, element-wise ------------------------------------------ */

START_TEST(embed_rows)
{
    uint16_t tab[3 * 2];
    const float v[6] = {1, 2, -3, 4.5f, 0.25f, -8};
    for (int i = 0; i < 6; i++)
        tab[i] = dsv3__f32_to_bf16(v[i]);
    dsv3_tensor t = tensor2(DSV3_DTYPE_BF16, 3, 2, tab);
    int32_t tok[3] = {2, 0, 2};
    float out[9] = {0};
    dsv3_op_embed_args a = {.table = &t, .tokens = tok, .out = out, .n = 3, .ld_out = 3};
    ck_assert_int_eq(run(DSV3_OP_EMBED, &a, 1), DSV3_OK);
    ASSERT_NEAR(out[0], 0.25, 0);
    ASSERT_NEAR(out[1], -8, 0);
    ASSERT_NEAR(out[3], 1, 0);
    ASSERT_NEAR(out[4], 2, 0);
    ASSERT_NEAR(out[7], -8, 0);
    tok[1] = 3;
    ck_assert_int_eq(run(DSV3_OP_EMBED, &a, 1), DSV3_E_RANGE);
    tok[1] = -1;
    ck_assert_int_eq(run(DSV3_OP_EMBED, &a, 1), DSV3_E_RANGE);
}
END_TEST

START_TEST(rmsnorm_by_hand)
{
    float x[2] = {3, 4}, g[2] = {1, 2}, y[2];
    dsv3_op_rmsnorm_args a = {.x = x, .y = y, .weight = g, .rows = 1, .n = 2, .ldx = 2,
                              .ldy = 2, .eps = 0};
    ck_assert_int_eq(run(DSV3_OP_RMSNORM, &a, 1), DSV3_OK);
    double r = sqrt(12.5);
    ASSERT_NEAR(y[0], 3 / r, 1e-6);
    ASSERT_NEAR(y[1], 8 / r, 1e-6);
    /* in place on the first 3 of 5 values per row (the latent-only norm) */
    float row[10] = {1, 2, 2, 7, 8, -1, 0, 1, 9, 9};
    float g3[3] = {1, 1, 0.5f};
    a = (dsv3_op_rmsnorm_args){.x = row, .y = row, .weight = g3, .rows = 2, .n = 3, .ldx = 5,
                               .ldy = 5, .eps = 1e-6f};
    ck_assert_int_eq(run(DSV3_OP_RMSNORM, &a, 1), DSV3_OK);
    double r0 = sqrt(9.0 / 3 + 1e-6), r1 = sqrt(2.0 / 3 + 1e-6);
    ASSERT_NEAR(row[0], 1 / r0, 1e-6);
    ASSERT_NEAR(row[2], 0.5 * 2 / r0, 1e-6);
    ASSERT_NEAR(row[3], 7, 0);
    ASSERT_NEAR(row[4], 8, 0);
    ASSERT_NEAR(row[5], -1 / r1, 1e-6);
    ASSERT_NEAR(row[6], 0, 0);
    ASSERT_NEAR(row[8], 9, 0);
}
END_TEST

START_TEST(copy_convert)
{
    float src[6] = {1.0f, 1.00390625f, -3.140625f, 100, 0.1f, -0.5f};
    uint16_t mid[8] = {0};
    float back[6] = {0};
    dsv3_op_copy_args a = {.src = src, .dst = mid, .src_dtype = DSV3_DTYPE_F32,
                           .dst_dtype = DSV3_DTYPE_BF16, .rows = 2, .cols = 3, .ld_src = 3,
                           .ld_dst = 4};
    ck_assert_int_eq(run(DSV3_OP_COPY, &a, 1), DSV3_OK);
    ck_assert_uint_eq(mid[3], 0); /* padding untouched */
    a = (dsv3_op_copy_args){.src = mid, .dst = back, .src_dtype = DSV3_DTYPE_BF16,
                            .dst_dtype = DSV3_DTYPE_F32, .rows = 2, .cols = 3, .ld_src = 4,
                            .ld_dst = 3};
    ck_assert_int_eq(run(DSV3_OP_COPY, &a, 1), DSV3_OK);
    ASSERT_NEAR(back[0], 1, 0);
    ASSERT_NEAR(back[1], 1.0, 0); /* 1 + 2^-8 rounds to even: 1 */
    ASSERT_NEAR(back[2], -3.140625, 0);
    ASSERT_NEAR(back[4], 0.10009765625, 0);
    a.dst_dtype = DSV3_DTYPE_Q8_0;
    ck_assert_int_eq(run(DSV3_OP_COPY, &a, 1), DSV3_E_UNSUPPORTED);
}
END_TEST

START_TEST(swiglu_add_argmax)
{
    float g[3] = {0, 1, -2}, u[3] = {5, 2, 3}, y[3];
    dsv3_op_swiglu_args s = {.g = g, .u = u, .y = y, .n = 3};
    ck_assert_int_eq(run(DSV3_OP_SWIGLU, &s, 1), DSV3_OK);
    ASSERT_NEAR(y[0], 0, 0);
    ASSERT_NEAR(y[1], 2 / (1 + exp(-1.0)), 1e-6);
    ASSERT_NEAR(y[2], 3 * -2 / (1 + exp(2.0)), 1e-6);
    dsv3_op_add_args ad = {.a = g, .b = u, .y = g, .n = 3};
    ck_assert_int_eq(run(DSV3_OP_ADD, &ad, 1), DSV3_OK);
    ASSERT_NEAR(g[2], 1, 0);
    float x[8] = {1, 5, 5, 2, NAN, -1, -1, NAN};
    int32_t out[2];
    dsv3_op_argmax_args am = {.x = x, .out = out, .rows = 2, .n = 4, .ld = 4};
    ck_assert_int_eq(run(DSV3_OP_ARGMAX, &am, 1), DSV3_OK);
    ck_assert_int_eq(out[0], 1); /* tie: lower index */
    ck_assert_int_eq(out[1], 1); /* NaN never wins */
}
END_TEST

/* ---- RoPE / YaRN ------------------------------------------------------------- */

static dsv3_hparams tiny_hp(void)
{
    dsv3_hparams hp = {0};
    hp.qk_nope_dim = 32;
    hp.qk_rope_dim = 16;
    hp.rope_theta = 10000;
    hp.rope_yarn = 1;
    hp.yarn_factor = 4;
    hp.yarn_orig_ctx = 64;
    hp.yarn_beta_fast = 32;
    hp.yarn_beta_slow = 1;
    hp.yarn_mscale = 1;
    hp.yarn_mscale_all_dim = 1;
    return hp;
}

START_TEST(yarn_tiny_numbers)
{
    dsv3_hparams hp = tiny_hp();
    const double want[8] = {1, 0.2371708, 0.05, 0.007905694, 0.0025, 0.0007905694, 0.00025,
                            0.00007905694};
    float f[8];
    dsv3__rope_freqs(&hp, f);
    for (int i = 0; i < 8; i++)
        ASSERT_NEAR(f[i], want[i], want[i] * 1e-6);
    ASSERT_NEAR(dsv3__attn_scale(&hp), 0.1871303, 1e-7);
    ASSERT_NEAR(dsv3__rope_scale(&hp), 1.0, 0);
    /* mini: d_q = 192, same factor 4 */
    hp.qk_nope_dim = 128;
    hp.qk_rope_dim = 64;
    hp.yarn_orig_ctx = 4096;
    ASSERT_NEAR(dsv3__attn_scale(&hp), 0.0935652, 1e-7);
    /* V3: factor 40, pairs 0 ... 10 unchanged, 23 ... 31 divided by 40 */
    hp.yarn_factor = 40;
    float g[32];
    dsv3__rope_freqs(&hp, g);
    for (int i = 0; i < 32; i++) {
        double theta = pow(10000.0, -2.0 * i / 64);
        if (i <= 10)
            ASSERT_NEAR(g[i], theta, theta * 1e-6);
        if (i >= 23)
            ASSERT_NEAR(g[i], theta / 40, theta * 1e-6);
    }
    ASSERT_NEAR(g[16], 0.01 * (1 - 6.0 / 13) + 0.01 / 40 * 6.0 / 13, 1e-8);
    ASSERT_NEAR(dsv3__attn_scale(&hp), 0.1352338, 1e-6);
    /* V2-Lite: mscale 0.707 */
    hp.yarn_mscale = hp.yarn_mscale_all_dim = 0.707f;
    ASSERT_NEAR(dsv3__attn_scale(&hp), 0.1147214, 1e-6);
    hp.yarn_mscale = 1.0f; /* a cos/sin factor only when the two differ */
    ASSERT_NEAR(dsv3__rope_scale(&hp), (1 + 0.1 * log(40.0)) / (1 + 0.0707 * log(40.0)), 1e-6);
    /* no YaRN: plain theta, plain 1/sqrt(d_q) */
    hp.rope_yarn = 0;
    dsv3__rope_freqs(&hp, g);
    ASSERT_NEAR(g[31], pow(10000.0, -62.0 / 64), 1e-10);
    ASSERT_NEAR(dsv3__attn_scale(&hp), 1 / sqrt(192.0), 1e-8);
}
END_TEST

START_TEST(rope_interleaved)
{
    /* 2 rows, 2 heads of 4 rope dims after 1 leading value, head stride 5 */
    float x[2 * 11], freqs[2] = {0.5f, 0.1f};
    for (int i = 0; i < 22; i++)
        x[i] = (float)(i % 5) - 1.0f;
    float orig[22];
    memcpy(orig, x, sizeof x);
    dsv3_op_rope_args a = {.x = x, .freqs = freqs, .T = 2, .ldx = 11, .offset = 1,
                           .head_stride = 5, .n_heads = 2, .dim = 4, .pos0 = 3, .scale = 1};
    ck_assert_int_eq(run(DSV3_OP_ROPE, &a, 1), DSV3_OK);
    for (int t = 0; t < 2; t++)
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < 2; i++) {
                int b = t * 11 + 1 + h * 5 + 2 * i;
                double phi = (3 + t) * (double)freqs[i];
                double x0 = orig[b], x1 = orig[b + 1];
                ASSERT_NEAR(x[b], x0 * cos(phi) - x1 * sin(phi), 1e-6);
                ASSERT_NEAR(x[b + 1], x0 * sin(phi) + x1 * cos(phi), 1e-6);
            }
    ASSERT_NEAR(x[0], orig[0], 0);   /* not rotated */
    ASSERT_NEAR(x[10], orig[10], 0); /* past the last head */
    /* a unit vector at angle 0 goes to (cos, sin) * scale */
    float v[2] = {1, 0}, fr = 1;
    a = (dsv3_op_rope_args){.x = v, .freqs = &fr, .T = 1, .ldx = 2, .n_heads = 1, .dim = 2,
                            .pos0 = 2, .scale = 0.5f};
    ck_assert_int_eq(run(DSV3_OP_ROPE, &a, 1), DSV3_OK);
    ASSERT_NEAR(v[0], 0.5 * cos(2.0), 1e-7);
    ASSERT_NEAR(v[1], 0.5 * sin(2.0), 1e-7);
}
END_TEST

/* ---- attention ------------------------------------------------------------------ */

enum { NH = 2, DN = 3, DR = 2, DV = 2, RK = 4, NKV = 5, QT = 2, QPOS = 3 };

typedef struct attn_case {
    float q[QT][NH * (DN + DR)];
    float cache[NKV][RK + DR];
    float wkvb[NH][DN + DV][RK];
    double want[QT][NH * DV];
} attn_case;

/* Expected output computed the plain way: decompress keys and values, then
 * softmax attention over keys 0 ... pos in double. */
static void attn_expect(attn_case *c, float scale)
{
    for (int t = 0; t < QT; t++)
        for (int h = 0; h < NH; h++) {
            int n = QPOS + t + 1;
            double s[NKV], mx = -1e300, sum = 0;
            for (int j = 0; j < n; j++) {
                double acc = 0;
                for (int i = 0; i < DN; i++) {
                    double k = 0;
                    for (int r = 0; r < RK; r++)
                        k += c->wkvb[h][i][r] * c->cache[j][r];
                    acc += c->q[t][h * (DN + DR) + i] * k;
                }
                for (int i = 0; i < DR; i++)
                    acc += c->q[t][h * (DN + DR) + DN + i] * c->cache[j][RK + i];
                s[j] = scale * acc;
                mx = s[j] > mx ? s[j] : mx;
            }
            for (int j = 0; j < n; j++)
                sum += (s[j] = exp(s[j] - mx));
            for (int i = 0; i < DV; i++) {
                double o = 0;
                for (int j = 0; j < n; j++) {
                    double v = 0;
                    for (int r = 0; r < RK; r++)
                        v += c->wkvb[h][DN + i][r] * c->cache[j][r];
                    o += s[j] / sum * v;
                }
                c->want[t][h * DV + i] = o;
            }
        }
}

static void attn_fill(attn_case *c)
{
    float *p = &c->q[0][0];
    for (size_t i = 0; i < sizeof c->q / 4; i++)
        p[i] = 2 * frand();
    p = &c->cache[0][0];
    for (size_t i = 0; i < sizeof c->cache / 4; i++)
        p[i] = frand();
    p = &c->wkvb[0][0][0];
    for (size_t i = 0; i < sizeof c->wkvb / 4; i++)
        p[i] = frand();
}

START_TEST(mla_attn_absorbed)
{
    attn_case c;
    attn_fill(&c);
    c.cache[4][0] = 1e30f; /* row 4 is the future of query row 0 */
    attn_expect(&c, 0.7f);
    float out[QT][NH * DV];
    dsv3_op_mla_attn_args a = {.q = &c.q[0][0], .cache = &c.cache[0][0], .wkv_b = &c.wkvb[0][0][0],
                               .out = &out[0][0], .cache_dtype = DSV3_DTYPE_F32, .T = QT,
                               .pos0 = QPOS, .n_heads = NH, .d_nope = DN, .d_rope = DR,
                               .d_v = DV, .kv_rank = RK, .ldq = NH * (DN + DR),
                               .ld_cache = RK + DR, .ld_out = NH * DV, .scale = 0.7f};
    ck_assert_int_eq(run(DSV3_OP_MLA_ATTN, &a, 1), DSV3_OK);
    for (int i = 0; i < NH * DV; i++)
        ASSERT_NEAR(out[0][i], c.want[0][i], 1e-5);
    /* second query row sees row 4: use a finite value */
    c.cache[4][0] = 0.3f;
    attn_expect(&c, 0.7f);
    ck_assert_int_eq(run(DSV3_OP_MLA_ATTN, &a, 3), DSV3_OK);
    for (int t = 0; t < QT; t++)
        for (int i = 0; i < NH * DV; i++)
            ASSERT_NEAR(out[t][i], c.want[t][i], 1e-5);
    /* BF16 cache: the same numbers after rounding the cache */
    uint16_t cb[NKV][RK + DR];
    for (int j = 0; j < NKV; j++)
        for (int i = 0; i < RK + DR; i++) {
            cb[j][i] = dsv3__f32_to_bf16(c.cache[j][i]);
            c.cache[j][i] = dsv3__bf16_to_f32(cb[j][i]);
        }
    attn_expect(&c, 0.7f);
    a.cache = cb;
    a.cache_dtype = DSV3_DTYPE_BF16;
    ck_assert_int_eq(run(DSV3_OP_MLA_ATTN, &a, 1), DSV3_OK);
    for (int t = 0; t < QT; t++)
        for (int i = 0; i < NH * DV; i++)
            ASSERT_NEAR(out[t][i], c.want[t][i], 1e-5);
    a.cache_dtype = DSV3_DTYPE_F16;
    ck_assert_int_eq(run(DSV3_OP_MLA_ATTN, &a, 1), DSV3_E_UNSUPPORTED);
}
END_TEST

START_TEST(mha_naive)
{
    attn_case c;
    attn_fill(&c);
    attn_expect(&c, 0.45f);
    /* decompress here: kv[j] per head [k_nope ; v] */
    float kv[NKV][NH * (DN + DV)], kr[NKV][DR];
    for (int j = 0; j < NKV; j++) {
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < DN + DV; i++) {
                double acc = 0;
                for (int r = 0; r < RK; r++)
                    acc += c.wkvb[h][i][r] * c.cache[j][r];
                kv[j][h * (DN + DV) + i] = (float)acc;
            }
        for (int i = 0; i < DR; i++)
            kr[j][i] = c.cache[j][RK + i];
    }
    float out[QT][NH * DV];
    dsv3_op_mha_args a = {.q = &c.q[0][0], .kv = &kv[0][0], .k_rope = &kr[0][0],
                          .out = &out[0][0], .T = QT, .pos0 = QPOS, .n_heads = NH,
                          .d_nope = DN, .d_rope = DR, .d_v = DV, .ldq = NH * (DN + DR),
                          .ld_kv = NH * (DN + DV), .ld_kr = DR, .ld_out = NH * DV,
                          .scale = 0.45f};
    ck_assert_int_eq(run(DSV3_OP_MHA, &a, 2), DSV3_OK);
    for (int t = 0; t < QT; t++)
        for (int i = 0; i < NH * DV; i++)
            ASSERT_NEAR(out[t][i], c.want[t][i], 1e-5);
}
END_TEST

/* ---- routing ------------------------------------------------------------------ */

static float logit(double p) /* inverse sigmoid */
{
    return (float)log(p / (1 - p));
}

static void route(const float *z, const float *bias, int64_t E, int64_t k, int64_t G,
                  int64_t Gk, int32_t scoring, int32_t groups, int renorm, float rho,
                  int32_t *idx, float *w)
{
    dsv3_op_route_args a = {.logits = z, .bias = bias, .idx = idx, .weight = w, .T = 1, .ld = E,
                            .n_experts = E, .k = k, .n_group = G, .topk_group = Gk,
                            .scoring = scoring, .groups = groups, .renorm = renorm,
                            .scaling = rho};
    ck_assert_int_eq(run(DSV3_OP_ROUTE, &a, 1), DSV3_OK);
}

START_TEST(route_bias_selects_not_weights)
{
    float z[4] = {logit(0.6), logit(0.5), logit(0.3), logit(0.2)};
    float bias[4] = {0, 0.2f, 0, 0};
    int32_t idx[2];
    float w[2];
    route(z, bias, 4, 1, 1, 1, DSV3_ROUTE_SIGMOID, DSV3_GROUPS_TOP2, 0, 2.5f, idx, w);
    ck_assert_int_eq(idx[0], 1); /* 0.5 + 0.2 beats 0.6 */
    ASSERT_NEAR(w[0], 2.5 * 0.5, 1e-6); /* the unbiased score, scaled */
    route(z, NULL, 4, 1, 1, 1, DSV3_ROUTE_SIGMOID, DSV3_GROUPS_NONE, 1, 2.5f, idx, w);
    ck_assert_int_eq(idx[0], 0);
    /* k = 2 renormalises by the unbiased scores, then scales */
    route(z, bias, 4, 2, 1, 1, DSV3_ROUTE_SIGMOID, DSV3_GROUPS_TOP2, 1, 2.5f, idx, w);
    ck_assert_int_eq(idx[0], 1);
    ck_assert_int_eq(idx[1], 0);
    ASSERT_NEAR(w[0], 2.5 * 0.5 / 1.1, 1e-6);
    ASSERT_NEAR(w[1], 2.5 * 0.6 / 1.1, 1e-6);
}
END_TEST

START_TEST(route_groups_top2_vs_max)
{
    /* 4 groups of 2. Group 0 has the single best expert (0.9 + 0.1), group 1
     * the best pair (0.7 + 0.7), group 2 (0.6 + 0.5), group 3 (0.2 + 0.2). */
    double p[8] = {0.9, 0.1, 0.7, 0.7, 0.6, 0.5, 0.2, 0.2};
    float z[8], zero[8] = {0};
    for (int i = 0; i < 8; i++)
        z[i] = logit(p[i]);
    int32_t idx[3];
    float w[3];
    /* top-2 sums: g1 1.4, g2 1.1, g0 1.0 -> keep g1, g2 -> experts 2, 3, 4 */
    route(z, zero, 8, 3, 4, 2, DSV3_ROUTE_SIGMOID, DSV3_GROUPS_TOP2, 1, 1.0f, idx, w);
    ck_assert_int_eq(idx[0], 2);
    ck_assert_int_eq(idx[1], 3);
    ck_assert_int_eq(idx[2], 4);
    ASSERT_NEAR(w[0], 0.7 / 2.0, 1e-6);
    ASSERT_NEAR(w[2], 0.6 / 2.0, 1e-6);
    /* max: g0 0.9, g1 0.7 -> experts 0, 2, 3 */
    route(z, NULL, 8, 3, 4, 2, DSV3_ROUTE_SIGMOID, DSV3_GROUPS_MAX, 0, 1.0f, idx, w);
    ck_assert_int_eq(idx[0], 0);
    ck_assert_int_eq(idx[1], 2);
    ck_assert_int_eq(idx[2], 3);
    ASSERT_NEAR(w[0], 0.9, 1e-6);
}
END_TEST

START_TEST(route_dropped_groups_negative_scores)
{
    /* biased scores: group 0 (-0.3, -0.4) sum -0.7, group 1 (-0.5, -0.6)
     * sum -1.1: keep group 0. A 0.0 fill would pick group 1's experts. */
    double p[4] = {0.5, 0.4, 0.3, 0.2};
    float z[4], bias[4] = {-0.8f, -0.8f, -0.8f, -0.8f};
    for (int i = 0; i < 4; i++)
        z[i] = logit(p[i]);
    int32_t idx[2];
    float w[2];
    route(z, bias, 4, 2, 2, 1, DSV3_ROUTE_SIGMOID, DSV3_GROUPS_TOP2, 1, 2.5f, idx, w);
    ck_assert_int_eq(idx[0], 0);
    ck_assert_int_eq(idx[1], 1);
    ASSERT_NEAR(w[0], 2.5 * 0.5 / 0.9, 1e-6);
    ASSERT_NEAR(w[1], 2.5 * 0.4 / 0.9, 1e-6);
    /* make group 1 win through the bias while its own experts stay low */
    float bias2[4] = {-0.8f, -0.8f, 0.5f, 0.5f};
    route(z, bias2, 4, 2, 2, 1, DSV3_ROUTE_SIGMOID, DSV3_GROUPS_TOP2, 1, 1.0f, idx, w);
    ck_assert_int_eq(idx[0], 2);
    ck_assert_int_eq(idx[1], 3);
    ASSERT_NEAR(w[0], 0.3 / 0.5, 1e-6);
}
END_TEST

START_TEST(route_ties_lower_index)
{
    float z[8] = {0}, bias[8] = {0};
    int32_t idx[4];
    float w[4];
    route(z, bias, 8, 4, 4, 2, DSV3_ROUTE_SIGMOID, DSV3_GROUPS_TOP2, 1, 1.0f, idx, w);
    ck_assert_int_eq(idx[0], 0);
    ck_assert_int_eq(idx[1], 1);
    ck_assert_int_eq(idx[2], 2);
    ck_assert_int_eq(idx[3], 3);
    ASSERT_NEAR(w[0], 0.25, 1e-7);
}
END_TEST

START_TEST(route_softmax_v2)
{
    float z[6] = {1, 2, 0.5f, 3, -1, 2.5f};
    double e[6], sum = 0;
    for (int i = 0; i < 6; i++)
        sum += (e[i] = exp(z[i]));
    int32_t idx[2];
    float w[2];
    /* V2-Lite: greedy top-2 of softmax, no renormalisation, rho 1 */
    route(z, NULL, 6, 2, 1, 1, DSV3_ROUTE_SOFTMAX, DSV3_GROUPS_NONE, 0, 1.0f, idx, w);
    ck_assert_int_eq(idx[0], 3);
    ck_assert_int_eq(idx[1], 5);
    ASSERT_NEAR(w[0], e[3] / sum, 1e-6);
    ASSERT_NEAR(w[1], e[5] / sum, 1e-6);
    /* V2: 3 groups of 2 scored by max, keep 1: group 1 (2, 3) -> experts 3, 2 */
    route(z, NULL, 6, 2, 3, 1, DSV3_ROUTE_SOFTMAX, DSV3_GROUPS_MAX, 0, 16.0f, idx, w);
    ck_assert_int_eq(idx[0], 3);
    ck_assert_int_eq(idx[1], 2);
    ASSERT_NEAR(w[1], 16 * e[2] / sum, 1e-5);
    /* a group count that does not divide the experts is refused */
    dsv3_op_route_args bad = {.logits = z, .idx = idx, .weight = w, .T = 1, .ld = 6,
                              .n_experts = 6, .k = 2, .n_group = 4, .topk_group = 2,
                              .groups = DSV3_GROUPS_MAX};
    ck_assert_int_eq(run(DSV3_OP_ROUTE, &bad, 1), DSV3_E_INVAL);
}
END_TEST

/* ---- routed experts ------------------------------------------------------------ */

START_TEST(moe_weighted_sum)
{
    enum { E = 3, D = 3, F = 2, T = 2, K = 2 };
    float gate[E][F][D], up[E][F][D], down[E][D][F];
    for (int e = 0; e < E; e++)
        for (int i = 0; i < F; i++)
            for (int j = 0; j < D; j++) {
                gate[e][i][j] = frand();
                up[e][i][j] = frand();
                down[e][j][i] = frand();
            }
    float x[T][D] = {{0.5f, -1, 2}, {1, 1, -0.25f}};
    int32_t idx[T][K] = {{2, 0}, {1, 2}};
    float w[T][K] = {{0.75f, 0.5f}, {1.5f, -0.25f}};
    float y[T][D + 1];
    dsv3_tensor tg = {.dtype = DSV3_DTYPE_F32, .n_dims = 3, .ne = {E, F, D, 1}, .data = gate};
    dsv3_tensor tu = tg, td = tg;
    tu.data = up;
    td.ne[1] = D;
    td.ne[2] = F;
    td.data = down;
    dsv3_op_moe_args a = {.gate = &tg, .up = &tu, .down = &td, .x = &x[0][0], .idx = &idx[0][0],
                          .weight = &w[0][0], .y = &y[0][0], .T = T, .k = K, .ldx = D,
                          .ldy = D + 1};
    ck_assert_int_eq(run(DSV3_OP_MOE, &a, 1), DSV3_OK);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < D; j++) {
            double want = 0;
            for (int s = 0; s < K; s++) {
                int e = idx[t][s];
                double o = 0;
                for (int i = 0; i < F; i++) {
                    double g = 0, u = 0;
                    for (int c = 0; c < D; c++) {
                        g += gate[e][i][c] * x[t][c];
                        u += up[e][i][c] * x[t][c];
                    }
                    o += down[e][j][i] * (g / (1 + exp(-g)) * u);
                }
                want += w[t][s] * o;
            }
            ASSERT_NEAR(y[t][j], want, 1e-5);
        }
    idx[1][0] = 3;
    ck_assert_int_eq(run(DSV3_OP_MOE, &a, 1), DSV3_E_INVAL);
}
END_TEST

static Suite *ops_suite(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("matmul");
    tcase_add_checked_fixture(tc, be_setup, be_teardown);
    tcase_add_test(tc, matmul_f32_by_hand);
    tcase_add_test(tc, matmul_bf16_f16);
    tcase_add_test(tc, fp8_table_values);
    tcase_add_test(tc, matmul_fp8_partial_blocks);
    tcase_add_test(tc, matmul_fp8_expert_stack);
    tcase_add_test(tc, matmul_threads_bitwise);
    tcase_add_test(tc, op_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("elementwise");
    tcase_add_checked_fixture(tc, be_setup, be_teardown);
    tcase_add_test(tc, embed_rows);
    tcase_add_test(tc, rmsnorm_by_hand);
    tcase_add_test(tc, copy_convert);
    tcase_add_test(tc, swiglu_add_argmax);
    suite_add_tcase(s, tc);
    tc = tcase_create("rope");
    tcase_add_checked_fixture(tc, be_setup, be_teardown);
    tcase_add_test(tc, yarn_tiny_numbers);
    tcase_add_test(tc, rope_interleaved);
    suite_add_tcase(s, tc);
    tc = tcase_create("attention");
    tcase_add_checked_fixture(tc, be_setup, be_teardown);
    tcase_add_test(tc, mla_attn_absorbed);
    tcase_add_test(tc, mha_naive);
    suite_add_tcase(s, tc);
    tc = tcase_create("routing");
    tcase_add_checked_fixture(tc, be_setup, be_teardown);
    tcase_add_test(tc, route_bias_selects_not_weights);
    tcase_add_test(tc, route_groups_top2_vs_max);
    tcase_add_test(tc, route_dropped_groups_negative_scores);
    tcase_add_test(tc, route_ties_lower_index);
    tcase_add_test(tc, route_softmax_v2);
    tcase_add_test(tc, moe_weighted_sum);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(ops_suite());
}
