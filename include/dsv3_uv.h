/*
 * dsv3_uv.h - asynchronous generation on the caller's libuv loop.
 *
 * SPDX-License-Identifier: MIT
 *
 * A generation started with dsv3_uv_generate_start runs on a library-owned
 * worker thread (not libuv's shared threadpool). Tokens travel through a
 * queue to the loop and the callbacks run on the loop's thread: on_token for
 * every generated token, in order; on_error at most once when the generation
 * fails; on_done exactly once, last. If dsv3_uv_generate_start fails, no
 * callback ever runs.
 *
 * Lifetimes: the request is owned by the library and freed after on_done has
 * returned and its libuv handle has been closed, so the loop must keep running
 * (uv_run) until on_done; do not use the request pointer after on_done. The
 * context and sampler are borrowed from the start call until on_done returns:
 * do not use, free or start another request on them meanwhile (a second
 * request on a busy context fails with DSV3_E_BUSY). The prompt tokens and
 * the stop strings are copied by the start call.
 *
 * Concurrency: one request per context at a time; any number of contexts of
 * one model may each run a request, each on its own worker thread (a context
 * computes with its own DSV3_CTX_PARAM_N_THREADS threads, so on a machine
 * with few cores prefer 1 thread per context when many requests run).
 *
 * Back-pressure: each request queues at most max_queued token events; when
 * the loop does not drain them in time, the worker pauses decoding until the
 * loop catches up. Nothing is dropped.
 */
#ifndef DSV3_UV_H
#define DSV3_UV_H

#include <uv.h>

#include "dsv3.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dsv3_uv_request dsv3_uv_request;

/**
 * Token callback, on the loop thread. ev and its text are valid during the
 * call only. Return non-zero to cancel the request (on_done still follows).
 * From here the request may be canceled; other library calls on the request's
 * context or sampler are not allowed.
 */
typedef int (*dsv3_uv_token_fn)(dsv3_uv_request *req, const dsv3_token_event *ev,
                                void *user_data);

/** Error callback, on the loop thread, at most once, before on_done: status
 * is the negative code and message the context's error message (valid during
 * the call). */
typedef void (*dsv3_uv_error_fn)(dsv3_uv_request *req, int status, const char *message,
                                 void *user_data);

/**
 * Completion callback, on the loop thread, exactly once, last. status is
 * DSV3_OK for every normal stop (see result->stop_reason), DSV3_E_CANCELED
 * after a cancel, or the error code. result is valid during the call.
 */
typedef void (*dsv3_uv_done_fn)(dsv3_uv_request *req, int status,
                                const dsv3_generate_result *result, void *user_data);

/** Callbacks and options of a request. Since: 0.1 */
typedef struct dsv3_uv_callbacks {
    uint32_t struct_size;
    uint32_t max_queued;       /* token events queued before the worker pauses;
                                  0 (default) = 256 */
    dsv3_uv_token_fn on_token; /* may be NULL */
    dsv3_uv_error_fn on_error; /* may be NULL */
    dsv3_uv_done_fn on_done;   /* may be NULL */
    void *user_data;
} dsv3_uv_callbacks;

/**
 * Start a generation (as dsv3_generate: prompt evaluation, then sampling until
 * a stop) on a worker thread, delivering events on loop.
 * @param loop     the caller's loop; callbacks run on its thread.
 * @param ctx,smp  borrowed until on_done returns.
 * @param prompt, n_prompt, params  as for dsv3_generate (copied).
 * @param cbs      callbacks (copied); must not be NULL.
 * @param out      receives the request (owned by the library); may be NULL.
 * @return DSV3_OK, DSV3_E_INVAL (NULL loop/ctx/smp/cbs, bad struct_size),
 *         DSV3_E_BUSY (the context already runs a request), DSV3_E_NOMEM,
 *         DSV3_E_INTERNAL (thread or libuv handle creation failed).
 *         On failure no callback runs.
 * Thread-safety: the loop's thread. Since: 0.1
 */
DSV3_API int dsv3_uv_generate_start(uv_loop_t *loop, dsv3_context *ctx, dsv3_sampler *smp,
                                    const int32_t *prompt, size_t n_prompt,
                                    const dsv3_generate_params *params,
                                    const dsv3_uv_callbacks *cbs, dsv3_uv_request **out);

/**
 * Ask a request to stop. Decoding stops within one layer's work; no more
 * on_token callbacks run after this call returns (when called on the loop
 * thread); on_done follows with DSV3_E_CANCELED (or with the status the
 * request had already reached). Calling it after on_done is not allowed.
 * Thread-safety: any thread. Since: 0.1
 */
DSV3_API void dsv3_uv_request_cancel(dsv3_uv_request *req);

/** The user_data given in the callbacks. Thread-safety: any thread.
 * Since: 0.1 */
DSV3_API void *dsv3_uv_request_user_data(const dsv3_uv_request *req);

#ifdef __cplusplus
}
#endif

#endif /* DSV3_UV_H */
