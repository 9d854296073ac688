/*
 * uv_bridge.c - asynchronous generation on a caller's libuv loop.
 *
 * worker thread: dsv3_generate -> token callback copies each event into the
 *   request's queue (waiting while it holds max_queued events) -> uv_async_send
 * loop thread:   async callback drains the WHOLE queue (sends coalesce) ->
 *   on_token ... on_error? on_done -> uv_close -> close callback frees
 * SPDX-License-Identifier: MIT
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "dsv3_uv.h"
#include "../model/model.h"

#define DEFAULT_MAX_QUEUED 256

enum { EV_TOKEN = 1, EV_DONE = 2 };

typedef struct uv_event {
    struct uv_event *next;
    int32_t kind;
    int32_t token;
    uint32_t index;
    int status;                  /* EV_DONE */
    dsv3_generate_result result; /* EV_DONE */
    size_t text_len;
    char text[];                 /* EV_TOKEN: the text; EV_DONE: the error message */
} uv_event;

struct dsv3_uv_request {
    uv_async_t async;
    dsv3__alloc alloc;
    dsv3_context *ctx;
    dsv3_sampler *smp;
    int32_t *prompt;
    size_t n_prompt;
    dsv3_generate_params params;
    char **stops;
    dsv3_uv_callbacks cbs;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* the worker waits here while the queue is full */
    uv_event *head, *tail;
    uint32_t n_queued;
    uint32_t max_queued;
    uv_event *done_ev;          /* preallocated completion event */
    atomic_int canceled;
    int oom;                    /* a token event could not be allocated */
    int finished;               /* on_done delivered (loop thread only) */
};

static void free_request(dsv3_uv_request *r)
{
    dsv3__alloc a = r->alloc;
    uv_event *e = r->head;
    while (e) {
        uv_event *n = e->next;
        dsv3__free(&a, e);
        e = n;
    }
    if (r->stops)
        for (uint32_t i = 0; i < r->params.n_stop; i++)
            dsv3__free(&a, r->stops[i]);
    dsv3__free(&a, r->stops);
    dsv3__free(&a, r->prompt);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    dsv3__free(&a, r);
}

/* Append an event; on a full queue wait (token events only) unless canceled.
 * Returns 0, or 1 when the request was canceled while waiting. */
static int enqueue(dsv3_uv_request *r, uv_event *e)
{
    pthread_mutex_lock(&r->mu);
    while (e->kind == EV_TOKEN && r->n_queued >= r->max_queued &&
           !atomic_load(&r->canceled))
        pthread_cond_wait(&r->cv, &r->mu);
    int canceled = e->kind == EV_TOKEN && atomic_load(&r->canceled);
    if (!canceled) {
        e->next = NULL;
        if (r->tail)
            r->tail->next = e;
        else
            r->head = e;
        r->tail = e;
        r->n_queued++;
    }
    pthread_mutex_unlock(&r->mu);
    if (canceled) {
        dsv3__free(&r->alloc, e);
        return 1;
    }
    uv_async_send(&r->async);
    return 0;
}

/* dsv3_generate's token callback, on the worker thread. */
static int worker_token(const dsv3_token_event *ev, void *user_data)
{
    dsv3_uv_request *r = user_data;
    if (atomic_load(&r->canceled))
        return 1;
    uv_event *e = dsv3__malloc(&r->alloc, sizeof *e + ev->text_len + 1);
    if (!e) { /* cannot deliver: stop the generation and report it */
        r->oom = 1;
        return 1;
    }
    memset(e, 0, sizeof *e);
    e->kind = EV_TOKEN;
    e->token = ev->token;
    e->index = ev->index;
    e->text_len = ev->text_len;
    if (ev->text_len)
        memcpy(e->text, ev->text, ev->text_len);
    e->text[ev->text_len] = '\0';
    return enqueue(r, e);
}

/* The done event is allocated up front so that completion never depends on
 * memory being available at the end. */
static void *worker_main(void *arg)
{
    dsv3_uv_request *r = arg;
    uv_event *done = r->done_ev;
    dsv3_generate_result res;
    memset(&res, 0, sizeof res);
    res.struct_size = sizeof res;
    int rc = DSV3_E_CANCELED;
    if (!atomic_load(&r->canceled))
        rc = dsv3_generate(r->ctx, r->smp, r->prompt, r->n_prompt, &r->params, worker_token, r,
                           &res);
    if (r->oom) {
        rc = DSV3_E_NOMEM;
        res.stop_reason = DSV3_STOP_ERROR;
    } else if (atomic_load(&r->canceled) && (rc == DSV3_OK || rc == DSV3_E_CANCELED)) {
        rc = DSV3_E_CANCELED;
        res.stop_reason = DSV3_STOP_CANCELED;
    }
    done->kind = EV_DONE;
    done->status = rc;
    done->result = res;
    if (r->oom) {
        dsv3__copy_msg(done->text, DSV3__ERRMSG_CAP, "out of memory queueing a token event");
        done->text_len = strlen(done->text);
    } else if (rc != DSV3_OK && rc != DSV3_E_CANCELED) {
        const char *msg = dsv3_context_errmsg(r->ctx);
        dsv3__copy_msg(done->text, DSV3__ERRMSG_CAP, msg && *msg ? msg : dsv3_strerror(rc));
        done->text_len = strlen(done->text);
    }
    enqueue(r, done);
    return NULL;
}

static void on_close(uv_handle_t *h)
{
    free_request((dsv3_uv_request *)h->data);
}

static void deliver(dsv3_uv_request *r, uv_event *e)
{
    if (e->kind == EV_TOKEN) {
        if (!r->cbs.on_token || atomic_load(&r->canceled))
            return;
        dsv3_token_event ev;
        memset(&ev, 0, sizeof ev);
        ev.struct_size = sizeof ev;
        ev.token = e->token;
        ev.index = e->index;
        ev.text = e->text;
        ev.text_len = e->text_len;
        if (r->cbs.on_token(r, &ev, r->cbs.user_data))
            dsv3_uv_request_cancel(r);
        return;
    }
    /* EV_DONE: the worker has returned from dsv3_generate */
    pthread_join(r->thread, NULL);
    dsv3__context_async_release(r->ctx);
    if (e->status != DSV3_OK && e->status != DSV3_E_CANCELED && r->cbs.on_error)
        r->cbs.on_error(r, e->status, e->text, r->cbs.user_data);
    r->finished = 1;
    if (r->cbs.on_done)
        r->cbs.on_done(r, e->status, &e->result, r->cbs.user_data);
    uv_close((uv_handle_t *)&r->async, on_close);
}

static void on_async(uv_async_t *h)
{
    dsv3_uv_request *r = h->data;
    if (r->finished)
        return;
    /* take the whole queue: uv_async_send coalesces wake-ups */
    pthread_mutex_lock(&r->mu);
    uv_event *e = r->head;
    r->head = r->tail = NULL;
    r->n_queued = 0;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    while (e) {
        uv_event *n = e->next;
        if (!r->finished)
            deliver(r, e);
        dsv3__free(&r->alloc, e);
        e = n;
    }
}

static int copy_inputs(dsv3_uv_request *r, const int32_t *prompt, size_t n_prompt,
                       const dsv3_generate_params *params)
{
    dsv3_generate_params_init(&r->params, sizeof r->params);
    if (params) {
        int rc = dsv3__params_copy(&r->params, sizeof r->params, params,
                                   sizeof(dsv3_generate_params));
        if (rc)
            return rc;
    }
    if (n_prompt) {
        if (!prompt)
            return DSV3_E_INVAL;
        size_t bytes;
        if (!dsv3__mul_size(n_prompt, sizeof *prompt, &bytes))
            return DSV3_E_NOMEM;
        r->prompt = dsv3__malloc(&r->alloc, bytes);
        if (!r->prompt)
            return DSV3_E_NOMEM;
        memcpy(r->prompt, prompt, bytes);
        r->n_prompt = n_prompt;
    }
    if (r->params.n_stop) {
        if (!r->params.stop)
            return DSV3_E_INVAL;
        r->stops = dsv3__calloc(&r->alloc, r->params.n_stop, sizeof *r->stops);
        if (!r->stops)
            return DSV3_E_NOMEM;
        for (uint32_t i = 0; i < r->params.n_stop; i++) {
            if (!r->params.stop[i])
                return DSV3_E_INVAL;
            r->stops[i] = dsv3__strdup(&r->alloc, r->params.stop[i]);
            if (!r->stops[i])
                return DSV3_E_NOMEM;
        }
        r->params.stop = (const char *const *)r->stops;
    }
    return DSV3_OK;
}

int dsv3_uv_generate_start(uv_loop_t *loop, dsv3_context *ctx, dsv3_sampler *smp,
                           const int32_t *prompt, size_t n_prompt,
                           const dsv3_generate_params *params, const dsv3_uv_callbacks *cbs,
                           dsv3_uv_request **out)
{
    if (out)
        *out = NULL;
    if (!loop || !ctx || !smp || !cbs || cbs->struct_size < sizeof(dsv3_uv_callbacks))
        return DSV3_E_INVAL;
    const dsv3__alloc *ca = dsv3__context_allocator(ctx);
    if (!ca)
        return DSV3_E_MISUSE;
    dsv3_uv_request *r = dsv3__calloc(ca, 1, sizeof *r);
    if (!r)
        return DSV3_E_NOMEM;
    r->alloc = *ca;
    r->ctx = ctx;
    r->smp = smp;
    r->cbs = *cbs;
    r->cbs.struct_size = sizeof r->cbs;
    r->max_queued = cbs->max_queued ? cbs->max_queued : DEFAULT_MAX_QUEUED;
    atomic_init(&r->canceled, 0);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    int rc = copy_inputs(r, prompt, n_prompt, params);
    uv_event *done = NULL;
    if (rc == DSV3_OK) {
        done = dsv3__calloc(&r->alloc, 1, sizeof *done + DSV3__ERRMSG_CAP);
        if (!done)
            rc = DSV3_E_NOMEM;
    }
    if (rc == DSV3_OK)
        rc = dsv3__context_async_claim(ctx);
    if (rc != DSV3_OK) {
        dsv3__free(&r->alloc, done);
        free_request(r);
        return rc;
    }
    if (uv_async_init(loop, &r->async, on_async) != 0) {
        dsv3__context_async_release(ctx);
        dsv3__free(&r->alloc, done);
        free_request(r);
        return DSV3_E_INTERNAL;
    }
    r->async.data = r;
    r->done_ev = done;
    if (pthread_create(&r->thread, NULL, worker_main, r) != 0) {
        r->done_ev = NULL;
        dsv3__free(&r->alloc, done);
        dsv3__context_async_release(ctx);
        r->finished = 1;
        uv_close((uv_handle_t *)&r->async, on_close); /* frees r; no user callback */
        return DSV3_E_INTERNAL;
    }
    if (out)
        *out = r;
    return DSV3_OK;
}

void dsv3_uv_request_cancel(dsv3_uv_request *req)
{
    if (!req)
        return;
    atomic_store(&req->canceled, 1);
    dsv3_context_cancel(req->ctx);
    pthread_mutex_lock(&req->mu);
    pthread_cond_broadcast(&req->cv);
    pthread_mutex_unlock(&req->mu);
}

void *dsv3_uv_request_user_data(const dsv3_uv_request *req)
{
    return req ? req->cbs.user_data : NULL;
}
