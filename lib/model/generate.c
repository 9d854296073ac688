/*
 * generate.c - streaming generation: evaluate the prompt, then sample, emit
 * and evaluate tokens until a stop condition.
 *
 * The loop runs on a dsv3__gen_io (model.h), so that it can be tested
 * without a model. Each round takes one *step* that produces tokens:
 *  - the plain step samples one token from the current logits and leaves it
 *    uncommitted: the loop hands it to the callback first and evaluates it
 *    afterwards, so text reaches the caller before the next forward pass;
 *  - a draft/verify step (MTP speculative decoding) would evaluate the
 *    sampled token with its drafts in one batch, keep the verified prefix and
 *    return several tokens already committed to the cache (and has to drop
 *    from the cache those after a stop the loop reports in their middle).
 * Every produced token is evaluated, so the generated tokens stay in the
 * cache and a later call with no prompt continues from them.
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "../sampler/sampler.h"
#include "../tokenizer/tokenizer.h"
#include "model.h"

#define GEN_MAX_STEP 16 /* most tokens one step may produce */

static const dsv3_generate_params generate_defaults = {
    .struct_size = sizeof(dsv3_generate_params),
};

int dsv3_generate_params_init(dsv3_generate_params *p, size_t size)
{
    return dsv3__params_init(p, size, &generate_defaults, sizeof generate_defaults,
                             sizeof(dsv3_generate_params));
}

typedef struct gen {
    const dsv3__gen_io *io;
    dsv3_sampler *smp;
    dsv3_generate_params p;
    dsv3_token_fn cb;
    void *user_data;
    dsv3__textout text;
    dsv3_generate_result res;
    double cb_seconds;           /* spent in the callback, not counted as generation */
    int32_t tok[GEN_MAX_STEP];   /* tokens of the current step */
    uint32_t n_tok;
    bool committed;              /* already in the cache */
} gen;

/* ---- steps -------------------------------------------------------------- */

/* Sample one token from the current logits and record it in the sampler. */
static int step_single(gen *g)
{
    const dsv3__gen_io *io = g->io;
    const float *row = io->logits(io->self);
    if (!row)
        return dsv3__seterr(io->err, DSV3_E_INTERNAL, "generate: no logits after evaluation");
    int32_t t;
    int rc = dsv3_sampler_sample(g->smp, row, io->n_vocab, &t);
    if (!rc)
        rc = dsv3_sampler_accept(g->smp, t);
    if (rc)
        return dsv3__seterr(io->err, rc, "generate: sampler: %s", dsv3_sampler_errmsg(g->smp));
    g->tok[0] = t;
    g->n_tok = 1;
    g->committed = false;
    return DSV3_OK;
}

/* ---- emitting tokens ------------------------------------------------------ */

/* Hand one token to the text assembly and the callback. last: the
 * generation ends with this token whatever the callback says (its stop
 * reason is already in g->res). Returns DSV3_OK or an error; sets
 * g->res.stop_reason when the generation stops here. */
static int emit(gen *g, int32_t token, bool last)
{
    const dsv3__gen_io *io = g->io;
    const char *bytes = "";
    size_t n = 0;
    if (io->token_bytes(io->self, token, &bytes, &n) != DSV3_OK) {
        bytes = "";
        n = 0;
    }
    bool special = io->is_special(io->self, token) != 0, stopped;
    const char *text;
    size_t len;
    if (dsv3__textout_push(&g->text, bytes, n, special, last, &text, &len, &stopped))
        return dsv3__seterr(io->err, DSV3_E_NOMEM, "generate: out of memory");
    if (stopped)
        g->res.stop_reason = DSV3_STOP_STRING;
    uint32_t index = g->res.n_generated++;
    if (!g->cb)
        return DSV3_OK;
    dsv3_token_event ev;
    memset(&ev, 0, sizeof ev);
    ev.struct_size = sizeof ev;
    ev.token = token;
    ev.index = index;
    ev.text = text;
    ev.text_len = len;
    double t0 = dsv3__now();
    int stop = g->cb(&ev, g->user_data);
    g->cb_seconds += dsv3__now() - t0;
    if (stop && g->res.stop_reason == DSV3_STOP_NONE)
        g->res.stop_reason = DSV3_STOP_CALLBACK;
    return DSV3_OK;
}

/* Emit the tokens of a step; returns how many were emitted (all unless the
 * generation stopped in their middle) through *n_emitted. */
static int emit_step(gen *g, uint32_t past, uint32_t *n_emitted)
{
    const dsv3__gen_io *io = g->io;
    uint32_t past_after = g->committed ? past : past + g->n_tok;
    bool ignore_eos = g->p.flags & DSV3_GENERATE_IGNORE_EOS;
    uint32_t i = 0;
    int rc = DSV3_OK;
    while (i < g->n_tok && g->res.stop_reason == DSV3_STOP_NONE) {
        int32_t t = g->tok[i];
        int32_t why = DSV3_STOP_NONE;
        if (t == io->eos && io->eos >= 0 && !ignore_eos)
            why = DSV3_STOP_EOS;
        else if (g->p.max_tokens > 0 && g->res.n_generated + 1 >= (uint32_t)g->p.max_tokens)
            why = DSV3_STOP_MAX_TOKENS;
        else if (i + 1 == g->n_tok && past_after >= io->n_ctx)
            why = DSV3_STOP_CTX_FULL;
        g->res.stop_reason = why;
        rc = emit(g, t, why != DSV3_STOP_NONE);
        i++;
        if (rc)
            break;
    }
    *n_emitted = i;
    return rc;
}

/* ---- the loop ------------------------------------------------------------- */

static int eval_prompt(gen *g, const int32_t *prompt, size_t n_prompt)
{
    const dsv3__gen_io *io = g->io;
    if (n_prompt == 0) {
        if (!io->logits(io->self))
            return dsv3__seterr(io->err, DSV3_E_INVAL, "generate: no prompt and nothing "
                                "evaluated before to continue from");
        return DSV3_OK;
    }
    double t0 = dsv3__now();
    int rc = io->decode(io->self, prompt, n_prompt);
    g->res.prompt_seconds = dsv3__now() - t0;
    if (rc)
        return rc;
    g->res.n_prompt = (uint32_t)n_prompt;
    /* the prompt counts for the repetition penalties */
    for (size_t i = 0; i < n_prompt; i++)
        if ((rc = dsv3_sampler_accept(g->smp, prompt[i])))
            return dsv3__seterr(io->err, rc, "generate: sampler: %s",
                                dsv3_sampler_errmsg(g->smp));
    return DSV3_OK;
}

static int gen_loop(gen *g)
{
    const dsv3__gen_io *io = g->io;
    for (;;) {
        if (io->canceled(io->self))
            return dsv3__seterr(io->err, DSV3_E_CANCELED, "generate: canceled");
        uint32_t past = io->n_past(io->self);
        if (past >= io->n_ctx) {
            g->res.stop_reason = DSV3_STOP_CTX_FULL;
            return DSV3_OK;
        }
        int rc = step_single(g);
        uint32_t n_emitted = 0;
        if (!rc)
            rc = emit_step(g, past, &n_emitted);
        if (!rc && !g->committed)
            rc = io->decode(io->self, g->tok, n_emitted);
        if (rc)
            return rc;
        if (g->res.stop_reason != DSV3_STOP_NONE)
            return DSV3_OK;
    }
}

static int read_params(gen *g, const dsv3_generate_params *params)
{
    dsv3__err *err = g->io->err;
    g->p = generate_defaults;
    if (params) {
        int rc = dsv3__params_copy(&g->p, sizeof g->p, params, sizeof(dsv3_generate_params));
        if (rc)
            return dsv3__seterr(err, rc, "generate: params struct_size %u is not supported",
                                (unsigned)params->struct_size);
    }
    uint32_t known = DSV3_GENERATE_IGNORE_EOS | DSV3_GENERATE_SHOW_SPECIAL;
    if (g->p.flags & ~known)
        return dsv3__seterr(err, DSV3_E_INVAL, "generate: unknown flags 0x%x",
                            (unsigned)(g->p.flags & ~known));
    if (g->p.max_tokens < 0)
        return dsv3__seterr(err, DSV3_E_INVAL, "generate: max_tokens %d is negative",
                            (int)g->p.max_tokens);
    return DSV3_OK;
}

static void put_result(dsv3_generate_result *result, const dsv3_generate_result *res)
{
    if (!result)
        return;
    uint32_t size = result->struct_size;
    memcpy(result, res, DSV3__MIN((size_t)size, sizeof *res));
    result->struct_size = size;
}

int dsv3__generate_run(const dsv3__gen_io *io, dsv3_sampler *smp, const int32_t *prompt,
                       size_t n_prompt, const dsv3_generate_params *params, dsv3_token_fn cb,
                       void *user_data, dsv3_generate_result *result)
{
    gen g;
    memset(&g, 0, sizeof g);
    g.io = io;
    g.smp = smp;
    g.cb = cb;
    g.user_data = user_data;
    g.res.struct_size = sizeof g.res;
    int rc = DSV3_OK;
    if (result && result->struct_size < sizeof(dsv3_generate_result))
        return dsv3__seterr(io->err, DSV3_E_INVAL, "generate: result struct_size %u is too "
                            "small", (unsigned)result->struct_size);
    if ((rc = dsv3__sampler_check(smp)))
        dsv3__seterr(io->err, rc, "generate: %s sampler", smp ? "failed or freed" : "no");
    else if (!prompt && n_prompt)
        rc = dsv3__seterr(io->err, DSV3_E_INVAL, "generate: prompt is NULL");
    else if (!(rc = read_params(&g, params)))
        rc = dsv3__textout_init(&g.text, io->alloc, g.p.stop, g.p.n_stop,
                                g.p.flags & DSV3_GENERATE_SHOW_SPECIAL, io->err);
    if (!rc)
        rc = eval_prompt(&g, prompt, n_prompt);
    if (!rc) {
        double t0 = dsv3__now();
        rc = gen_loop(&g);
        g.res.generate_seconds = dsv3__now() - t0 - g.cb_seconds;
    }
    dsv3__textout_free(&g.text);
    if (rc == DSV3_E_CANCELED)
        g.res.stop_reason = DSV3_STOP_CANCELED;
    else if (rc == DSV3_E_CTX_FULL && g.res.n_generated > 0) {
        g.res.stop_reason = DSV3_STOP_CTX_FULL; /* the context ran out under the loop */
        rc = DSV3_OK;
    } else if (rc)
        g.res.stop_reason = DSV3_STOP_ERROR;
    put_result(result, &g.res);
    return rc;
}

/* ---- dsv3_generate on a context ------------------------------------------ */

static int ctx_decode(void *self, const int32_t *tokens, size_t n)
{
    return dsv3__context_decode(self, tokens, n, 0);
}

static const float *ctx_logits(void *self)
{
    return dsv3__context_last_logits(self);
}

static uint32_t ctx_n_past(void *self)
{
    return dsv3_context_n_past(self);
}

static int ctx_canceled(void *self)
{
    return dsv3__context_cancel_requested(self);
}

static int ctx_token_bytes(void *self, int32_t token, const char **bytes, size_t *len)
{
    return dsv3_token_bytes(dsv3__context_model(self), token, bytes, len);
}

/* Tokens the tokenizer flags special (BOS, EOS, pad, ...: those that
 * DSV3_DETOKENIZE_SKIP_SPECIAL drops); without a tokenizer, BOS and EOS. */
static int ctx_is_special(void *self, int32_t token)
{
    const dsv3_model *m = dsv3__context_model(self);
    if (m->tok)
        return (dsv3__tokenizer_attr(m->tok, token) & DSV3__TOK_SPECIAL) != 0;
    return token >= 0 && (token == m->hp.bos_token || token == m->hp.eos_token);
}

/* The generation on a context whose claim the caller holds. */
int dsv3__generate_claimed(dsv3_context *ctx, dsv3_sampler *smp, const int32_t *prompt,
                           size_t n_prompt, const dsv3_generate_params *params,
                           dsv3_token_fn cb, void *user_data, dsv3_generate_result *result)
{
    dsv3_model *m = dsv3__context_model(ctx);
    dsv3__gen_io io = {
        .self = ctx,
        .decode = ctx_decode,
        .logits = ctx_logits,
        .n_past = ctx_n_past,
        .canceled = ctx_canceled,
        .token_bytes = ctx_token_bytes,
        .is_special = ctx_is_special,
        .n_ctx = dsv3__context_n_ctx(ctx),
        .n_vocab = (size_t)m->hp.vocab_size,
        .eos = m->hp.eos_token,
        .alloc = &m->alloc,
        .err = dsv3__context_err(ctx),
    };
    return dsv3__generate_run(&io, smp, prompt, n_prompt, params, cb, user_data, result);
}

int dsv3_generate(dsv3_context *ctx, dsv3_sampler *smp, const int32_t *prompt, size_t n_prompt,
                  const dsv3_generate_params *params, dsv3_token_fn cb, void *user_data,
                  dsv3_generate_result *result)
{
    int rc = dsv3__context_check(ctx);
    if (!rc)
        rc = dsv3__context_begin(ctx);
    if (rc) {
        dsv3_generate_result res = {.struct_size = sizeof res, .stop_reason = DSV3_STOP_ERROR};
        if (result && result->struct_size >= sizeof res)
            put_result(result, &res);
        return rc;
    }
    rc = dsv3__generate_claimed(ctx, smp, prompt, n_prompt, params, cb, user_data, result);
    dsv3__context_end(ctx);
    return rc;
}
