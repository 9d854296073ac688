/*
 * uv_bridge.c - asynchronous generation on a caller's libuv loop.
 *
 * worker thread: waits for the start call to finish setting up, then runs
 *   the generation on the claimed context; each token event is copied into
 *   the request's queue (waiting while it holds max_queued events), then
 *   uv_async_send; at the end the preallocated done event is queued.
 * loop thread:   the async callback drains the WHOLE queue (sends coalesce):
 *   on_token ... then, for the done event: join the worker, release the
 *   context, on_error?, on_done, uv_close; the close callback frees the
 *   request.
 *
 * Who touches what: the queue, `go`, `running` and `canceled` are guarded by
 * mu (canceled is also read without it); the context and sampler belong to
 * the worker from the start call until the loop thread has joined it; the
 * context is cancelled through dsv3_context_cancel only while `running`, so
 * a cancel never reaches a context that the caller may already have freed.
 * SPDX-License-Identifier: MIT
 */
#include <pthread.h>
#include <signal.h>
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

enum { SYNC_MUTEX = 1, SYNC_COND = 2 };

struct dsv3_uv_request {
    uv_async_t async;            /* async.data is the request */
    dsv3__alloc alloc;           /* the context's allocator */
    dsv3_context *ctx;
    dsv3_sampler *smp;
    int32_t *prompt;
    size_t n_prompt;
    dsv3_generate_params params; /* .stop points at stops */
    char **stops;
    uint32_t n_stops;            /* entries of stops */
    dsv3_uv_callbacks cbs;
    uint32_t max_queued;
    int sync;                    /* SYNC_* initialised */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* start gate; the worker waits on a full queue */
    /* guarded by mu */
    uv_event *head, *tail;
    uint32_t n_queued;
    int go;                      /* 0: wait, 1: run, -1: start failed, exit */
    int running;                 /* the generation has not returned yet */
    atomic_int canceled;         /* dsv3_uv_request_cancel was called */
    /* worker thread only */
    uv_event *done_ev;           /* preallocated: completion needs no memory */
    int oom;                     /* a token event could not be allocated */
    /* loop thread only */
    int finished;                /* the done event was delivered */
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
    dsv3__free(&a, r->done_ev);
    for (uint32_t i = 0; i < r->n_stops; i++)
        dsv3__free(&a, r->stops[i]);
    dsv3__free(&a, r->stops);
    dsv3__free(&a, r->prompt);
    if (r->sync & SYNC_COND)
        pthread_cond_destroy(&r->cv);
    if (r->sync & SYNC_MUTEX)
        pthread_mutex_destroy(&r->mu);
    dsv3__free(&a, r);
}

/* ---- worker thread ------------------------------------------------------ */

/* dsv3_generate's token callback: queue a copy of the event, waiting while
 * the queue is full. Non-zero stops the generation. */
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
    pthread_mutex_lock(&r->mu);
    while (r->n_queued >= r->max_queued && !atomic_load(&r->canceled))
        pthread_cond_wait(&r->cv, &r->mu); /* back-pressure: the loop is behind */
    int canceled = atomic_load(&r->canceled);
    if (!canceled) {
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

/* Queue the done event (never waits: it is not counted in max_queued). */
static void worker_finish(dsv3_uv_request *r, int rc, const dsv3_generate_result *res)
{
    uv_event *done = r->done_ev;
    r->done_ev = NULL;
    done->kind = EV_DONE;
    done->status = rc;
    done->result = *res;
    const char *msg = NULL;
    if (r->oom) {
        done->status = DSV3_E_NOMEM;
        done->result.stop_reason = DSV3_STOP_ERROR;
        msg = "out of memory queueing a token event";
    } else if (rc != DSV3_OK && rc != DSV3_E_CANCELED) {
        msg = dsv3_context_errmsg(r->ctx);
        if (!msg || !*msg)
            msg = dsv3_strerror(rc);
    }
    if (msg) {
        dsv3__copy_msg(done->text, DSV3__ERRMSG_CAP, msg);
        done->text_len = strlen(done->text);
    }
    pthread_mutex_lock(&r->mu);
    r->running = 0; /* from now on a cancel leaves the context alone */
    if (r->tail)
        r->tail->next = done;
    else
        r->head = done;
    r->tail = done;
    pthread_mutex_unlock(&r->mu);
    uv_async_send(&r->async);
}

static void *worker_main(void *arg)
{
    dsv3_uv_request *r = arg;
    pthread_mutex_lock(&r->mu);
    while (r->go == 0)
        pthread_cond_wait(&r->cv, &r->mu);
    int go = r->go;
    pthread_mutex_unlock(&r->mu);
    if (go < 0)
        return NULL;
    dsv3_generate_result res;
    memset(&res, 0, sizeof res);
    res.struct_size = sizeof res;
    int rc = dsv3__generate_claimed(r->ctx, r->smp, r->prompt, r->n_prompt, &r->params,
                                    worker_token, r, &res);
    worker_finish(r, rc, &res);
    return NULL;
}

/* ---- loop thread ---------------------------------------------------------- */

static void on_close(uv_handle_t *h)
{
    free_request((dsv3_uv_request *)h->data);
}

static void deliver_token(dsv3_uv_request *r, const uv_event *e)
{
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
}

/* The worker has queued its last event: finish the request. A cancel made
 * before this point turns a normal end into DSV3_E_CANCELED; errors stay. */
static void deliver_done(dsv3_uv_request *r, const uv_event *e)
{
    pthread_join(r->thread, NULL);
    r->finished = 1;
    int status = e->status;
    dsv3_generate_result res = e->result;
    if (atomic_load(&r->canceled) && (status == DSV3_OK || status == DSV3_E_CANCELED)) {
        status = DSV3_E_CANCELED;
        res.stop_reason = DSV3_STOP_CANCELED;
    }
    /* the context and sampler are the caller's again: on_error and on_done
     * may free them or start the next request on them */
    dsv3__context_async_release(r->ctx);
    r->ctx = NULL;
    r->smp = NULL;
    if (status != DSV3_OK && status != DSV3_E_CANCELED && r->cbs.on_error)
        r->cbs.on_error(r, status, e->text, r->cbs.user_data);
    if (r->cbs.on_done)
        r->cbs.on_done(r, status, &res, r->cbs.user_data);
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
        if (!r->finished) {
            if (e->kind == EV_TOKEN)
                deliver_token(r, e);
            else
                deliver_done(r, e);
        }
        dsv3__free(&r->alloc, e);
        e = n;
    }
}

/* ---- start ------------------------------------------------------------------ */

static int copy_stops(dsv3_uv_request *r)
{
    uint32_t n = r->params.n_stop;
    if (!n)
        return DSV3_OK;
    if (!r->params.stop)
        return DSV3_E_INVAL;
    for (uint32_t i = 0; i < n; i++)
        if (!r->params.stop[i])
            return DSV3_E_INVAL;
    r->stops = dsv3__calloc(&r->alloc, n, sizeof *r->stops);
    if (!r->stops)
        return DSV3_E_NOMEM;
    r->n_stops = n;
    for (uint32_t i = 0; i < n; i++)
        if (!(r->stops[i] = dsv3__strdup(&r->alloc, r->params.stop[i])))
            return DSV3_E_NOMEM;
    r->params.stop = (const char *const *)r->stops;
    return DSV3_OK;
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
        size_t bytes;
        if (!prompt)
            return DSV3_E_INVAL;
        if (!dsv3__mul_size(n_prompt, sizeof *prompt, &bytes))
            return DSV3_E_NOMEM;
        if (!(r->prompt = dsv3__malloc(&r->alloc, bytes)))
            return DSV3_E_NOMEM;
        memcpy(r->prompt, prompt, bytes);
        r->n_prompt = n_prompt;
    }
    int rc = copy_stops(r);
    if (rc)
        return rc;
    r->done_ev = dsv3__calloc(&r->alloc, 1, sizeof *r->done_ev + DSV3__ERRMSG_CAP);
    return r->done_ev ? DSV3_OK : DSV3_E_NOMEM;
}

static int init_sync(dsv3_uv_request *r)
{
    if (pthread_mutex_init(&r->mu, NULL))
        return DSV3_E_INTERNAL;
    r->sync |= SYNC_MUTEX;
    if (pthread_cond_init(&r->cv, NULL))
        return DSV3_E_INTERNAL;
    r->sync |= SYNC_COND;
    return DSV3_OK;
}

/* Start the worker with every signal blocked: signals are for the
 * application's threads, not the library's. */
static int spawn_worker(dsv3_uv_request *r)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&r->thread, NULL, worker_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return err ? DSV3_E_INTERNAL : DSV3_OK;
}

static void open_gate(dsv3_uv_request *r, int go)
{
    pthread_mutex_lock(&r->mu);
    r->go = go;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Allocate and fill a request; claims the context last. */
static int request_new(dsv3_context *ctx, dsv3_sampler *smp, const int32_t *prompt,
                       size_t n_prompt, const dsv3_generate_params *params,
                       const dsv3_uv_callbacks *cbs, dsv3_uv_request **out)
{
    const dsv3__alloc *ca = dsv3__context_allocator(ctx);
    if (!ca)
        return DSV3_E_MISUSE; /* failed or freed context */
    dsv3_uv_request *r = dsv3__calloc(ca, 1, sizeof *r);
    if (!r)
        return DSV3_E_NOMEM;
    r->alloc = *ca;
    r->ctx = ctx;
    r->smp = smp;
    r->cbs = *cbs;
    r->max_queued = cbs->max_queued ? cbs->max_queued : DEFAULT_MAX_QUEUED;
    atomic_init(&r->canceled, 0);
    r->running = 1;
    int rc = init_sync(r);
    if (!rc)
        rc = copy_inputs(r, prompt, n_prompt, params);
    if (!rc)
        rc = dsv3__context_async_claim(ctx);
    if (rc) {
        free_request(r);
        return rc;
    }
    *out = r;
    return DSV3_OK;
}

int dsv3_uv_generate_start(uv_loop_t *loop, dsv3_context *ctx, dsv3_sampler *smp,
                           const int32_t *prompt, size_t n_prompt,
                           const dsv3_generate_params *params, const dsv3_uv_callbacks *cbs,
                           dsv3_uv_request **out)
{
    if (out)
        *out = NULL;
    if (!loop || !ctx || !smp || !cbs)
        return DSV3_E_INVAL;
    dsv3_uv_callbacks c;
    int rc = dsv3__params_copy(&c, sizeof c, cbs, sizeof c);
    if (rc)
        return rc;
    dsv3_uv_request *r;
    if ((rc = request_new(ctx, smp, prompt, n_prompt, params, &c, &r)))
        return rc;
    /* the worker waits at the gate until the handle exists; on failure it
     * is told to exit, and nothing remains */
    if ((rc = spawn_worker(r))) {
        dsv3__seterr(dsv3__context_err(ctx), rc, "cannot start a worker thread");
        dsv3__context_async_release(ctx);
        free_request(r);
        return rc;
    }
    if (uv_async_init(loop, &r->async, on_async) != 0) {
        open_gate(r, -1);
        pthread_join(r->thread, NULL);
        dsv3__seterr(dsv3__context_err(ctx), DSV3_E_INTERNAL, "uv_async_init failed");
        dsv3__context_async_release(ctx);
        free_request(r);
        return DSV3_E_INTERNAL;
    }
    r->async.data = r;
    open_gate(r, 1);
    if (out)
        *out = r;
    return DSV3_OK;
}

void dsv3_uv_request_cancel(dsv3_uv_request *req)
{
    if (!req)
        return;
    pthread_mutex_lock(&req->mu);
    atomic_store(&req->canceled, 1);
    if (req->running)
        dsv3_context_cancel(req->ctx); /* stops a decode within one layer */
    pthread_cond_broadcast(&req->cv);  /* wakes a worker paused on a full queue */
    pthread_mutex_unlock(&req->mu);
}

void *dsv3_uv_request_user_data(const dsv3_uv_request *req)
{
    return req ? req->cbs.user_data : NULL;
}
