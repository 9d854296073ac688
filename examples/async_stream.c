/*
 * async_stream.c - stream tokens from two prompts at once on one libuv loop.
 *
 * usage: async_stream [MODEL_DIR] [PROMPT_A] [PROMPT_B]
 *
 * Both generations share one loaded model, each on its own context; their
 * tokens arrive interleaved on the loop thread and are printed as
 * "[A] text" / "[B] text" lines.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dsv3_uv.h>

#ifndef DEFAULT_MODEL
#define DEFAULT_MODEL "models/dsv3-tiny-stories"
#endif

typedef struct stream {
    const char *name;
    dsv3_context *ctx;
    dsv3_sampler *smp;
    int n_tokens;
    int status;
    int done;
} stream;

static int on_token(dsv3_uv_request *req, const dsv3_token_event *ev, void *ud)
{
    stream *s = ud;
    (void)req;
    s->n_tokens++;
    printf("[%s] %.*s\n", s->name, (int)ev->text_len, ev->text);
    return 0;
}

static void on_error(dsv3_uv_request *req, int status, const char *msg, void *ud)
{
    stream *s = ud;
    (void)req;
    fprintf(stderr, "[%s] error %s: %s\n", s->name, dsv3_err_name(status), msg);
}

static void on_done(dsv3_uv_request *req, int status, const dsv3_generate_result *res, void *ud)
{
    stream *s = ud;
    (void)req;
    s->status = status;
    s->done = 1;
    fprintf(stderr, "[%s] done: %s, %u tokens in %.2f s\n", s->name, dsv3_err_name(status),
            res->n_generated, res->generate_seconds);
}

static int start(uv_loop_t *loop, dsv3_model *model, stream *s, const char *prompt)
{
    int32_t toks[512];
    size_t n = 0;
    int rc = dsv3_tokenize(model, prompt, strlen(prompt), DSV3_TOKENIZE_ADD_BOS, toks,
                           sizeof toks / sizeof toks[0], &n);
    if (rc) {
        fprintf(stderr, "tokenize: %s\n", dsv3_model_errmsg(model));
        return rc;
    }
    dsv3_context_params cp;
    dsv3_context_params_init(&cp, sizeof cp);
    cp.n_ctx = 512;
    cp.n_threads = 1; /* two generations share the machine */
    if ((rc = dsv3_context_new(model, &cp, &s->ctx))) {
        fprintf(stderr, "context: %s\n", dsv3_context_errmsg(s->ctx));
        return rc;
    }
    dsv3_sampler_params sp;
    dsv3_sampler_params_init(&sp, sizeof sp);
    sp.temperature = 0; /* greedy: reproducible output */
    if ((rc = dsv3_sampler_new(&sp, &s->smp))) {
        fprintf(stderr, "sampler: %s\n", dsv3_sampler_errmsg(s->smp));
        return rc;
    }
    dsv3_generate_params gp;
    dsv3_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = 40;
    dsv3_uv_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.struct_size = sizeof cb;
    cb.on_token = on_token;
    cb.on_error = on_error;
    cb.on_done = on_done;
    cb.user_data = s;
    rc = dsv3_uv_generate_start(loop, s->ctx, s->smp, toks, n, &gp, &cb, NULL);
    if (rc)
        fprintf(stderr, "start: %s\n", dsv3_strerror(rc));
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : DEFAULT_MODEL;
    const char *pa = argc > 2 ? argv[2] : "once upon a time, there was a little dog";
    const char *pb = argc > 3 ? argv[3] : "the sun was shining and the birds";
    dsv3_model *model = NULL;
    if (dsv3_model_load(path, NULL, &model)) {
        fprintf(stderr, "async_stream: %s\n", dsv3_model_errmsg(model));
        dsv3_model_free(model);
        return 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    stream a = {.name = "A"}, b = {.name = "B"};
    int rc = start(&loop, model, &a, pa);
    if (!rc)
        rc = start(&loop, model, &b, pb);
    uv_run(&loop, UV_RUN_DEFAULT); /* returns when both requests are closed */
    uv_loop_close(&loop);
    int ok = !rc && a.done && b.done && a.status == DSV3_OK && b.status == DSV3_OK &&
             a.n_tokens > 0 && b.n_tokens > 0;
    dsv3_sampler_free(a.smp);
    dsv3_sampler_free(b.smp);
    dsv3_context_free(a.ctx);
    dsv3_context_free(b.ctx);
    dsv3_model_free(model);
    return ok ? 0 : 1;
}
