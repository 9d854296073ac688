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
 * callback ever runs and nothing is left behind.
 *
 * Lifetimes: the request is owned by the library and freed after on_done has
 * returned and its libuv handle has been closed (later in the same loop
 * iteration), so the loop must keep running (uv_run) until on_done. Do not
 * close the request's handle yourself (e.g. with uv_walk). The context and
 * sampler are borrowed from the start call until the request's last
 * callback: while it runs, calls that work on the context fail with
 * DSV3_E_BUSY (a second request too); the other context calls (except
 * dsv3_context_cancel) and every call on the sampler are not allowed. From
 * inside on_error and on_done they are the caller's again: free them, or
 * start the next request on them. The prompt tokens, params and stop strings
 * are copied by the start call.
 *
 * Concurrency and limits: one request per context at a time; any number of
 * contexts of one model may each run a request, each on its own worker
 * thread. Nothing else limits the number of requests: each one holds its
 * context (with its KV cache) and one thread, and the requests share the
 * machine's cores (a context computes with its own DSV3_CTX_PARAM_N_THREADS
 * threads, so with many requests prefer 1 thread per context). If the system
 * refuses a thread, the start call fails with DSV3_E_INTERNAL.
 *
 * Back-pressure: each request queues at most max_queued token events; the
 * loop takes all queued events at each wake-up. When the loop falls behind
 * (not run, or slow callbacks), the worker pauses before the next forward
 * pass until the loop has taken the queue. Nothing is dropped; a request
 * holds at most about 2 * max_queued events in memory.
 *
 * Cancelling: dsv3_uv_request_cancel, or on_token returning non-zero, stops
 * the request: no on_token runs after that (once the call has returned, for
 * a cancel from another thread), the decode stops within one layer's work,
 * and on_done reports DSV3_E_CANCELED unless the generation had already
 * failed (then on_error and its error). dsv3_context_cancel on the
 * request's context also stops it; then on_done gets DSV3_E_CANCELED if the
 * cancel reached the generation before it ended.
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
 * is the negative code and message the context's error message (a copy,
 * valid during the call). */
typedef void (*dsv3_uv_error_fn)(dsv3_uv_request *req, int status, const char *message,
                                 void *user_data);

/**
 * Completion callback, on the loop thread, exactly once, last. status is
 * DSV3_OK for every normal stop (see result->stop_reason), DSV3_E_CANCELED
 * after a cancel, or the error code (also given to on_error). result is
 * valid during the call. The request may not be used after it returns.
 */
typedef void (*dsv3_uv_done_fn)(dsv3_uv_request *req, int status,
                                const dsv3_generate_result *result, void *user_data);

/** Callbacks and options of a request. Since: 0.1 */
typedef struct dsv3_uv_callbacks {
    uint32_t struct_size;
    uint32_t max_queued;       /* token events queued before the worker pauses
                                  (back-pressure); 0 (default) = 256 */
    dsv3_uv_token_fn on_token; /* may be NULL */
    dsv3_uv_error_fn on_error; /* may be NULL */
    dsv3_uv_done_fn on_done;   /* may be NULL */
    void *user_data;
} dsv3_uv_callbacks;

/**
 * Start a generation (as dsv3_generate: prompt evaluation, then sampling until
 * a stop) on a worker thread, delivering events on loop.
 * @param loop     the caller's loop; callbacks run on its thread.
 * @param ctx,smp  borrowed until the last callback (on_error or on_done).
 * @param prompt, n_prompt, params  as for dsv3_generate (copied).
 * @param cbs      callbacks (copied); must not be NULL.
 * @param out      receives the request (owned by the library); may be NULL.
 * @return DSV3_OK, DSV3_E_INVAL (NULL loop/ctx/smp/cbs, cbs or params
 *         struct_size too small, NULL prompt with n_prompt > 0, NULL stop
 *         strings), DSV3_E_UNSUPPORTED (unknown non-zero struct tail),
 *         DSV3_E_MISUSE (failed or freed context), DSV3_E_BUSY (the context
 *         runs a request or another call), DSV3_E_NOMEM, DSV3_E_INTERNAL
 *         (thread or libuv handle creation failed). On failure no callback
 *         runs. Everything else (bad tokens, a prompt that does not fit, a
 *         failed sampler ...) is reported through on_error and on_done.
 * Thread-safety: the loop's thread. Since: 0.1
 */
DSV3_API int dsv3_uv_generate_start(uv_loop_t *loop, dsv3_context *ctx, dsv3_sampler *smp,
                                    const int32_t *prompt, size_t n_prompt,
                                    const dsv3_generate_params *params,
                                    const dsv3_uv_callbacks *cbs, dsv3_uv_request **out);

/**
 * Ask a request to stop (see "Cancelling" above). NULL is a no-op.
 * The request must still exist: on the loop thread, any time until its
 * on_done has returned and a little later (until the close callback, at the
 * end of that loop iteration: such a late cancel does nothing). From another
 * thread, make sure on_done has not returned yet, for example by taking a
 * lock that on_done takes too; or call dsv3_context_cancel on the request's
 * context instead, which is valid for as long as the context lives.
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
