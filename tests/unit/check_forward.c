/*
 * check_forward.c - the forward pass and the context API on in-memory
 * synthetic models: consistency properties (prefill vs decode, chunking,
 * threads, naive vs absorbed MLA, rollback, MTP), context misuse and
 * errors, cancellation, OOM injection, state save/load.
 * (Logits against the independent reference: check_reference.c.)
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tinymodel.h"

static tm_model tm;

/* Two evaluations of the same positions that differ only in how tokens are
 * batched into calls. The scalar ops give identical bits; optimised kernels
 * may sum in another order for another batch shape, so allow rounding. The
 * thread count, in contrast, must never change a bit. */
#define SAME_TOL 1e-5

static void tiny_setup(void)
{
    dsv3_hparams hp = tm_tiny_hparams();
    ck_assert_int_eq(tm_model_init(&tm, &hp, DSV3_DTYPE_BF16, 1, 7, NULL), DSV3_OK);
}

static void teardown(void)
{
    tm_model_release(&tm);
}

static void tokens(int32_t *t, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        t[i] = (int32_t)((seed >> 8) % 1024);
    }
}

static dsv3_context *ctx_new(dsv3_model *m, uint32_t flags, uint32_t n_ctx, uint32_t n_batch,
                             int32_t kv_dtype)
{
    dsv3_context_params p;
    dsv3_context_params_init(&p, sizeof p);
    p.flags = flags;
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    p.n_threads = 1;
    p.kv_dtype = kv_dtype;
    dsv3_context *c = NULL;
    int rc = dsv3_context_new(m, &p, &c);
    ck_assert_msg(rc == DSV3_OK, "context_new: %s", dsv3_context_errmsg(c));
    return c;
}

/* Decode tokens in one call (ALL_LOGITS) and copy the rows out. */
static float *decode_rows(dsv3_context *c, const int32_t *t, size_t n)
{
    size_t V = 1024;
    int rc = dsv3_context_decode(c, t, n, DSV3_DECODE_ALL_LOGITS);
    ck_assert_msg(rc == DSV3_OK, "decode: %s", dsv3_context_errmsg(c));
    float *out = malloc(n * V * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        const float *l;
        ck_assert_int_eq(dsv3_context_logits(c, (int32_t)i, &l), DSV3_OK);
        memcpy(out + i * V, l, V * sizeof(float));
    }
    return out;
}

static double maxdiff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m))
            m = d;
    }
    return m;
}

static double maxabs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

/* ---- consistency ---------------------------------------------------------------- */

START_TEST(prefill_equals_decode)
{
    int32_t t[12];
    tokens(t, 12, 1);
    dsv3_context *a = ctx_new(tm.m, 0, 64, 0, 0), *b = ctx_new(tm.m, 0, 64, 0, 0);
    float *all = decode_rows(a, t, 12);
    ck_assert(maxabs(all, 12 * 1024) > 0.1); /* not degenerate */
    for (int i = 0; i < 12; i++) {
        float *row = decode_rows(b, t + i, 1);
        double d = maxdiff(row, all + i * 1024, 1024);
        ck_assert_msg(d <= SAME_TOL, "position %d differs by %g", i, d);
        free(row);
    }
    ck_assert_uint_eq(dsv3_context_n_past(b), 12);
    free(all);
    dsv3_context_free(a);
    dsv3_context_free(b);
}
END_TEST

START_TEST(chunked_and_multi_token_calls)
{
    int32_t t[12];
    tokens(t, 12, 2);
    dsv3_context *a = ctx_new(tm.m, 0, 64, 0, 0), *b = ctx_new(tm.m, 0, 64, 5, 0);
    float *ref = decode_rows(a, t, 12);
    float *chunked = decode_rows(b, t, 12); /* chunks of 5, 5, 2 */
    ck_assert(maxdiff(ref, chunked, 12 * 1024) <= SAME_TOL);
    /* several new tokens on a non-empty cache, last-row logits only */
    dsv3_context_clear(b);
    ck_assert_int_eq(dsv3_context_decode(b, t, 7, 0), DSV3_OK);
    ck_assert_int_eq(dsv3_context_decode(b, t + 7, 5, 0), DSV3_OK);
    const float *l;
    ck_assert_int_eq(dsv3_context_logits(b, -1, &l), DSV3_OK);
    ck_assert(maxdiff(l, ref + 11 * 1024, 1024) <= SAME_TOL);
    ck_assert_int_eq(dsv3_context_logits(b, 4, &l), DSV3_OK); /* row 4 = the last one */
    ck_assert_int_eq(dsv3_context_logits(b, 3, &l), DSV3_E_RANGE);
    free(ref);
    free(chunked);
    dsv3_context_free(a);
    dsv3_context_free(b);
}
END_TEST

START_TEST(threads_do_not_change_results)
{
    int32_t t[9];
    tokens(t, 9, 3);
    dsv3_context *a = ctx_new(tm.m, 0, 64, 0, 0), *b = ctx_new(tm.m, 0, 64, 0, 0);
    ck_assert_int_eq(dsv3_context_set_param(b, DSV3_CTX_PARAM_N_THREADS, 3), DSV3_OK);
    float *x = decode_rows(a, t, 9), *y = decode_rows(b, t, 9);
    ck_assert(maxdiff(x, y, 9 * 1024) == 0);
    free(x);
    free(y);
    dsv3_context_free(a);
    dsv3_context_free(b);
}
END_TEST

static void naive_vs_absorbed(dsv3_model *m, double *worst)
{
    int32_t t[10];
    tokens(t, 10, 4);
    dsv3_context *a = ctx_new(m, 0, 64, 4, 0);
    dsv3_context *n = ctx_new(m, DSV3_CONTEXT_NAIVE_ATTN, 64, 4, 0);
    float *x = decode_rows(a, t, 7), *y = decode_rows(n, t, 7);
    double d = maxdiff(x, y, 7 * 1024);
    ck_assert(maxabs(x, 7 * 1024) > 0.1);
    free(x);
    free(y);
    for (int i = 7; i < 10; i++) {
        x = decode_rows(a, t + i, 1);
        y = decode_rows(n, t + i, 1);
        double e = maxdiff(x, y, 1024);
        d = e > d ? e : d;
        free(x);
        free(y);
    }
    ck_assert_msg(d < 1e-4, "naive and absorbed differ by %g", d);
    *worst = d;
    dsv3_context_free(a);
    dsv3_context_free(n);
}

START_TEST(naive_matches_absorbed)
{
    double d;
    naive_vs_absorbed(tm.m, &d);
    ck_assert(d > 0); /* two different computations */
}
END_TEST

START_TEST(naive_matches_absorbed_fp8_noq)
{
    tm_model f;
    dsv3_hparams hp = tm_tiny_hparams();
    hp.q_lora_rank = 0;
    ck_assert_int_eq(tm_model_init(&f, &hp, DSV3_DTYPE_FP8_E4M3, 1, 11, NULL), DSV3_OK);
    double d;
    naive_vs_absorbed(f.m, &d);
    tm_model_release(&f);
}
END_TEST

START_TEST(v2_routing_variants)
{
    /* V2: softmax, group-limited greedy by max, no bias, no renormalisation,
     * rho 16; V2-Lite: softmax, plain greedy, one group; both without q_lora
     * and MTP. */
    for (int lite = 0; lite < 2; lite++) {
        dsv3_hparams hp = tm_tiny_hparams();
        hp.q_lora_rank = 0;
        hp.scoring = DSV3_SCORING_SOFTMAX;
        hp.topk_method = lite ? DSV3_TOPK_GREEDY : DSV3_TOPK_GROUP_LIMITED_GREEDY;
        hp.norm_topk_prob = 0;
        hp.routed_scaling = lite ? 1.0f : 16.0f;
        hp.n_group = lite ? 1 : 4;
        hp.topk_group = lite ? 1 : 2;
        hp.first_k_dense = 1;
        hp.n_shared_experts = 2;
        hp.n_mtp = 0;
        hp.yarn_mscale = hp.yarn_mscale_all_dim = 0.707f;
        tm_model v;
        ck_assert_int_eq(tm_model_init(&v, &hp, DSV3_DTYPE_BF16, 0, 21 + lite, NULL), DSV3_OK);
        ck_assert_ptr_null(v.m->w.layers[1].router_bias.data);
        double d;
        naive_vs_absorbed(v.m, &d);
        dsv3_context_params p;
        dsv3_context_params_init(&p, sizeof p);
        p.flags = DSV3_CONTEXT_MTP;
        dsv3_context *c = NULL;
        ck_assert_int_eq(dsv3_context_new(v.m, &p, &c), DSV3_E_UNSUPPORTED);
        dsv3_context_free(c);
        tm_model_release(&v);
    }
}
END_TEST

START_TEST(bf16_cache_close_to_f32)
{
    int32_t t[8];
    tokens(t, 8, 5);
    dsv3_context *a = ctx_new(tm.m, 0, 64, 0, 0);
    dsv3_context *b = ctx_new(tm.m, 0, 64, 0, DSV3_DTYPE_BF16);
    float *x = decode_rows(a, t, 8), *y = decode_rows(b, t, 8);
    double d = maxdiff(x, y, 8 * 1024);
    ck_assert_msg(d > 0 && d < 0.05, "bf16 cache differs by %g", d);
    free(x);
    free(y);
    dsv3_context_free(a);
    dsv3_context_free(b);
}
END_TEST

START_TEST(truncate_and_redecode)
{
    int32_t t[8], u[3];
    tokens(t, 8, 6);
    tokens(u, 3, 7);
    dsv3_context *a = ctx_new(tm.m, 0, 64, 0, 0), *b = ctx_new(tm.m, 0, 64, 0, 0);
    ck_assert_int_eq(dsv3_context_decode(a, t, 8, 0), DSV3_OK);
    ck_assert_int_eq(dsv3_context_truncate(a, 9), DSV3_E_RANGE);
    ck_assert_int_eq(dsv3_context_truncate(a, 5), DSV3_OK);
    ck_assert_uint_eq(dsv3_context_n_past(a), 5);
    const float *l;
    ck_assert_int_eq(dsv3_context_logits(a, -1, &l), DSV3_E_MISUSE); /* position 7 dropped */
    float *x = decode_rows(a, u, 3);
    int32_t v[8];
    memcpy(v, t, 5 * sizeof *t);
    memcpy(v + 5, u, 3 * sizeof *u);
    float *y = decode_rows(b, v, 8);
    ck_assert(maxdiff(x, y + 5 * 1024, 3 * 1024) <= SAME_TOL);
    /* logits of kept positions survive a truncation */
    ck_assert_int_eq(dsv3_context_truncate(b, 7), DSV3_OK);
    ck_assert_int_eq(dsv3_context_logits(b, -1, &l), DSV3_OK);
    ck_assert(maxdiff(l, y + 6 * 1024, 1024) == 0);
    ck_assert_int_eq(dsv3_context_logits(b, 6, &l), DSV3_OK);
    ck_assert_int_eq(dsv3_context_logits(b, 7, &l), DSV3_E_RANGE);
    ck_assert_int_eq(dsv3_context_truncate(b, 0), DSV3_OK);
    ck_assert_int_eq(dsv3_context_logits(b, 0, &l), DSV3_E_MISUSE);
    free(x);
    free(y);
    dsv3_context_free(a);
    dsv3_context_free(b);
}
END_TEST

/* ---- MTP --------------------------------------------------------------------------- */

static int32_t argmax(const float *l, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[b])
            b = i;
    return b;
}

START_TEST(mtp_batch_equals_incremental)
{
    enum { N = 9 };
    int32_t t[N + 1];
    tokens(t, N, 8);
    dsv3_context *a = ctx_new(tm.m, DSV3_CONTEXT_MTP, 64, 4, 0);
    dsv3_context *b = ctx_new(tm.m, DSV3_CONTEXT_MTP, 64, 0, 0);
    float *rows = decode_rows(a, t, N);
    t[N] = argmax(rows + (N - 1) * 1024, 1024);
    ck_assert_int_eq(dsv3__context_mtp_eval(a, t + 1, N, DSV3_DECODE_ALL_LOGITS), DSV3_OK);
    float *draft = malloc(N * 1024 * sizeof(float));
    for (int i = 0; i < N; i++) {
        const float *l;
        ck_assert_int_eq(dsv3__context_mtp_logits(a, i, &l), DSV3_OK);
        memcpy(draft + i * 1024, l, 1024 * sizeof(float));
    }
    ck_assert(maxabs(draft, N * 1024) > 0.1);
    ck_assert(maxdiff(draft, rows, N * 1024) > 0.1); /* not the main logits */
    /* one position at a time: decode t_i, then the MTP entry (h_i, t_{i+1}) */
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(dsv3_context_decode(b, t + i, 1, 0), DSV3_OK);
        ck_assert_int_eq(dsv3__context_mtp_eval(b, t + i + 1, 1, 0), DSV3_OK);
        const float *l;
        ck_assert_int_eq(dsv3__context_mtp_logits(b, -1, &l), DSV3_OK);
        ck_assert_msg(maxdiff(l, draft + i * 1024, 1024) <= SAME_TOL, "MTP entry %d differs", i);
    }
    /* entry 9 needs the hidden state of position 9, not evaluated yet */
    ck_assert_int_eq(dsv3__context_mtp_eval(b, t, 1, 0), DSV3_E_MISUSE);
    /* rollback: keep 6 positions; entries 0 ... 4 survive (entry i used t_{i+1}) */
    ck_assert_int_eq(dsv3_context_truncate(b, 6), DSV3_OK);
    ck_assert_uint_eq(b->mtp_n_past, 5);
    ck_assert_int_eq(dsv3_context_decode(b, t + 6, 3, 0), DSV3_OK);
    ck_assert_int_eq(dsv3__context_mtp_eval(b, t + 6, 4, DSV3_DECODE_ALL_LOGITS), DSV3_OK);
    for (int i = 5; i < N; i++) {
        const float *l;
        ck_assert_int_eq(dsv3__context_mtp_logits(b, i - 5, &l), DSV3_OK);
        ck_assert_msg(maxdiff(l, draft + i * 1024, 1024) <= SAME_TOL, "entry %d after rollback",
                      i);
    }
    free(rows);
    free(draft);
    dsv3_context_free(a);
    dsv3_context_free(b);
}
END_TEST

START_TEST(mtp_rollback_exact)
{
    enum { N = 8 };
    int32_t t[N + 1];
    tokens(t, N + 1, 9);
    dsv3_context *a = ctx_new(tm.m, DSV3_CONTEXT_MTP, 64, 0, 0);
    dsv3_context *b = ctx_new(tm.m, DSV3_CONTEXT_MTP, 64, 0, 0);
    /* a: straight through */
    ck_assert_int_eq(dsv3_context_decode(a, t, N, 0), DSV3_OK);
    ck_assert_int_eq(dsv3__context_mtp_eval(a, t + 1, N, DSV3_DECODE_ALL_LOGITS), DSV3_OK);
    /* b: a wrong continuation, rolled back, then the right one */
    int32_t wrong[5] = {5, 6, 7, 8, 9};
    ck_assert_int_eq(dsv3_context_decode(b, t, 5, 0), DSV3_OK);
    ck_assert_int_eq(dsv3__context_mtp_eval(b, t + 1, 4, 0), DSV3_OK);
    ck_assert_int_eq(dsv3_context_decode(b, wrong, 3, 0), DSV3_OK);
    ck_assert_int_eq(dsv3__context_mtp_eval(b, wrong, 5, 0), DSV3_E_MISUSE); /* needs h_8 */
    ck_assert_int_eq(dsv3__context_mtp_eval(b, wrong, 3, 0), DSV3_OK);
    ck_assert_uint_eq(b->mtp_n_past, 7);
    ck_assert_int_eq(dsv3_context_truncate(b, 5), DSV3_OK);
    ck_assert_uint_eq(b->mtp_n_past, 4);
    ck_assert_int_eq(dsv3_context_decode(b, t + 5, 3, 0), DSV3_OK);
    ck_assert_int_eq(dsv3__context_mtp_eval(b, t + 5, 4, DSV3_DECODE_ALL_LOGITS), DSV3_OK);
    for (int i = 4; i < N; i++) {
        const float *x, *y;
        ck_assert_int_eq(dsv3__context_mtp_logits(a, i, &x), DSV3_OK);
        ck_assert_int_eq(dsv3__context_mtp_logits(b, i - 4, &y), DSV3_OK);
        ck_assert_msg(maxdiff(x, y, 1024) <= SAME_TOL, "entry %d differs after rollback", i);
    }
    dsv3_context_free(a);
    dsv3_context_free(b);
}
END_TEST

/* ---- generation on a real context ----------------------------------------------- */

typedef struct gen_rec {
    int32_t tok[64];
    int n, cancel_at;
    dsv3_context *ctx;
} gen_rec;

static int collect(const dsv3_token_event *ev, void *ud)
{
    gen_rec *r = ud;
    r->tok[r->n++] = ev->token;
    if (r->cancel_at && r->n == r->cancel_at)
        dsv3_context_cancel(r->ctx);
    return 0;
}

START_TEST(generate_greedy_matches_decode)
{
    int32_t prompt[5];
    tokens(prompt, 5, 13);
    dsv3_context *a = ctx_new(tm.m, 0, 64, 0, 0), *b = ctx_new(tm.m, 0, 64, 0, 0);
    dsv3_sampler_params sp;
    dsv3_sampler_params_init(&sp, sizeof sp);
    sp.temperature = 0;
    dsv3_sampler *smp = NULL;
    ck_assert_int_eq(dsv3_sampler_new(&sp, &smp), DSV3_OK);
    dsv3_generate_params gp;
    dsv3_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = 8;
    gp.flags = DSV3_GENERATE_IGNORE_EOS;
    gen_rec rec = {.ctx = a};
    dsv3_generate_result res = {.struct_size = sizeof res};
    ck_assert_int_eq(dsv3_generate(a, smp, prompt, 5, &gp, collect, &rec, &res), DSV3_OK);
    ck_assert_int_eq(res.stop_reason, DSV3_STOP_MAX_TOKENS);
    ck_assert_int_eq(rec.n, 8);
    ck_assert_uint_eq(dsv3_context_n_past(a), 13);
    ck_assert_int_eq(dsv3_context_decode(b, prompt, 5, 0), DSV3_OK);
    for (int i = 0; i < 8; i++) {
        const float *l;
        ck_assert_int_eq(dsv3_context_logits(b, -1, &l), DSV3_OK);
        int32_t t = argmax(l, 1024);
        ck_assert_int_eq(rec.tok[i], t);
        ck_assert_int_eq(dsv3_context_decode(b, &t, 1, 0), DSV3_OK);
    }
    /* a cancel from the token callback stops the generation */
    ck_assert_int_eq(dsv3_context_clear(a), DSV3_OK);
    ck_assert_int_eq(dsv3_sampler_reset(smp), DSV3_OK);
    rec = (gen_rec){.ctx = a, .cancel_at = 3};
    ck_assert_int_eq(dsv3_generate(a, smp, prompt, 5, &gp, collect, &rec, &res),
                     DSV3_E_CANCELED);
    ck_assert_int_eq(res.stop_reason, DSV3_STOP_CANCELED);
    ck_assert_int_eq(rec.n, 3);
    ck_assert_uint_lt(dsv3_context_n_past(a), 13);
    ck_assert_int_eq(dsv3_context_decode(a, prompt, 1, 0), DSV3_OK); /* still usable */
    dsv3_sampler_free(smp);
    dsv3_context_free(a);
    dsv3_context_free(b);
}
END_TEST

/* ---- errors and misuse ---------------------------------------------------------- */

START_TEST(decode_errors_evaluate_nothing)
{
    dsv3_context *c = ctx_new(tm.m, 0, 8, 0, 0);
    const float *l;
    int32_t t[8];
    tokens(t, 8, 10);
    ck_assert_int_eq(dsv3_context_logits(c, -1, &l), DSV3_E_MISUSE);
    ck_assert_str_ne(dsv3_context_errmsg(c), "");
    ck_assert_int_eq(dsv3_context_decode(c, NULL, 1, 0), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_context_decode(c, t, 0, 0), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_context_decode(c, t, 1, 0x80), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_context_decode(c, t, 6, 0), DSV3_OK);
    ck_assert_str_eq(dsv3_context_errmsg(c), "");
    const float *before;
    ck_assert_int_eq(dsv3_context_logits(c, -1, &before), DSV3_OK);
    float keep[1024];
    memcpy(keep, before, sizeof keep);
    int32_t bad[2] = {3, 1024};
    ck_assert_int_eq(dsv3_context_decode(c, bad, 2, 0), DSV3_E_RANGE);
    ck_assert_ptr_nonnull(strstr(dsv3_context_errmsg(c), "1024"));
    bad[1] = -5;
    ck_assert_int_eq(dsv3_context_decode(c, bad, 2, 0), DSV3_E_RANGE);
    ck_assert_int_eq(dsv3_context_decode(c, t, 3, 0), DSV3_E_CTX_FULL);
    ck_assert_uint_eq(dsv3_context_n_past(c), 6);
    ck_assert_int_eq(dsv3_context_logits(c, -1, &l), DSV3_OK);
    ck_assert(maxdiff(l, keep, 1024) == 0);
    ck_assert_int_eq(dsv3_context_logits(c, -1, NULL), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_context_decode(c, t + 6, 2, 0), DSV3_OK);
    ck_assert_int_eq(dsv3_context_decode(c, t, 1, 0), DSV3_E_CTX_FULL);
    ck_assert_int_eq(dsv3_context_clear(c), DSV3_OK);
    ck_assert_uint_eq(dsv3_context_n_past(c), 0);
    ck_assert_int_eq(dsv3_context_logits(c, -1, &l), DSV3_E_MISUSE);
    ck_assert_int_eq(dsv3__context_mtp_eval(c, t, 1, 0), DSV3_E_MISUSE);
    dsv3_context_free(c);
}
END_TEST

START_TEST(null_and_failed_handles)
{
    dsv3_context *c = NULL;
    ck_assert_int_eq(dsv3_context_new(tm.m, NULL, NULL), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_context_new(NULL, NULL, &c), DSV3_E_INVAL);
    ck_assert_ptr_nonnull(c); /* a failed handle carrying the message */
    ck_assert_str_eq(dsv3_context_errmsg(c), "model is NULL");
    int32_t t = 1;
    ck_assert_int_eq(dsv3_context_decode(c, &t, 1, 0), DSV3_E_MISUSE);
    ck_assert_int_eq(dsv3_context_truncate(c, 0), DSV3_E_MISUSE);
    ck_assert_uint_eq(dsv3_context_n_past(c), 0);
    dsv3_context_free(c);
    ck_assert_int_eq(dsv3_context_decode(NULL, &t, 1, 0), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_context_clear(NULL), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_context_truncate(NULL, 0), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_context_logits(NULL, -1, NULL), DSV3_E_INVAL);
    ck_assert_str_ne(dsv3_context_errmsg(NULL), "");
    ck_assert_uint_eq(dsv3_context_n_past(NULL), 0);
    dsv3_context_cancel(NULL);
    dsv3_context_free(NULL);
    size_t need;
    ck_assert_int_eq(dsv3_context_state_save(NULL, NULL, 0, &need), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_context_state_load(NULL, "", 0), DSV3_E_INVAL);
    /* a failed model handle */
    dsv3_model *bad = NULL;
    ck_assert_int_ne(dsv3_model_load(NULL, NULL, &bad), DSV3_OK);
    ck_assert_ptr_nonnull(bad);
    ck_assert_int_eq(dsv3_context_new(bad, NULL, &c), DSV3_E_MISUSE);
    ck_assert_str_ne(dsv3_context_errmsg(c), "");
    dsv3_context_free(c);
    dsv3_model_free(bad);
}
END_TEST

START_TEST(bad_params)
{
    struct {
        uint32_t flags, n_ctx;
        int32_t n_threads, kv_dtype;
        uint32_t n_batch;
        int want;
    } cases[] = {
        {0x100, 0, 0, 0, 0, DSV3_E_INVAL},
        {0, 257, 0, 0, 0, DSV3_E_INVAL}, /* beyond max_position_embeddings 256 */
        {0, 0, -1, 0, 0, DSV3_E_INVAL},
        {0, 0, 0, DSV3_DTYPE_FP8_E4M3, 0, DSV3_E_UNSUPPORTED},
        {0, 0, 0, 0, 1u << 20, DSV3_E_INVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dsv3_context_params p;
        dsv3_context_params_init(&p, sizeof p);
        p.flags = cases[i].flags;
        p.n_ctx = cases[i].n_ctx;
        p.n_threads = cases[i].n_threads;
        p.kv_dtype = cases[i].kv_dtype;
        p.n_batch = cases[i].n_batch;
        dsv3_context *c = NULL;
        ck_assert_int_eq(dsv3_context_new(tm.m, &p, &c), cases[i].want);
        ck_assert_str_ne(dsv3_context_errmsg(c), "");
        dsv3_context_free(c);
    }
    /* a larger params struct with a non-zero unknown tail */
    struct {
        dsv3_context_params p;
        uint32_t extra;
    } big;
    dsv3_context_params_init(&big.p, sizeof big);
    big.extra = 1;
    dsv3_context *c = NULL;
    ck_assert_int_eq(dsv3_context_new(tm.m, &big.p, &c), DSV3_E_UNSUPPORTED);
    dsv3_context_free(c);
    /* the model holds no MTP module */
    tm_model nm;
    dsv3_hparams hp = tm_tiny_hparams();
    ck_assert_int_eq(tm_model_init(&nm, &hp, DSV3_DTYPE_BF16, 0, 3, NULL), DSV3_OK);
    dsv3_context_params p;
    dsv3_context_params_init(&p, sizeof p);
    p.flags = DSV3_CONTEXT_MTP;
    ck_assert_int_eq(dsv3_context_new(nm.m, &p, &c), DSV3_E_UNSUPPORTED);
    dsv3_context_free(c);
    ck_assert_int_eq(dsv3_context_new(nm.m, NULL, &c), DSV3_OK);
    ck_assert_int_eq(dsv3_context_set_param(c, DSV3_CTX_PARAM_MTP, 1), DSV3_E_UNSUPPORTED);
    dsv3_context_free(c);
    tm_model_release(&nm);
}
END_TEST

START_TEST(params_get_set)
{
    dsv3_context *c = NULL;
    ck_assert_int_eq(dsv3_context_new(tm.m, NULL, &c), DSV3_OK);
    int64_t v, lo, hi;
    ck_assert_int_eq(dsv3_context_get_param(c, DSV3_CTX_PARAM_N_CTX, &v), DSV3_OK);
    ck_assert_int_eq(v, 256); /* min(4096, max_position_embeddings) */
    ck_assert_int_eq(dsv3_context_get_param(c, DSV3_CTX_PARAM_N_THREADS, &v), DSV3_OK);
    ck_assert_int_ge(v, 1);
    ck_assert_int_eq(dsv3_context_param_bounds(DSV3_CTX_PARAM_N_THREADS, &lo, &hi), DSV3_OK);
    ck_assert_int_eq(lo, 1);
    ck_assert_int_eq(dsv3_context_param_bounds(DSV3_CTX_PARAM_N_PAST, &lo, &hi), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_context_set_param(c, DSV3_CTX_PARAM_N_THREADS, 0), DSV3_E_RANGE);
    ck_assert_int_eq(dsv3_context_set_param(c, DSV3_CTX_PARAM_N_THREADS, 2), DSV3_OK);
    ck_assert_int_eq(dsv3_context_get_param(c, DSV3_CTX_PARAM_N_THREADS, &v), DSV3_OK);
    ck_assert_int_eq(v, 2);
    ck_assert_int_eq(dsv3_context_set_param(c, DSV3_CTX_PARAM_N_PAST, 3), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_context_set_param(c, 999, 3), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_context_get_param(c, 999, &v), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_context_get_param(c, DSV3_CTX_PARAM_MTP, &v), DSV3_OK);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(dsv3_context_set_param(c, DSV3_CTX_PARAM_MTP, 2), DSV3_E_RANGE);
    ck_assert_int_eq(dsv3_context_set_param(c, DSV3_CTX_PARAM_MTP, 1), DSV3_OK);
    ck_assert_int_eq(dsv3_context_get_param(c, DSV3_CTX_PARAM_MTP, &v), DSV3_OK);
    ck_assert_int_eq(v, 1);
    int32_t t[3] = {1, 2, 3};
    ck_assert_int_eq(dsv3_context_decode(c, t, 3, 0), DSV3_OK);
    ck_assert_int_eq(dsv3_context_get_param(c, DSV3_CTX_PARAM_N_PAST, &v), DSV3_OK);
    ck_assert_int_eq(v, 3);
    ck_assert_int_eq(dsv3__context_mtp_eval(c, t + 1, 2, 0), DSV3_OK);
    ck_assert_int_eq(dsv3_context_get_param(c, DSV3_CTX_PARAM_MTP_DRAFTED, &v), DSV3_OK);
    ck_assert_int_eq(dsv3_context_get_param(NULL, DSV3_CTX_PARAM_N_PAST, &v), DSV3_E_INVAL);
    dsv3_context_free(c);
}
END_TEST

START_TEST(bad_model_shapes)
{
    dsv3_model *m = tm.m;
    dsv3__fwd_model_free(m);
    m->w.layers[1].kv_b.ne[1] = 63;
    ck_assert_int_eq(dsv3__fwd_model_init(m), DSV3_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(dsv3_model_errmsg(m), "kv_b_proj"));
    ck_assert_ptr_null(m->fwd);
    m->w.layers[1].kv_b.ne[1] = 64;
    m->w.layers[3].attn_norm.dtype = DSV3_DTYPE_BF16;
    ck_assert_int_eq(dsv3__fwd_model_init(m), DSV3_E_FORMAT);
    m->w.layers[3].attn_norm.dtype = DSV3_DTYPE_F32;
    m->hp.n_group = 3; /* 16 experts do not split into 3 groups */
    ck_assert_int_eq(dsv3__fwd_model_init(m), DSV3_E_FORMAT);
    m->hp.n_group = 4;
    /* without forward data a context cannot be made */
    dsv3_context *c = NULL;
    ck_assert_int_eq(dsv3_context_new(m, NULL, &c), DSV3_E_MISUSE);
    dsv3_context_free(c);
    ck_assert_int_eq(dsv3__fwd_model_init(m), DSV3_OK);
}
END_TEST

/* ---- cancel, busy, memory ------------------------------------------------------------ */

typedef struct hook {
    long count, at;        /* at the at-th allocation: act */
    dsv3_context *ctx;
    int reentry_rc;
} hook;

static hook the_hook;

static void *hook_alloc(size_t n, void *ud)
{
    hook *h = ud;
    if (h->ctx && ++h->count == h->at) {
        int32_t t = 1;
        h->reentry_rc = dsv3_context_decode(h->ctx, &t, 1, 0);
        dsv3_context_cancel(h->ctx);
    }
    return malloc(n);
}

static void hook_free(void *p, void *ud)
{
    (void)ud;
    free(p);
}

START_TEST(cancel_leaves_cache_and_busy_is_refused)
{
    tm_model hm;
    dsv3_allocator al = {sizeof al, 0, hook_alloc, hook_free, &the_hook};
    memset(&the_hook, 0, sizeof the_hook);
    dsv3_hparams hp = tm_tiny_hparams();
    ck_assert_int_eq(tm_model_init(&hm, &hp, DSV3_DTYPE_BF16, 1, 7, &al), DSV3_OK);
    int32_t t[10];
    tokens(t, 10, 11);
    dsv3_context *c = ctx_new(hm.m, 0, 64, 0, 0), *ref = ctx_new(hm.m, 0, 64, 0, 0);
    float *want = decode_rows(ref, t, 10);
    ck_assert_int_eq(dsv3_context_decode(c, t, 4, 0), DSV3_OK);
    /* a cancel that arrives while nothing runs is forgotten */
    dsv3_context_cancel(c);
    ck_assert_int_eq(dsv3_context_decode(c, t + 4, 1, 0), DSV3_OK);
    /* cancel (and try to re-enter) in the middle of a call */
    the_hook = (hook){.at = 40, .ctx = c};
    ck_assert_int_eq(dsv3_context_decode(c, t + 5, 5, 0), DSV3_E_CANCELED);
    ck_assert_int_eq(the_hook.count >= 40, 1);
    ck_assert_int_eq(the_hook.reentry_rc, DSV3_E_BUSY);
    the_hook.ctx = NULL;
    ck_assert_uint_eq(dsv3_context_n_past(c), 5);
    const float *l;
    ck_assert_int_eq(dsv3_context_logits(c, -1, &l), DSV3_E_MISUSE);
    float *got = decode_rows(c, t + 5, 5);
    ck_assert(maxdiff(got, want + 5 * 1024, 5 * 1024) <= SAME_TOL);
    free(got);
    free(want);
    dsv3_context_free(c);
    dsv3_context_free(ref);
    tm_model_release(&hm);
}
END_TEST

START_TEST(oom_injection_no_leaks)
{
    tu_alloc ta;
    tu_alloc_init(&ta, 0);
    tm_model om;
    dsv3_hparams hp = tm_tiny_hparams();
    hp.n_layers = 2; /* one dense and one MoE layer keep the loop short */
    hp.first_k_dense = 1;
    ck_assert_int_eq(tm_model_init(&om, &hp, DSV3_DTYPE_BF16, 1, 7, &ta.a), DSV3_OK);
    long base = ta.live;
    int32_t t[3] = {5, 9, 200};
    dsv3_context *ref = ctx_new(om.m, DSV3_CONTEXT_MTP, 32, 2, 0);
    float *want = decode_rows(ref, t, 3);
    dsv3_context_free(ref);
    ck_assert_int_eq(ta.live, base);
    int failures = 0;
    for (long i = 1; i < 400; i++) {
        ta.failed = 0;
        ta.fail_at = ta.n_alloc + i;
        dsv3_context_params p;
        dsv3_context_params_init(&p, sizeof p);
        p.flags = DSV3_CONTEXT_MTP;
        p.n_ctx = 32;
        p.n_batch = 2;
        p.n_threads = 1;
        dsv3_context *c = NULL;
        int rc = dsv3_context_new(om.m, &p, &c);
        if (rc == DSV3_OK) {
            rc = dsv3_context_decode(c, t, 3, DSV3_DECODE_ALL_LOGITS);
            uint32_t n_past = rc == DSV3_OK ? 3 : 0;
            if (rc == DSV3_OK)
                rc = dsv3__context_mtp_eval(c, t + 1, 2, 0);
            if (rc != DSV3_OK) { /* nothing changed, still usable once memory is back */
                ck_assert_int_eq(rc, DSV3_E_NOMEM);
                ck_assert_uint_eq(dsv3_context_n_past(c), n_past);
                ck_assert_uint_eq(c->mtp_n_past, 0);
                ta.fail_at = 0;
                ck_assert_int_eq(dsv3_context_clear(c), DSV3_OK);
                float *got = decode_rows(c, t, 3);
                ck_assert(maxdiff(got, want, 3 * 1024) == 0);
                free(got);
            }
        } else {
            ck_assert_int_eq(rc, DSV3_E_NOMEM);
        }
        failures += ta.failed;
        dsv3_context_free(c);
        ck_assert_int_eq(ta.live, base);
        if (!ta.failed)
            break; /* every allocation of the sequence has been failed once */
    }
    ck_assert_int_gt(failures, 10);
    free(want);
    tm_model_release(&om);
    ck_assert_int_eq(ta.live, 0);
}
END_TEST

START_TEST(model_freed_before_context)
{
    tu_alloc ta;
    tu_alloc_init(&ta, 0);
    tm_model om;
    dsv3_hparams hp = tm_tiny_hparams();
    ck_assert_int_eq(tm_model_init(&om, &hp, DSV3_DTYPE_BF16, 1, 7, &ta.a), DSV3_OK);
    dsv3_context *c = ctx_new(om.m, 0, 16, 0, 0);
    dsv3_model_free(om.m);
    om.m = NULL; /* the context's reference keeps it alive */
    int32_t t[2] = {3, 4};
    ck_assert_int_eq(dsv3_context_decode(c, t, 2, 0), DSV3_OK);
    dsv3_context_free(c);
    ck_assert_int_eq(ta.live, 0);
    tm_model_release(&om);
}
END_TEST

/* ---- state ---------------------------------------------------------------------- */

START_TEST(state_roundtrip)
{
    int32_t t[10];
    tokens(t, 10, 12);
    dsv3_context *a = ctx_new(tm.m, DSV3_CONTEXT_MTP, 32, 0, 0);
    ck_assert_int_eq(dsv3_context_decode(a, t, 6, 0), DSV3_OK);
    ck_assert_int_eq(dsv3__context_mtp_eval(a, t + 1, 5, 0), DSV3_OK);
    size_t need = 0;
    ck_assert_int_eq(dsv3_context_state_save(a, NULL, 0, &need), DSV3_OK);
    ck_assert_uint_gt(need, 6 * 4 * 80 * 4);
    char *buf = malloc(need);
    size_t need2 = 0;
    ck_assert_int_eq(dsv3_context_state_save(a, buf, need - 1, &need2), DSV3_E_NOSPC);
    ck_assert_uint_eq(need2, need);
    ck_assert_int_eq(dsv3_context_state_save(a, buf, need, &need2), DSV3_OK);
    float *after_a = decode_rows(a, t + 6, 4);
    ck_assert_int_eq(dsv3__context_mtp_eval(a, t + 6, 1, 0), DSV3_OK);
    const float *da;
    ck_assert_int_eq(dsv3__context_mtp_logits(a, -1, &da), DSV3_OK);

    /* same dtype, MTP on: everything comes back */
    dsv3_context *b = ctx_new(tm.m, DSV3_CONTEXT_MTP, 32, 0, 0);
    ck_assert_int_eq(dsv3_context_state_load(b, buf, need), DSV3_OK);
    ck_assert_uint_eq(dsv3_context_n_past(b), 6);
    const float *la, *lb;
    float *after_b = decode_rows(b, t + 6, 4);
    ck_assert(maxdiff(after_a, after_b, 4 * 1024) == 0);
    ck_assert_int_eq(dsv3__context_mtp_eval(b, t + 6, 1, 0), DSV3_OK);
    ck_assert_int_eq(dsv3__context_mtp_logits(b, -1, &lb), DSV3_OK);
    ck_assert(maxdiff(da, lb, 1024) == 0);
    /* the saved logits come back too */
    dsv3_context *c = ctx_new(tm.m, 0, 32, 0, DSV3_DTYPE_BF16);
    ck_assert_int_eq(dsv3_context_state_load(c, buf, need), DSV3_OK);
    ck_assert_int_eq(dsv3_context_logits(c, -1, &lb), DSV3_OK);
    ck_assert_int_eq(dsv3_context_logits(a, -1, &la), DSV3_OK);
    float *after_c = decode_rows(c, t + 6, 4); /* bf16 cache from an f32 state */
    double d = maxdiff(after_a, after_c, 4 * 1024);
    ck_assert_msg(d < 0.05, "bf16 reload differs by %g", d);
    /* errors */
    dsv3_context *small = ctx_new(tm.m, 0, 4, 0, 0);
    ck_assert_int_eq(dsv3_context_state_load(small, buf, need), DSV3_E_CTX_FULL);
    ck_assert_int_eq(dsv3_context_state_load(small, buf, need - 1), DSV3_E_FORMAT);
    ck_assert_int_eq(dsv3_context_state_load(small, buf, 10), DSV3_E_FORMAT);
    buf[need / 2] ^= 0x40;
    ck_assert_int_eq(dsv3_context_state_load(b, buf, need), DSV3_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(dsv3_context_errmsg(b), "checksum"));
    buf[0] = 'X';
    ck_assert_int_eq(dsv3_context_state_load(b, buf, need), DSV3_E_FORMAT);
    ck_assert_int_eq(dsv3_context_state_load(b, NULL, need), DSV3_E_INVAL);
    ck_assert_uint_eq(dsv3_context_n_past(b), 10); /* failed loads change nothing */
    free(buf);
    free(after_a);
    free(after_b);
    free(after_c);
    dsv3_context_free(a);
    dsv3_context_free(b);
    dsv3_context_free(c);
    dsv3_context_free(small);
}
END_TEST

static Suite *forward_suite(void)
{
    Suite *s = suite_create("forward");
    TCase *tc = tcase_create("consistency");
    tcase_add_checked_fixture(tc, tiny_setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, prefill_equals_decode);
    tcase_add_test(tc, chunked_and_multi_token_calls);
    tcase_add_test(tc, threads_do_not_change_results);
    tcase_add_test(tc, naive_matches_absorbed);
    tcase_add_test(tc, naive_matches_absorbed_fp8_noq);
    tcase_add_test(tc, v2_routing_variants);
    tcase_add_test(tc, bf16_cache_close_to_f32);
    tcase_add_test(tc, truncate_and_redecode);
    suite_add_tcase(s, tc);
    tc = tcase_create("mtp");
    tcase_add_checked_fixture(tc, tiny_setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, mtp_batch_equals_incremental);
    tcase_add_test(tc, mtp_rollback_exact);
    suite_add_tcase(s, tc);
    tc = tcase_create("generate");
    tcase_add_checked_fixture(tc, tiny_setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, generate_greedy_matches_decode);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, tiny_setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, decode_errors_evaluate_nothing);
    tcase_add_test(tc, null_and_failed_handles);
    tcase_add_test(tc, bad_params);
    tcase_add_test(tc, params_get_set);
    tcase_add_test(tc, bad_model_shapes);
    suite_add_tcase(s, tc);
    tc = tcase_create("robustness");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, cancel_leaves_cache_and_busy_is_refused);
    tcase_add_test(tc, oom_injection_no_leaks);
    tcase_add_test(tc, model_freed_before_context);
    suite_add_tcase(s, tc);
    tc = tcase_create("state");
    tcase_add_checked_fixture(tc, tiny_setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, state_roundtrip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(forward_suite());
}
