/*
 * check_uv.c - the libuv bridge (dsv3_uv.h) on an in-memory synthetic
 * model: token order against synchronous generation, cancellation at many
 * points and from other threads, error delivery, start failures, many
 * concurrent requests, back-pressure, allocation failures and leaks.
 * SPDX-License-Identifier: MIT
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dsv3_uv.h"
#include "testutil.h"
#include "tinymodel.h"

#define MAXTOK 256
#define N_CTX 256

/* ---- a thread-safe counting allocator (the bridge allocates on the worker
 * and on the loop thread). Relaxed atomics: the allocator must not order
 * the threads, or ThreadSanitizer could not see a missing lock elsewhere. */

typedef struct cnt_alloc {
    dsv3_allocator a;
    atomic_long n_alloc; /* attempts */
    atomic_long live;    /* not freed yet */
    atomic_long fail_at; /* this attempt (1-based) fails; 0: none */
    atomic_int failed;
} cnt_alloc;

#define RELAXED memory_order_relaxed

static void *ca_alloc(size_t n, void *ud)
{
    cnt_alloc *c = ud;
    long k = atomic_fetch_add_explicit(&c->n_alloc, 1, RELAXED) + 1;
    if (k == atomic_load_explicit(&c->fail_at, RELAXED)) {
        atomic_store_explicit(&c->failed, 1, RELAXED);
        return NULL;
    }
    void *p = malloc(n);
    if (p)
        atomic_fetch_add_explicit(&c->live, 1, RELAXED);
    return p;
}

static void ca_free(void *p, void *ud)
{
    cnt_alloc *c = ud;
    if (!p)
        return;
    atomic_fetch_sub_explicit(&c->live, 1, RELAXED);
    free(p);
}

/* ---- fixture: one model (counting allocator) and one loop per test ------ */

static cnt_alloc ca;
static tm_model tm;
static uv_loop_t loop;
static pthread_t loop_thread;

static void setup(void)
{
    memset(&ca, 0, sizeof ca);
    ca.a = (dsv3_allocator){sizeof ca.a, 0, ca_alloc, ca_free, &ca};
    dsv3_hparams hp = tm_tiny_hparams();
    ck_assert_int_eq(tm_model_init(&tm, &hp, DSV3_DTYPE_BF16, 0, 7, &ca.a), DSV3_OK);
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    loop_thread = pthread_self();
}

static void teardown(void)
{
    tm_model_release(&tm);
}

/* Run the loop until nothing is left; every request must be closed. */
static void run_all(void)
{
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_alive(&loop), 0);
}

static void close_loop(void)
{
    run_all();
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}

static dsv3_context *ctx_new(void)
{
    dsv3_context_params p;
    dsv3_context_params_init(&p, sizeof p);
    p.n_ctx = N_CTX;
    p.n_threads = 1;
    dsv3_context *c = NULL;
    int rc = dsv3_context_new(tm.m, &p, &c);
    ck_assert_msg(rc == DSV3_OK, "context_new: %s", dsv3_context_errmsg(c));
    return c;
}

/* temperature 0: greedy; otherwise a seeded random draw */
static dsv3_sampler *smp_new(float temperature, uint64_t seed)
{
    dsv3_sampler_params p;
    dsv3_sampler_params_init(&p, sizeof p);
    p.temperature = temperature;
    p.seed = seed;
    dsv3_sampler *s = NULL;
    ck_assert_int_eq(dsv3_sampler_new(&p, &s), DSV3_OK);
    return s;
}

static void prompt_of(int32_t *t, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        t[i] = (int32_t)(2 + (seed >> 8) % 1000);
    }
}

static dsv3_generate_params gen_params(int32_t max_tokens)
{
    dsv3_generate_params g;
    dsv3_generate_params_init(&g, sizeof g);
    g.max_tokens = max_tokens;
    g.flags = DSV3_GENERATE_IGNORE_EOS;
    return g;
}

/* ---- the synchronous reference ------------------------------------------ */

typedef struct ref {
    int32_t tok[MAXTOK];
    int n;
} ref;

static int ref_token(const dsv3_token_event *ev, void *ud)
{
    ref *r = ud;
    if (r->n < MAXTOK)
        r->tok[r->n++] = ev->token;
    return 0;
}

static void reference(const int32_t *prompt, size_t n, int32_t max_tokens, float temp,
                      uint64_t seed, ref *out)
{
    dsv3_context *c = ctx_new();
    dsv3_sampler *s = smp_new(temp, seed);
    dsv3_generate_params g = gen_params(max_tokens);
    memset(out, 0, sizeof *out);
    ck_assert_int_eq(dsv3_generate(c, s, prompt, n, &g, ref_token, out, NULL), DSV3_OK);
    dsv3_sampler_free(s);
    dsv3_context_free(c);
}

/* ---- recording callbacks -------------------------------------------------- */

typedef struct rec {
    dsv3_uv_request *req;
    int32_t tok[MAXTOK];
    uint32_t idx[MAXTOK];
    int n_tokens;
    int n_error, n_done;
    int error_status, done_status;
    int after_done;       /* callbacks after on_done */
    int wrong_thread;     /* callbacks off the loop thread */
    int error_before_done;
    char errmsg[512];
    dsv3_generate_result res;
    int cancel_at;        /* cancel in on_token when n_tokens reaches it (> 0) */
    int stop_at;          /* return non-zero from on_token at this count */
    int cancel_in_done;   /* call cancel twice from on_done */
    /* a chained request started from on_done */
    dsv3_context *chain_ctx;
    dsv3_sampler *chain_smp;
    struct rec *chain;
    int chain_rc;
    /* cross-thread cancel protocol: on_done takes the lock */
    pthread_mutex_t *mu;
    int done_flag;
} rec;

static void note_thread(rec *r)
{
    if (!pthread_equal(pthread_self(), loop_thread))
        r->wrong_thread++;
    if (r->n_done)
        r->after_done++;
}

static int on_token(dsv3_uv_request *req, const dsv3_token_event *ev, void *ud)
{
    rec *r = ud;
    note_thread(r);
    ck_assert_ptr_eq(dsv3_uv_request_user_data(req), ud);
    if (r->n_tokens < MAXTOK) {
        r->tok[r->n_tokens] = ev->token;
        r->idx[r->n_tokens] = ev->index;
    }
    r->n_tokens++;
    if (r->cancel_at && r->n_tokens == r->cancel_at)
        dsv3_uv_request_cancel(req);
    return r->stop_at && r->n_tokens == r->stop_at;
}

static void on_error(dsv3_uv_request *req, int status, const char *msg, void *ud)
{
    rec *r = ud;
    (void)req;
    note_thread(r);
    r->n_error++;
    r->error_status = status;
    r->error_before_done = r->n_done == 0;
    snprintf(r->errmsg, sizeof r->errmsg, "%s", msg ? msg : "(null)");
}

static dsv3_uv_callbacks callbacks(rec *r);

static void on_done(dsv3_uv_request *req, int status, const dsv3_generate_result *res,
                    void *ud)
{
    rec *r = ud;
    note_thread(r);
    if (r->mu)
        pthread_mutex_lock(r->mu);
    r->n_done++;
    r->done_flag = 1;
    r->done_status = status;
    r->res = *res;
    if (r->mu)
        pthread_mutex_unlock(r->mu);
    if (r->cancel_in_done) {
        dsv3_uv_request_cancel(req); /* harmless until the request is closed */
        dsv3_uv_request_cancel(req);
    }
    if (r->chain) { /* the context is free again: continue on it */
        dsv3_uv_callbacks cb = callbacks(r->chain);
        dsv3_generate_params g = gen_params(10);
        r->chain_rc = dsv3_uv_generate_start(&loop, r->chain_ctx, r->chain_smp, NULL, 0, &g,
                                             &cb, &r->chain->req);
    }
}

static dsv3_uv_callbacks callbacks(rec *r)
{
    dsv3_uv_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.struct_size = sizeof cb;
    cb.on_token = on_token;
    cb.on_error = on_error;
    cb.on_done = on_done;
    cb.user_data = r;
    return cb;
}

static void start_ok(dsv3_context *c, dsv3_sampler *s, const int32_t *prompt, size_t n,
                     int32_t max_tokens, rec *r)
{
    dsv3_uv_callbacks cb = callbacks(r);
    dsv3_generate_params g = gen_params(max_tokens);
    int rc = dsv3_uv_generate_start(&loop, c, s, prompt, n, &g, &cb, &r->req);
    ck_assert_msg(rc == DSV3_OK, "start: %s", dsv3_err_name(rc));
    ck_assert_ptr_nonnull(r->req);
}

/* Exactly one on_done, last, on the loop thread; indices 0, 1, ...; the
 * tokens a prefix of the reference (all of them when complete). */
static void check_stream(const rec *r, const ref *want, int complete)
{
    ck_assert_int_eq(r->n_done, 1);
    ck_assert_int_eq(r->after_done, 0);
    ck_assert_int_eq(r->wrong_thread, 0);
    ck_assert_int_le(r->n_tokens, want->n);
    for (int i = 0; i < r->n_tokens && i < MAXTOK; i++) {
        ck_assert_uint_eq(r->idx[i], (uint32_t)i);
        ck_assert_int_eq(r->tok[i], want->tok[i]);
    }
    if (complete)
        ck_assert_int_eq(r->n_tokens, want->n);
}

/* ---- order ---------------------------------------------------------------------- */

START_TEST(tokens_in_order_done_last)
{
    int32_t p[12];
    prompt_of(p, 12, 3);
    ref want;
    reference(p, 12, 40, 0, 0, &want);
    ck_assert_int_eq(want.n, 40);
    long base = atomic_load(&ca.live);
    dsv3_context *c = ctx_new();
    dsv3_sampler *s = smp_new(0, 0);
    rec r;
    memset(&r, 0, sizeof r);
    start_ok(c, s, p, 12, 40, &r);
    /* the context belongs to the request until on_done */
    int32_t t = 5;
    ck_assert_int_eq(dsv3_context_decode(c, &t, 1, 0), DSV3_E_BUSY);
    run_all();
    check_stream(&r, &want, 1);
    ck_assert_int_eq(r.done_status, DSV3_OK);
    ck_assert_int_eq(r.n_error, 0);
    ck_assert_int_eq(r.res.stop_reason, DSV3_STOP_MAX_TOKENS);
    ck_assert_uint_eq(r.res.n_prompt, 12);
    ck_assert_uint_eq(r.res.n_generated, 40);
    /* every generated token was evaluated; the context is usable again */
    ck_assert_uint_eq(dsv3_context_n_past(c), 52);
    ck_assert_int_eq(dsv3_context_decode(c, &t, 1, 0), DSV3_OK);
    dsv3_sampler_free(s);
    dsv3_context_free(c);
    close_loop();
    ck_assert_int_eq(atomic_load(&ca.live), base);
}
END_TEST

START_TEST(next_request_from_on_done)
{
    int32_t p[8];
    prompt_of(p, 8, 5);
    /* reference: two synchronous generations on one context */
    dsv3_context *rc_ = ctx_new();
    dsv3_sampler *rs = smp_new(0, 0);
    ref want;
    memset(&want, 0, sizeof want);
    dsv3_generate_params g1 = gen_params(20), g2 = gen_params(10);
    ck_assert_int_eq(dsv3_generate(rc_, rs, p, 8, &g1, ref_token, &want, NULL), DSV3_OK);
    ck_assert_int_eq(dsv3_generate(rc_, rs, NULL, 0, &g2, ref_token, &want, NULL), DSV3_OK);
    dsv3_sampler_free(rs);
    dsv3_context_free(rc_);
    dsv3_context *c = ctx_new();
    dsv3_sampler *s = smp_new(0, 0);
    rec a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.chain = &b;
    a.chain_ctx = c;
    a.chain_smp = s;
    start_ok(c, s, p, 8, 20, &a);
    run_all();
    ck_assert_int_eq(a.chain_rc, DSV3_OK);
    ck_assert_int_eq(a.done_status, DSV3_OK);
    ck_assert_int_eq(b.done_status, DSV3_OK);
    ck_assert_int_eq(a.n_tokens + b.n_tokens, want.n);
    ck_assert_mem_eq(a.tok, want.tok, sizeof(int32_t) * 20);
    ck_assert_mem_eq(b.tok, want.tok + 20, sizeof(int32_t) * 10);
    ck_assert_int_eq(b.n_done, 1);
    ck_assert_uint_eq(dsv3_context_n_past(c), 38);
    dsv3_sampler_free(s);
    dsv3_context_free(c);
    close_loop();
}
END_TEST

START_TEST(inputs_are_copied)
{
    int32_t p[6];
    prompt_of(p, 6, 9);
    ref want;
    reference(p, 6, 8, 0, 0, &want);
    char s0[] = "never", s1[] = "seen";
    const char *stops[2] = {s0, s1};
    dsv3_context *c = ctx_new();
    dsv3_sampler *s = smp_new(0, 0);
    rec r;
    memset(&r, 0, sizeof r);
    dsv3_uv_callbacks cb = callbacks(&r);
    dsv3_generate_params g = gen_params(8);
    g.n_stop = 2;
    g.stop = stops;
    ck_assert_int_eq(dsv3_uv_generate_start(&loop, c, s, p, 6, &g, &cb, &r.req), DSV3_OK);
    /* scribble over everything the caller passed */
    memset(p, 0xff, sizeof p);
    memset(&cb, 0, sizeof cb);
    memset(&g, 0xff, sizeof g);
    s0[0] = s1[0] = '\0';
    stops[0] = stops[1] = NULL;
    run_all();
    check_stream(&r, &want, 1);
    ck_assert_int_eq(r.done_status, DSV3_OK);
    dsv3_sampler_free(s);
    dsv3_context_free(c);
    close_loop();
}
END_TEST

/* ---- cancellation ------------------------------------------------------------- */

START_TEST(cancel_in_on_token_at_random_points)
{
    int32_t p[10];
    prompt_of(p, 10, 11);
    ref want;
    reference(p, 10, 30, 0, 0, &want);
    dsv3_context *c = ctx_new();
    dsv3_sampler *s = smp_new(0, 0);
    uint32_t seed = 12345;
    int points[8] = {1, 30, 0, 0, 0, 0, 0, 0}; /* the first, the last, random ones */
    for (int i = 2; i < 8; i++) {
        seed = seed * 1664525u + 1013904223u;
        points[i] = 1 + (int)((seed >> 8) % 30);
    }
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(dsv3_context_clear(c), DSV3_OK);
        ck_assert_int_eq(dsv3_sampler_reset(s), DSV3_OK);
        rec r;
        memset(&r, 0, sizeof r);
        if (i % 2)
            r.cancel_at = points[i];
        else
            r.stop_at = points[i]; /* on_token's return value cancels too */
        start_ok(c, s, p, 10, 30, &r);
        run_all();
        check_stream(&r, &want, 0);
        ck_assert_int_eq(r.n_tokens, points[i]); /* nothing after the cancel */
        ck_assert_int_eq(r.done_status, DSV3_E_CANCELED);
        ck_assert_int_eq(r.res.stop_reason, DSV3_STOP_CANCELED);
        ck_assert_int_eq(r.n_error, 0);
        /* the cache holds the prompt and at most the tokens produced */
        ck_assert_uint_ge(dsv3_context_n_past(c), 10);
        ck_assert_uint_le(dsv3_context_n_past(c), 10 + r.res.n_generated);
    }
    /* still usable: a complete run gives the reference again */
    ck_assert_int_eq(dsv3_context_clear(c), DSV3_OK);
    ck_assert_int_eq(dsv3_sampler_reset(s), DSV3_OK);
    rec r;
    memset(&r, 0, sizeof r);
    start_ok(c, s, p, 10, 30, &r);
    run_all();
    check_stream(&r, &want, 1);
    ck_assert_int_eq(r.done_status, DSV3_OK);
    dsv3_sampler_free(s);
    dsv3_context_free(c);
    close_loop();
}
END_TEST

START_TEST(cancel_before_first_token)
{
    int32_t p[10];
    prompt_of(p, 10, 13);
    long base = atomic_load(&ca.live);
    dsv3_context *c = ctx_new();
    dsv3_sampler *s = smp_new(0, 0);
    rec r;
    memset(&r, 0, sizeof r);
    start_ok(c, s, p, 10, 30, &r);
    dsv3_uv_request_cancel(r.req); /* before the loop ever ran */
    run_all();
    ck_assert_int_eq(r.n_tokens, 0);
    ck_assert_int_eq(r.n_done, 1);
    ck_assert_int_eq(r.done_status, DSV3_E_CANCELED);
    ck_assert_int_eq(r.res.stop_reason, DSV3_STOP_CANCELED);
    ck_assert_int_eq(r.n_error, 0);
    int32_t t = 3;
    ck_assert_int_eq(dsv3_context_decode(c, &t, 1, 0), DSV3_OK);
    dsv3_sampler_free(s);
    dsv3_context_free(c);
    close_loop();
    ck_assert_int_eq(atomic_load(&ca.live), base);
}
END_TEST

/* on_done of one request, a check handle later in the same loop iteration:
 * cancel after on_done, until the request is closed, does nothing */
static void cancel_late(uv_check_t *h)
{
    rec *r = h->data;
    if (r->n_done) {
        dsv3_uv_request_cancel(r->req);
        uv_close((uv_handle_t *)h, NULL);
    }
}

START_TEST(cancel_after_the_last_token)
{
    int32_t p[10];
    prompt_of(p, 10, 17);
    ref want;
    reference(p, 10, 12, 0, 0, &want);
    dsv3_context *c = ctx_new();
    dsv3_sampler *s = smp_new(0, 0);
    /* in on_token of the last token */
    rec r;
    memset(&r, 0, sizeof r);
    r.cancel_at = 12;
    start_ok(c, s, p, 10, 12, &r);
    run_all();
    check_stream(&r, &want, 1);
    ck_assert_int_eq(r.done_status, DSV3_E_CANCELED);
    /* in on_done and after it */
    ck_assert_int_eq(dsv3_context_clear(c), DSV3_OK);
    ck_assert_int_eq(dsv3_sampler_reset(s), DSV3_OK);
    memset(&r, 0, sizeof r);
    r.cancel_in_done = 1;
    uv_check_t chk;
    uv_check_init(&loop, &chk);
    chk.data = &r;
    uv_check_start(&chk, cancel_late);
    start_ok(c, s, p, 10, 12, &r);
    run_all();
    check_stream(&r, &want, 1);
    ck_assert_int_eq(r.done_status, DSV3_OK);
    /* those cancels did not reach the context, which is idle now */
    ck_assert_int_eq(dsv3_context_decode(c, p, 1, 0), DSV3_OK);
    dsv3_sampler_free(s);
    dsv3_context_free(c);
    close_loop();
}
END_TEST

typedef struct canceler {
    pthread_mutex_t mu;
    rec *r;
    dsv3_context *ctx;
    long delay_us;
    int via_context; /* dsv3_context_cancel instead of the request */
    int canceled;    /* the cancel happened before on_done */
} canceler;

static void *cancel_thread(void *arg)
{
    canceler *k = arg;
    struct timespec ts = {0, k->delay_us * 1000};
    nanosleep(&ts, NULL);
    pthread_mutex_lock(&k->mu);
    if (!k->r->done_flag) { /* the request lives until on_done returns */
        if (k->via_context)
            dsv3_context_cancel(k->ctx);
        else
            dsv3_uv_request_cancel(k->r->req);
        k->canceled = 1;
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

START_TEST(cancel_from_another_thread)
{
    int32_t p[16];
    prompt_of(p, 16, 19);
    ref want;
    reference(p, 16, 120, 0, 0, &want);
    dsv3_context *c = ctx_new();
    dsv3_sampler *s = smp_new(0, 0);
    long delays[] = {0, 200, 1000, 3000, 8000, 20000, 60000, 400000};
    int n_canceled = 0;
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(dsv3_context_clear(c), DSV3_OK);
        ck_assert_int_eq(dsv3_sampler_reset(s), DSV3_OK);
        rec r;
        memset(&r, 0, sizeof r);
        canceler k;
        memset(&k, 0, sizeof k);
        pthread_mutex_init(&k.mu, NULL);
        k.r = &r;
        k.ctx = c;
        k.delay_us = delays[i];
        k.via_context = i % 2;
        r.mu = &k.mu;
        start_ok(c, s, p, 16, 120, &r);
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, cancel_thread, &k), 0);
        run_all();
        pthread_join(th, NULL);
        pthread_mutex_destroy(&k.mu);
        ck_assert_int_eq(r.n_error, 0);
        if (k.via_context && k.canceled && r.done_status == DSV3_OK)
            k.canceled = 0; /* it reached the context after the generation ended */
        check_stream(&r, &want, !k.canceled);
        if (k.canceled) {
            n_canceled++;
            ck_assert_int_eq(r.done_status, DSV3_E_CANCELED);
            ck_assert_int_eq(r.res.stop_reason, DSV3_STOP_CANCELED);
        } else {
            ck_assert_int_eq(r.done_status, DSV3_OK);
        }
    }
    ck_assert_int_ge(n_canceled, 1); /* at least the immediate one */
    dsv3_sampler_free(s);
    dsv3_context_free(c);
    close_loop();
}
END_TEST

/* ---- errors ---------------------------------------------------------------------- */

START_TEST(errors_reach_on_error_then_on_done)
{
    int32_t p[N_CTX + 1];
    prompt_of(p, N_CTX + 1, 23);
    dsv3_context *c = ctx_new();
    dsv3_sampler *s = smp_new(0, 0);
    rec r;
    memset(&r, 0, sizeof r);
    start_ok(c, s, p, N_CTX + 1, 10, &r); /* does not fit the context */
    run_all();
    ck_assert_int_eq(r.n_tokens, 0);
    ck_assert_int_eq(r.n_error, 1);
    ck_assert_int_eq(r.error_before_done, 1);
    ck_assert_int_eq(r.error_status, DSV3_E_CTX_FULL);
    ck_assert_ptr_nonnull(strstr(r.errmsg, "do not fit"));
    ck_assert_int_eq(r.n_done, 1);
    ck_assert_int_eq(r.done_status, DSV3_E_CTX_FULL);
    ck_assert_int_eq(r.res.stop_reason, DSV3_STOP_ERROR);
    ck_assert_uint_eq(dsv3_context_n_past(c), 0);
    /* a token outside the vocabulary */
    memset(&r, 0, sizeof r);
    p[3] = 5000;
    start_ok(c, s, p, 8, 10, &r);
    run_all();
    ck_assert_int_eq(r.n_error, 1);
    ck_assert_int_eq(r.error_status, DSV3_E_RANGE);
    ck_assert_int_eq(r.done_status, DSV3_E_RANGE);
    ck_assert_int_eq(r.n_tokens, 0);
    /* a failed sampler handle */
    dsv3_sampler_params sp;
    dsv3_sampler_params_init(&sp, sizeof sp);
    sp.top_p = 7;
    dsv3_sampler *bad = NULL;
    ck_assert_int_ne(dsv3_sampler_new(&sp, &bad), DSV3_OK);
    memset(&r, 0, sizeof r);
    p[3] = 7;
    start_ok(c, bad, p, 8, 10, &r);
    run_all();
    ck_assert_int_eq(r.n_error, 1);
    ck_assert_int_eq(r.done_status, DSV3_E_MISUSE);
    dsv3_sampler_free(bad);
    /* the context is fine afterwards */
    memset(&r, 0, sizeof r);
    start_ok(c, s, p, 8, 5, &r);
    run_all();
    ck_assert_int_eq(r.done_status, DSV3_OK);
    ck_assert_int_eq(r.n_tokens, 5);
    dsv3_sampler_free(s);
    dsv3_context_free(c);
    close_loop();
}
END_TEST

START_TEST(failed_starts_fire_nothing)
{
    int32_t p[4] = {2, 3, 4, 5};
    dsv3_context *c = ctx_new();
    dsv3_sampler *s = smp_new(0, 0);
    long base = atomic_load(&ca.live);
    rec r;
    memset(&r, 0, sizeof r);
    dsv3_uv_callbacks cb = callbacks(&r);
    dsv3_generate_params g = gen_params(4);
    dsv3_uv_request *req = (dsv3_uv_request *)&r; /* must be reset to NULL */
    ck_assert_int_eq(dsv3_uv_generate_start(NULL, c, s, p, 4, &g, &cb, &req), DSV3_E_INVAL);
    ck_assert_ptr_null(req);
    ck_assert_int_eq(dsv3_uv_generate_start(&loop, NULL, s, p, 4, &g, &cb, NULL), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_uv_generate_start(&loop, c, NULL, p, 4, &g, &cb, NULL), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_uv_generate_start(&loop, c, s, p, 4, &g, NULL, NULL), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_uv_generate_start(&loop, c, s, NULL, 4, &g, &cb, NULL), DSV3_E_INVAL);
    cb.struct_size = 4;
    ck_assert_int_eq(dsv3_uv_generate_start(&loop, c, s, p, 4, &g, &cb, NULL), DSV3_E_INVAL);
    struct {
        dsv3_uv_callbacks cb;
        uint64_t extra;
    } big = {callbacks(&r), 1};
    big.cb.struct_size = sizeof big;
    ck_assert_int_eq(dsv3_uv_generate_start(&loop, c, s, p, 4, &g, &big.cb, NULL),
                     DSV3_E_UNSUPPORTED);
    cb = callbacks(&r);
    g.n_stop = 1; /* stop strings missing */
    ck_assert_int_eq(dsv3_uv_generate_start(&loop, c, s, p, 4, &g, &cb, NULL), DSV3_E_INVAL);
    g = gen_params(4);
    g.struct_size = 2;
    ck_assert_int_eq(dsv3_uv_generate_start(&loop, c, s, p, 4, &g, &cb, NULL), DSV3_E_INVAL);
    g = gen_params(4);
    /* a failed context handle */
    dsv3_context_params cp;
    dsv3_context_params_init(&cp, sizeof cp);
    cp.n_ctx = 1u << 30;
    dsv3_context *badc = NULL;
    ck_assert_int_ne(dsv3_context_new(tm.m, &cp, &badc), DSV3_OK);
    ck_assert_int_eq(dsv3_uv_generate_start(&loop, badc, s, p, 4, &g, &cb, NULL),
                     DSV3_E_MISUSE);
    dsv3_context_free(badc);
    /* a busy context: a second request on it */
    rec first;
    memset(&first, 0, sizeof first);
    start_ok(c, s, p, 4, 4, &first);
    ck_assert_int_eq(dsv3_uv_generate_start(&loop, c, s, p, 4, &g, &cb, &req), DSV3_E_BUSY);
    ck_assert_ptr_null(req);
    run_all();
    ck_assert_int_eq(first.n_done, 1);
    ck_assert_int_eq(first.done_status, DSV3_OK);
    /* none of the failed calls fired anything or left anything behind */
    ck_assert_int_eq(r.n_tokens + r.n_error + r.n_done, 0);
    ck_assert_int_eq(atomic_load(&ca.live), base);
    dsv3_uv_request_cancel(NULL);
    ck_assert_ptr_null(dsv3_uv_request_user_data(NULL));
    dsv3_sampler_free(s);
    dsv3_context_free(c);
    close_loop();
}
END_TEST

/* Fail allocations in turn (each of the first 40: the bridge's own, then
 * every fifth, which are mostly the forward pass's): a start either fails
 * with DSV3_E_NOMEM and fires nothing, or completes with exactly one
 * on_done; nothing leaks. */
START_TEST(allocation_failures)
{
    int32_t p[2];
    prompt_of(p, 2, 29);
    dsv3_context *c = ctx_new();
    dsv3_sampler *s = smp_new(0, 0);
    long base = atomic_load(&ca.live);
    int n_start_fail = 0, n_run_fail = 0, reached = 0;
    for (long i = 1; i < 2000; i += i < 40 ? 1 : 5) {
        ck_assert_int_eq(dsv3_context_clear(c), DSV3_OK);
        ck_assert_int_eq(dsv3_sampler_reset(s), DSV3_OK);
        atomic_store(&ca.failed, 0);
        atomic_store(&ca.fail_at, atomic_load(&ca.n_alloc) + i);
        rec r;
        memset(&r, 0, sizeof r);
        dsv3_uv_callbacks cb = callbacks(&r);
        dsv3_generate_params g = gen_params(3);
        int rc = dsv3_uv_generate_start(&loop, c, s, p, 2, &g, &cb, &r.req);
        run_all();
        atomic_store(&ca.fail_at, 0);
        ck_assert_int_eq(atomic_load(&ca.live), base);
        if (rc) {
            ck_assert_int_eq(rc, DSV3_E_NOMEM);
            ck_assert_int_eq(r.n_tokens + r.n_error + r.n_done, 0);
            n_start_fail++;
            continue;
        }
        ck_assert_int_eq(r.n_done, 1);
        if (!atomic_load(&ca.failed)) {
            ck_assert_int_eq(r.done_status, DSV3_OK);
            reached = 1;
            break;
        }
        n_run_fail++;
        ck_assert_int_eq(r.n_error, 1);
        ck_assert_int_eq(r.error_status, r.done_status);
        ck_assert_msg(r.done_status == DSV3_E_NOMEM || r.done_status == DSV3_E_BACKEND,
                      "status %s", dsv3_err_name(r.done_status));
    }
    fprintf(stderr, "allocation failures: %d at start, %d while running\n", n_start_fail,
            n_run_fail);
    ck_assert_int_eq(reached, 1);
    ck_assert_int_ge(n_start_fail, 3); /* request, prompt, done event at least */
    ck_assert_int_ge(n_run_fail, 3);   /* one token event per token at least */
    dsv3_sampler_free(s);
    dsv3_context_free(c);
    close_loop();
}
END_TEST

/* ---- many requests, back-pressure ------------------------------------------------- */

START_TEST(eight_requests_at_once)
{
    enum { N = 8 };
    int32_t p[N][10];
    ref want[N];
    dsv3_context *c[N];
    dsv3_sampler *s[N];
    rec r[N];
    for (int i = 0; i < N; i++) {
        prompt_of(p[i], 10, 100 + (uint32_t)i);
        reference(p[i], 10, 16, 0.8f, 1000 + (uint64_t)i, &want[i]);
        c[i] = ctx_new();
        s[i] = smp_new(0.8f, 1000 + (uint64_t)i);
        memset(&r[i], 0, sizeof r[i]);
    }
    for (int i = 0; i < N; i++)
        start_ok(c[i], s[i], p[i], 10, 16, &r[i]);
    run_all();
    for (int i = 0; i < N; i++) {
        check_stream(&r[i], &want[i], 1);
        ck_assert_int_eq(r[i].done_status, DSV3_OK);
        dsv3_sampler_free(s[i]);
        dsv3_context_free(c[i]);
    }
    close_loop();
}
END_TEST

static int iteration, per_iteration, worst_batch;

static void count_iteration(uv_prepare_t *h)
{
    (void)h;
    iteration++;
    per_iteration = 0;
}

static int on_token_batch(dsv3_uv_request *req, const dsv3_token_event *ev, void *ud)
{
    if (++per_iteration > worst_batch)
        worst_batch = per_iteration;
    return on_token(req, ev, ud);
}

START_TEST(back_pressure_pauses_the_worker)
{
    int32_t p[8];
    prompt_of(p, 8, 31);
    ref want;
    reference(p, 8, 40, 0, 0, &want);
    dsv3_context *c = ctx_new();
    dsv3_sampler *s = smp_new(0, 0);
    rec r;
    memset(&r, 0, sizeof r);
    dsv3_uv_callbacks cb = callbacks(&r);
    cb.on_token = on_token_batch;
    cb.max_queued = 3;
    dsv3_generate_params g = gen_params(40);
    uv_prepare_t prep;
    uv_prepare_init(&loop, &prep);
    uv_prepare_start(&prep, count_iteration);
    uv_unref((uv_handle_t *)&prep);
    iteration = per_iteration = worst_batch = 0;
    ck_assert_int_eq(dsv3_uv_generate_start(&loop, c, s, p, 8, &g, &cb, &r.req), DSV3_OK);
    /* a slow loop: the generation would be over long before this ends */
    struct timespec ts = {0, 300 * 1000000L};
    nanosleep(&ts, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_int_le(r.n_tokens, 3); /* the worker stopped at a full queue */
    ck_assert_int_eq(r.n_done, 0);
    run_all();
    check_stream(&r, &want, 1); /* nothing lost */
    ck_assert_int_eq(r.done_status, DSV3_OK);
    ck_assert_int_le(worst_batch, 3);
    uv_close((uv_handle_t *)&prep, NULL);
    dsv3_sampler_free(s);
    dsv3_context_free(c);
    close_loop();
}
END_TEST

START_TEST(cancel_wakes_a_paused_worker)
{
    int32_t p[8];
    prompt_of(p, 8, 37);
    dsv3_context *c = ctx_new();
    dsv3_sampler *s = smp_new(0, 0);
    rec r;
    memset(&r, 0, sizeof r);
    dsv3_uv_callbacks cb = callbacks(&r);
    cb.max_queued = 1;
    dsv3_generate_params g = gen_params(100);
    ck_assert_int_eq(dsv3_uv_generate_start(&loop, c, s, p, 8, &g, &cb, &r.req), DSV3_OK);
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL); /* the worker waits on its full queue now */
    dsv3_uv_request_cancel(r.req);
    run_all();
    ck_assert_int_eq(r.n_tokens, 0); /* queued events are dropped after a cancel */
    ck_assert_int_eq(r.done_status, DSV3_E_CANCELED);
    ck_assert_uint_le(r.res.n_generated, 3);
    dsv3_sampler_free(s);
    dsv3_context_free(c);
    close_loop();
}
END_TEST

static Suite *uv_suite(void)
{
    Suite *s = suite_create("uv");
    TCase *tc = tcase_create("order");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, tokens_in_order_done_last);
    tcase_add_test(tc, next_request_from_on_done);
    tcase_add_test(tc, inputs_are_copied);
    suite_add_tcase(s, tc);
    tc = tcase_create("cancel");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, cancel_in_on_token_at_random_points);
    tcase_add_test(tc, cancel_before_first_token);
    tcase_add_test(tc, cancel_after_the_last_token);
    tcase_add_test(tc, cancel_from_another_thread);
    tcase_add_test(tc, cancel_wakes_a_paused_worker);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, errors_reach_on_error_then_on_done);
    tcase_add_test(tc, failed_starts_fire_nothing);
    tcase_add_test(tc, allocation_failures);
    suite_add_tcase(s, tc);
    tc = tcase_create("concurrency");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, eight_requests_at_once);
    tcase_add_test(tc, back_pressure_pauses_the_worker);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(uv_suite());
}
