/*
 * backend_check_model.c - forward passes on the backend under test: models
 * built in memory (tinymodel) copied onto it, whole or with the routed
 * experts in a CPU backend, against the same model on the CPU (every
 * prefill row, decode steps, MTP drafts, greedy tokens), contexts side by
 * side, and placement mistakes.
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_check_int.h"
#include "tinymodel.h"

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
        t->scale = mput(bm, be, in_cpu, t->scale, bc_scale_count(t) * 4);
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
            bc_expect_close(lb, la, V, tol, 0, w);
            ck_assert_msg(argmax_row(la, V) == argmax_row(lb, V), "%s: greedy token differs", w);
        }
        if (step == 0 && mtp) {
            ck_assert_int_eq(dsv3__context_mtp_eval(a, t + 1, 11, DSV3_DECODE_ALL_LOGITS), DSV3_OK);
            ck_assert_int_eq(dsv3__context_mtp_eval(b, t + 1, 11, DSV3_DECODE_ALL_LOGITS), DSV3_OK);
            for (int32_t r = 0; r < 11; r++) {
                ck_assert_int_eq(dsv3__context_mtp_logits(a, r, &la), DSV3_OK);
                ck_assert_int_eq(dsv3__context_mtp_logits(b, r, &lb), DSV3_OK);
                bc_expect_close(lb, la, V, tol, 0, "MTP draft");
            }
        }
    }
}

static void model_vs_cpu(const tm_model *ref, int apart, uint32_t flags, int32_t kv, double tol,
                         const char *what)
{
    bc_model bm;
    bc_model_copy(ref->m, bc_ops, apart, &bm);
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
    bc_model_copy(tm_bf16.m, bc_ops, 0, &bm);
    dsv3_context *a = ctx_new(bm.m, 0, DSV3_DTYPE_F32), *b = ctx_new(bm.m, 0, DSV3_DTYPE_F32);
    int32_t t[12];
    tokens(t, 12, 5);
    ck_assert_int_eq(dsv3_context_decode(a, t, 12, 0), DSV3_OK);
    ck_assert_int_eq(dsv3_context_decode(b, t, 7, 0), DSV3_OK);
    ck_assert_int_eq(dsv3_context_decode(b, t + 7, 5, 0), DSV3_OK);
    const float *la, *lb;
    ck_assert_int_eq(dsv3_context_logits(a, -1, &la), DSV3_OK);
    ck_assert_int_eq(dsv3_context_logits(b, -1, &lb), DSV3_OK);
    bc_expect_close(lb, la, 1024, 1e-4, 0, "chunked prefill in a second context");
    /* one token at a time equals the same tokens in a second context */
    dsv3_context_clear(a);
    dsv3_context_clear(b);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(dsv3_context_decode(a, t + i, 1, 0), DSV3_OK);
        ck_assert_int_eq(dsv3_context_decode(b, t + i, 1, 0), DSV3_OK);
        ck_assert_int_eq(dsv3_context_logits(a, -1, &la), DSV3_OK);
        ck_assert_int_eq(dsv3_context_logits(b, -1, &lb), DSV3_OK);
        bc_expect_same_bits(la, lb, 1024 * 4, "two contexts");
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
    bc_model_copy(tm_bf16.m, bc_ops, 0, &bm);
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

void bc_add_model_tcase(Suite *s)
{
    TCase *tc = tcase_create("model");
    tcase_add_checked_fixture(tc, models_setup, models_teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, model_whole);
    tcase_add_test(tc, model_experts_apart);
    tcase_add_test(tc, model_naive_and_bf16_cache);
    tcase_add_test(tc, model_two_contexts);
    tcase_add_test(tc, model_bad_placement);
    suite_add_tcase(s, tc);
}
