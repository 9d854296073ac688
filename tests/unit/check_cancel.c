/*
 * check_cancel.c - dsv3_context_cancel from another thread during a long
 * prefill on a larger in-memory synthetic model: how long until the running
 * dsv3_context_decode returns DSV3_E_CANCELED (the contract: within one
 * layer's work), the cache left as before the call, the context usable;
 * and the same through the libuv bridge (time from dsv3_uv_request_cancel
 * to on_done). The measured figures are printed on stderr.
 * SPDX-License-Identifier: MIT
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dsv3_config.h"
#include "testutil.h"
#include "tinymodel.h"
#if DSV3_HAVE_UV
#include "dsv3_uv.h"
#endif

#define N_PREFIX 32
#define N_LONG 160
#define N_BATCH 32
#define N_MORE 8

static tm_model tm;

static int32_t prefix[N_PREFIX], lng[N_LONG];
static double t_full; /* seconds of the uncanceled prefill of lng */

static dsv3_context *ctx_new(void);
static double now_s(void);

/* Eight layers (two dense), hidden 256: a prefill of N_LONG tokens in
 * chunks of N_BATCH is 40 layer steps, long enough that a cancel in its
 * middle is easy to tell from one at its end. Built once (unchecked
 * fixture), with the time of one uncanceled prefill. */
static void setup(void)
{
    dsv3_hparams hp = tm_tiny_hparams();
    hp.hidden_size = 256;
    hp.intermediate_size = 512;
    hp.moe_intermediate_size = 64;
    hp.n_layers = 8;
    hp.n_heads = 4;
    hp.q_lora_rank = 128;
    hp.kv_lora_rank = 128;
    hp.qk_nope_dim = 64;
    hp.qk_rope_dim = 32;
    hp.v_head_dim = 64;
    hp.max_position = 4096;
    hp.yarn_orig_ctx = 1024;
    ck_assert_int_eq(tm_model_init(&tm, &hp, DSV3_DTYPE_BF16, 0, 5, NULL), DSV3_OK);
    for (int i = 0; i < N_PREFIX; i++)
        prefix[i] = 2 + (i * 37) % 1000;
    for (int i = 0; i < N_LONG; i++)
        lng[i] = 2 + (i * 101 + 7) % 1000;
    dsv3_context *c = ctx_new();
    ck_assert_int_eq(dsv3_context_decode(c, prefix, N_PREFIX, 0), DSV3_OK);
    double t0 = now_s();
    ck_assert_int_eq(dsv3_context_decode(c, lng, N_LONG, 0), DSV3_OK);
    t_full = now_s() - t0;
    dsv3_context_free(c);
}

static void teardown(void)
{
    tm_model_release(&tm);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static dsv3_context *ctx_new(void)
{
    dsv3_context_params p;
    dsv3_context_params_init(&p, sizeof p);
    p.n_ctx = 2048;
    p.n_batch = N_BATCH;
    p.n_threads = 1;
    dsv3_context *c = NULL;
    int rc = dsv3_context_new(tm.m, &p, &c);
    ck_assert_msg(rc == DSV3_OK, "context_new: %s", dsv3_context_errmsg(c));
    return c;
}

/* Cache rows 0 ... n-1 of every layer (the context's KV buffer, F32). */
static unsigned char *cache_rows(const dsv3_context *c, uint32_t n)
{
    const dsv3_hparams *hp = &tm.m->hp;
    size_t row = (size_t)(hp->kv_lora_rank + hp->qk_rope_dim) * sizeof(float);
    unsigned char *out = malloc((size_t)hp->n_layers * n * row);
    for (int32_t l = 0; l < hp->n_layers; l++)
        memcpy(out + (size_t)l * n * row, (const char *)c->kv->base + (size_t)l * c->kv_layer_bytes,
               n * row);
    return out;
}

typedef struct canceler {
    dsv3_context *ctx;
    double delay;
    double t_cancel;
} canceler;

static void *cancel_thread(void *arg)
{
    canceler *k = arg;
    sleep_s(k->delay);
    k->t_cancel = now_s();
    dsv3_context_cancel(k->ctx);
    return NULL;
}

START_TEST(cancel_a_long_prefill)
{
    /* one layer over one batch of tokens: what a cancel may have to wait for */
    double layer = t_full / (double)(tm.m->hp.n_layers * (N_LONG / N_BATCH));
    dsv3_context *c = ctx_new();
    ck_assert_int_eq(dsv3_context_decode(c, prefix, N_PREFIX, 0), DSV3_OK);
    unsigned char *before = cache_rows(c, N_PREFIX);
    canceler k = {c, t_full * 0.4, 0};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, cancel_thread, &k), 0);
    double t0 = now_s();
    int rc = dsv3_context_decode(c, lng, N_LONG, 0);
    double t_ret = now_s();
    pthread_join(th, NULL);
    double latency = t_ret > k.t_cancel ? t_ret - k.t_cancel : 0;
    fprintf(stderr,
            "cancel latency: %.2f ms after dsv3_context_cancel (one layer x %d tokens: "
            "%.2f ms; full prefill of %d tokens: %.1f ms; canceled at %.1f ms)\n",
            latency * 1e3, N_BATCH, layer * 1e3, N_LONG, t_full * 1e3, (k.t_cancel - t0) * 1e3);
    ck_assert_int_eq(rc, DSV3_E_CANCELED);
    /* promptly: far from the rest of the prefill (a generous bound, as the
     * machine may be shared) */
    ck_assert_msg(latency < t_full * 0.3, "cancel took %.1f ms of a %.1f ms prefill",
                  latency * 1e3, t_full * 1e3);
    /* the cache as before the call, nothing else changed */
    ck_assert_uint_eq(dsv3_context_n_past(c), N_PREFIX);
    unsigned char *after = cache_rows(c, N_PREFIX);
    const dsv3_hparams *hp = &tm.m->hp;
    ck_assert_mem_eq(before, after, (size_t)hp->n_layers * N_PREFIX *
                                        (size_t)(hp->kv_lora_rank + hp->qk_rope_dim) * 4);
    const float *l, *want;
    ck_assert_int_eq(dsv3_context_logits(c, -1, &l), DSV3_E_MISUSE);
    /* usable: more tokens give what a context that was never canceled gives */
    dsv3_context *ref = ctx_new();
    ck_assert_int_eq(dsv3_context_decode(ref, prefix, N_PREFIX, 0), DSV3_OK);
    ck_assert_int_eq(dsv3_context_decode(ref, lng, N_MORE, 0), DSV3_OK);
    ck_assert_int_eq(dsv3_context_logits(ref, -1, &want), DSV3_OK);
    ck_assert_int_eq(dsv3_context_decode(c, lng, N_MORE, 0), DSV3_OK);
    ck_assert_int_eq(dsv3_context_logits(c, -1, &l), DSV3_OK);
    ck_assert_mem_eq(l, want, (size_t)hp->vocab_size * sizeof(float));
    free(before);
    free(after);
    dsv3_context_free(c);
    dsv3_context_free(ref);
}
END_TEST

#if DSV3_HAVE_UV
typedef struct async_rec {
    int n_done, status;
    double t_done;
} async_rec;

static void on_done(dsv3_uv_request *req, int status, const dsv3_generate_result *res, void *ud)
{
    async_rec *r = ud;
    (void)req;
    (void)res;
    r->n_done++;
    r->status = status;
    r->t_done = now_s();
}

static void cancel_timer(uv_timer_t *t)
{
    dsv3_uv_request_cancel(t->data);
}

/* A request canceled from a timer on the loop while its prompt is being
 * evaluated: on_done follows within about one layer's work. */
START_TEST(cancel_a_request_in_its_prefill)
{
    dsv3_context *c = ctx_new();
    dsv3_sampler *s = NULL;
    ck_assert_int_eq(dsv3_sampler_new(NULL, &s), DSV3_OK);
    uv_loop_t loop;
    uv_loop_init(&loop);
    async_rec r = {0, 0, 0};
    dsv3_uv_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.struct_size = sizeof cb;
    cb.on_done = on_done;
    cb.user_data = &r;
    dsv3_uv_request *req = NULL;
    double due = t_full * 0.4;
    double t_start = now_s();
    ck_assert_int_eq(dsv3_uv_generate_start(&loop, c, s, lng, N_LONG, NULL, &cb, &req), DSV3_OK);
    uv_timer_t timer;
    uv_timer_init(&loop, &timer);
    timer.data = req;
    uv_timer_start(&timer, cancel_timer, (uint64_t)(due * 1e3) + 1, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    double total = r.t_done - t_start;
    ck_assert_int_eq(r.n_done, 1);
    ck_assert_int_eq(r.status, DSV3_E_CANCELED);
    fprintf(stderr, "request: on_done %.1f ms after the start, cancel due at %.1f ms (prompt "
            "evaluation alone: %.1f ms)\n", total * 1e3, due * 1e3, t_full * 1e3);
    ck_assert_msg(total < t_full * 0.8, "on_done after %.1f ms", total * 1e3);
    ck_assert_uint_eq(dsv3_context_n_past(c), 0);
    dsv3_sampler_free(s);
    dsv3_context_free(c);
}
END_TEST
#endif

static Suite *cancel_suite(void)
{
    Suite *s = suite_create("cancel");
    TCase *tc = tcase_create("latency");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, cancel_a_long_prefill);
#if DSV3_HAVE_UV
    tcase_add_test(tc, cancel_a_request_in_its_prefill);
#endif
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(cancel_suite());
}
