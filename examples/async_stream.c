/*
 * async_stream.c - stream tokens from two prompts at once on one libuv loop.
 *
 * usage: async_stream [options] [MODEL_DIR] [PROMPT_A] [PROMPT_B]
 *   -n N              tokens per prompt (default 40)
 *   --tokens IDS      prompt A as token ids (comma-separated) instead of text
 *   --tokens-b IDS    prompt B as token ids
 *
 * Both generations share one loaded model, each on its own context; their
 * tokens arrive interleaved on the loop thread and are printed as
 * "[A] text" / "[B] text" lines. A model without a tokenizer (such as the
 * synthetic test models) gets the prompt's bytes as token ids and prints
 * token ids instead of text.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dsv3_uv.h>

#ifndef DEFAULT_MODEL
#define DEFAULT_MODEL "models/dsv3-tiny-stories"
#endif

#define MAX_PROMPT 512

typedef struct stream {
    const char *name;
    dsv3_context *ctx;
    dsv3_sampler *smp;
    int32_t prompt[MAX_PROMPT];
    size_t n_prompt;
    int show_ids; /* no tokenizer: print ids */
    int n_tokens;
    int status;
    int done;
} stream;

static int on_token(dsv3_uv_request *req, const dsv3_token_event *ev, void *ud)
{
    stream *s = ud;
    (void)req;
    s->n_tokens++;
    if (s->show_ids)
        printf("[%s] <%d>\n", s->name, (int)ev->token);
    else
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
    fprintf(stderr, "[%s] done: %s, %u tokens in %.3f s\n", s->name, dsv3_err_name(status),
            res->n_generated, res->generate_seconds);
}

/* "1,2,3" -> ids; 0 on a malformed list. */
static int parse_ids(const char *text, int32_t *ids, size_t cap, size_t *n)
{
    *n = 0;
    while (*text) {
        char *end;
        long v = strtol(text, &end, 10);
        if (end == text || v < 0 || v > INT32_MAX || *n == cap || (*end && *end != ','))
            return 0;
        ids[(*n)++] = (int32_t)v;
        text = *end ? end + 1 : end;
    }
    return *n > 0;
}

/* The prompt's ids: given ones, else the tokenizer's, else (no tokenizer)
 * BOS and the text's bytes folded into the vocabulary. */
static int prompt_ids(dsv3_model *model, const dsv3_model_info *info, const char *text,
                      const char *ids, stream *s)
{
    if (ids) {
        if (!parse_ids(ids, s->prompt, MAX_PROMPT, &s->n_prompt)) {
            fprintf(stderr, "async_stream: bad token list '%s'\n", ids);
            return 1;
        }
        s->show_ids = !(info->flags & DSV3_INFO_HAS_TOKENIZER);
        return 0;
    }
    if (info->flags & DSV3_INFO_HAS_TOKENIZER) {
        if (dsv3_tokenize(model, text, strlen(text), DSV3_TOKENIZE_ADD_BOS, s->prompt,
                          MAX_PROMPT, &s->n_prompt)) {
            fprintf(stderr, "async_stream: tokenize: %s\n", dsv3_model_errmsg(model));
            return 1;
        }
        return 0;
    }
    s->show_ids = 1;
    if (info->bos_token >= 0)
        s->prompt[s->n_prompt++] = info->bos_token;
    for (const unsigned char *p = (const unsigned char *)text; *p && s->n_prompt < 64; p++)
        s->prompt[s->n_prompt++] = (int32_t)(*p % (unsigned)info->vocab_size);
    return 0;
}

static int start(uv_loop_t *loop, dsv3_model *model, const dsv3_model_info *info, stream *s,
                 int32_t n_tokens)
{
    dsv3_context_params cp;
    dsv3_context_params_init(&cp, sizeof cp);
    cp.n_ctx = info->max_position > 0 && info->max_position < 1024 ? (uint32_t)info->max_position
                                                                     : 1024;
    cp.n_threads = 1; /* two generations share the machine */
    int rc = dsv3_context_new(model, &cp, &s->ctx);
    if (rc) {
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
    gp.max_tokens = n_tokens;
    dsv3_uv_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.struct_size = sizeof cb;
    cb.on_token = on_token;
    cb.on_error = on_error;
    cb.on_done = on_done;
    cb.user_data = s;
    rc = dsv3_uv_generate_start(loop, s->ctx, s->smp, s->prompt, s->n_prompt, &gp, &cb, NULL);
    if (rc)
        fprintf(stderr, "start: %s\n", dsv3_strerror(rc));
    return rc;
}

int main(int argc, char **argv)
{
    const char *pos[3] = {DEFAULT_MODEL, "once upon a time, there was a little dog",
                          "the sun was shining and the birds"};
    const char *ids_a = NULL, *ids_b = NULL;
    int n_pos = 0;
    int32_t n_tokens = 40;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc)
            n_tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
            ids_a = argv[++i];
        else if (!strcmp(argv[i], "--tokens-b") && i + 1 < argc)
            ids_b = argv[++i];
        else if (argv[i][0] == '-' || n_pos == 3) {
            fprintf(stderr, "usage: async_stream [-n N] [--tokens IDS] [--tokens-b IDS] "
                            "[MODEL_DIR] [PROMPT_A] [PROMPT_B]\n");
            return 2;
        } else
            pos[n_pos++] = argv[i];
    }
    dsv3_model *model = NULL;
    if (dsv3_model_load(pos[0], NULL, &model)) {
        fprintf(stderr, "async_stream: %s\n", dsv3_model_errmsg(model));
        dsv3_model_free(model);
        return 1;
    }
    dsv3_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    dsv3_model_info_get(model, &info);
    stream a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.name = "A";
    b.name = "B";
    int rc = prompt_ids(model, &info, pos[1], ids_a, &a) || prompt_ids(model, &info, pos[2],
                                                                        ids_b, &b);
    uv_loop_t loop;
    uv_loop_init(&loop);
    if (!rc)
        rc = start(&loop, model, &info, &a, n_tokens);
    if (!rc)
        rc = start(&loop, model, &info, &b, n_tokens);
    uv_run(&loop, UV_RUN_DEFAULT); /* returns when the requests are closed */
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
