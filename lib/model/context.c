/*
 * context.c - the context handle (one sequence: latent KV caches, scratch,
 * position, last logits) and its public entry points.
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "model.h"

#define CTX_PARAMS_MIN_SIZE sizeof(dsv3_context_params) /* first published version */
#define DEFAULT_N_CTX 4096u
#define DEFAULT_N_BATCH 256u
#define MAX_N_BATCH 65536u
#define MAX_THREADS 1024

static const dsv3_context_params context_defaults = {
    .struct_size = sizeof(dsv3_context_params),
};

int dsv3_context_params_init(dsv3_context_params *p, size_t size)
{
    return dsv3__params_init(p, size, &context_defaults, sizeof context_defaults,
                             CTX_PARAMS_MIN_SIZE);
}

/* ---- entering and leaving calls ------------------------------------------- */

/* Validate the handle and mark it busy. Messages of E_BUSY are not stored:
 * the running call owns the handle and its message buffer. */
static int ctx_enter(dsv3_context *ctx)
{
    if (!ctx)
        return DSV3_E_INVAL;
    if (ctx->magic == DSV3__MAGIC_FAILED)
        return dsv3__seterr(&ctx->err, DSV3_E_MISUSE, "this context failed to be created");
    if (ctx->magic != DSV3__MAGIC_CONTEXT)
        return DSV3_E_MISUSE;
    if (atomic_exchange_explicit(&ctx->busy, 1, memory_order_acquire))
        return DSV3_E_BUSY;
    dsv3__clearerr(&ctx->err);
    /* a cancel that arrived while nothing ran is forgotten */
    atomic_store_explicit(&ctx->cancel, 0, memory_order_relaxed);
    return DSV3_OK;
}

static int ctx_leave(dsv3_context *ctx, int rc)
{
    atomic_store_explicit(&ctx->busy, 0, memory_order_release);
    return rc;
}

/* The backend instance this context computes on. */
static const dsv3_backend *ctx_backend(const dsv3_context *ctx)
{
    return ctx->be_own.ops ? &ctx->be_own : &ctx->model->be;
}

/* Wait for the context's queued work (a no-op on backends that do not
 * queue); an earlier error rc is kept. */
static int ctx_sync(dsv3_context *ctx, int rc)
{
    const dsv3_backend *be = ctx_backend(ctx);
    if (!be->ops->sync)
        return rc;
    int src = be->ops->sync(be->state);
    if (src && !rc)
        rc = dsv3__seterr(&ctx->err, DSV3_E_BACKEND, "backend %s: %s", be->ops->name,
                          dsv3_strerror(src));
    return rc;
}

static void fwd_setup(dsv3_context *ctx, dsv3__fwd *f)
{
    const dsv3_hparams *hp = &ctx->model->hp;
    *f = (dsv3__fwd){
        .m = ctx->model,
        .be = ctx_backend(ctx),
        .err = &ctx->err,
        .s = &ctx->s,
        .cancel = &ctx->cancel,
        .n_threads = ctx->n_threads,
        .naive = (ctx->params.flags & DSV3_CONTEXT_NAIVE_ATTN) != 0,
        .kv_dtype = ctx->kv_dtype,
        .ld_cache = hp->kv_lora_rank + hp->qk_rope_dim,
    };
}

static size_t kv_elem_size(int32_t dtype)
{
    return dtype == DSV3_DTYPE_BF16 ? 2 : 4;
}

/* ---- create / free ------------------------------------------------------------ */

static int resolve_params(dsv3_context *ctx, const dsv3_model *m, dsv3_context_params *p)
{
    uint32_t known = DSV3_CONTEXT_MTP | DSV3_CONTEXT_NAIVE_ATTN;
    uint32_t max_pos = m->hp.max_position > 0 ? (uint32_t)m->hp.max_position : UINT32_MAX;
    if (p->flags & ~known)
        return dsv3__seterr(&ctx->err, DSV3_E_INVAL, "unknown context flags 0x%x",
                            p->flags & ~known);
    if (p->n_ctx == 0)
        p->n_ctx = DSV3__MIN(DEFAULT_N_CTX, max_pos);
    if (p->n_ctx > max_pos)
        return dsv3__seterr(&ctx->err, DSV3_E_INVAL,
                            "n_ctx %u exceeds the model's max_position_embeddings %u", p->n_ctx,
                            max_pos);
    if (p->n_threads < 0 || p->n_threads > MAX_THREADS)
        return dsv3__seterr(&ctx->err, DSV3_E_INVAL, "n_threads %d outside 0 ... %d",
                            (int)p->n_threads, MAX_THREADS);
    if (p->n_batch == 0)
        p->n_batch = DEFAULT_N_BATCH;
    if (p->n_batch > MAX_N_BATCH)
        return dsv3__seterr(&ctx->err, DSV3_E_INVAL, "n_batch %u exceeds %u", p->n_batch,
                            MAX_N_BATCH);
    p->n_batch = DSV3__MIN(p->n_batch, p->n_ctx);
    if (p->kv_dtype == DSV3_DTYPE_DEFAULT)
        p->kv_dtype = DSV3_DTYPE_F32;
    if (p->kv_dtype != DSV3_DTYPE_F32 && p->kv_dtype != DSV3_DTYPE_BF16)
        return dsv3__seterr(&ctx->err, DSV3_E_UNSUPPORTED,
                            "kv_dtype %d is not supported (F32 or BF16)", (int)p->kv_dtype);
    if ((p->flags & DSV3_CONTEXT_MTP) && m->w.n_layers <= m->hp.n_layers)
        return dsv3__seterr(&ctx->err, DSV3_E_UNSUPPORTED, "the model has no MTP module loaded");
    return DSV3_OK;
}

/* The MTP module's cache and the hidden-state rows it reads. */
static int alloc_mtp_cache(dsv3_context *ctx)
{
    const dsv3_backend *be = &ctx->model->be;
    if (ctx->kv_mtp)
        return DSV3_OK;
    size_t hid = (size_t)ctx->n_ctx * (size_t)ctx->model->hp.hidden_size * sizeof(float);
    int rc = be->ops->buf_alloc(be->state, ctx->kv_layer_bytes, DSV3_BUF_KV, &ctx->kv_mtp);
    if (!rc && (rc = be->ops->buf_alloc(be->state, hid, DSV3_BUF_KV, &ctx->hid))) {
        be->ops->buf_free(be->state, ctx->kv_mtp);
        ctx->kv_mtp = NULL;
    }
    if (rc)
        return dsv3__seterr(&ctx->err, rc, "cannot allocate the MTP cache (%zu bytes)",
                            ctx->kv_layer_bytes + hid);
    return DSV3_OK;
}

static int ctx_build(dsv3_context *ctx)
{
    dsv3_model *m = ctx->model;
    const dsv3_hparams *hp = &m->hp;
    if (m->be.caps.flags & DSV3_CAP_ASYNC) { /* its own queue (stream) */
        dsv3_backend_config cfg = {.struct_size = sizeof cfg, .device = m->params.device,
                                   .n_threads = ctx->n_threads, .alloc = &m->alloc,
                                   .log = &m->log};
        int rc = dsv3__backend_open_like(&m->be, &cfg, &ctx->be_own, &ctx->err);
        if (rc)
            return rc;
    }
    size_t row = (size_t)(hp->kv_lora_rank + hp->qk_rope_dim);
    ctx->kv_layer_bytes = (size_t)ctx->n_ctx * row * kv_elem_size(ctx->kv_dtype);
    size_t total;
    if (!dsv3__mul_size(ctx->kv_layer_bytes, (size_t)hp->n_layers, &total))
        return dsv3__seterr(&ctx->err, DSV3_E_NOMEM, "cache size overflows");
    int rc = m->be.ops->buf_alloc(m->be.state, total, DSV3_BUF_KV, &ctx->kv);
    if (rc)
        return dsv3__seterr(&ctx->err, rc, "cannot allocate the KV cache (%zu bytes)", total);
    if (ctx->mtp_on && (rc = alloc_mtp_cache(ctx)))
        return rc;
    rc = dsv3__fwd_scratch_init(m, ctx->n_batch, (ctx->params.flags & DSV3_CONTEXT_NAIVE_ATTN) != 0,
                                ctx->n_ctx, &ctx->s);
    if (rc)
        return dsv3__seterr(&ctx->err, rc, "cannot allocate scratch memory");
    ctx->logits = dsv3__malloc(&ctx->alloc, (size_t)hp->vocab_size * sizeof(float));
    if (!ctx->logits)
        return dsv3__seterr(&ctx->err, DSV3_E_NOMEM, "out of memory");
    ctx->cap_logits = 1;
    return DSV3_OK;
}

static void ctx_release(dsv3_context *ctx)
{
    dsv3_model *m = ctx->model;
    if (!m)
        return;
    const dsv3_backend *be = &m->be;
    if (ctx->be_own.ops) {
        ctx_sync(ctx, DSV3_OK);
        dsv3__backend_close(&ctx->be_own);
    }
    if (ctx->kv)
        be->ops->buf_free(be->state, ctx->kv);
    if (ctx->kv_mtp)
        be->ops->buf_free(be->state, ctx->kv_mtp);
    if (ctx->hid)
        be->ops->buf_free(be->state, ctx->hid);
    dsv3__fwd_scratch_free(m, &ctx->s);
    dsv3__free(&ctx->alloc, ctx->logits);
    dsv3__free(&ctx->alloc, ctx->mtp_logits);
    ctx->kv = ctx->kv_mtp = ctx->hid = NULL;
    ctx->logits = ctx->mtp_logits = NULL;
    ctx->model = NULL;
    dsv3__model_unref(m);
}

int dsv3_context_new(dsv3_model *model, const dsv3_context_params *params, dsv3_context **out)
{
    if (!out)
        return DSV3_E_INVAL;
    *out = NULL;
    int mrc = dsv3__model_check(model);
    dsv3__alloc a;
    if (model && (mrc == DSV3_OK || model->magic == DSV3__MAGIC_FAILED))
        a = model->alloc;
    else
        dsv3__alloc_init(&a, NULL);
    dsv3_context *ctx = dsv3__calloc(&a, 1, sizeof *ctx);
    if (!ctx)
        return DSV3_E_NOMEM;
    ctx->magic = DSV3__MAGIC_FAILED;
    ctx->alloc = a;
    atomic_init(&ctx->busy, 0);
    atomic_init(&ctx->cancel, 0);
    *out = ctx;
    if (mrc)
        return dsv3__seterr(&ctx->err, mrc, "%s",
                            model ? "the model handle is not usable (failed or freed)"
                                  : "model is NULL");
    if (!model->fwd)
        return dsv3__seterr(&ctx->err, DSV3_E_MISUSE, "the model was not prepared for inference");
    dsv3_context_params p;
    dsv3_context_params_init(&p, sizeof p);
    int rc = params ? dsv3__params_copy(&p, sizeof p, params, CTX_PARAMS_MIN_SIZE) : DSV3_OK;
    if (rc)
        return dsv3__seterr(&ctx->err, rc, "invalid context params (struct_size %u)",
                            params->struct_size);
    if ((rc = resolve_params(ctx, model, &p)))
        return rc;
    ctx->params = p;
    ctx->n_ctx = p.n_ctx;
    ctx->n_batch = p.n_batch;
    ctx->n_threads = dsv3__resolve_threads(p.n_threads);
    ctx->kv_dtype = p.kv_dtype;
    ctx->mtp_on = (p.flags & DSV3_CONTEXT_MTP) != 0;
    dsv3__model_ref(model);
    ctx->model = model;
    if ((rc = ctx_build(ctx))) {
        ctx_release(ctx);
        return rc;
    }
    ctx->magic = DSV3__MAGIC_CONTEXT;
    return DSV3_OK;
}

void dsv3_context_free(dsv3_context *ctx)
{
    if (!ctx || (ctx->magic != DSV3__MAGIC_CONTEXT && ctx->magic != DSV3__MAGIC_FAILED))
        return;
    ctx_release(ctx);
    dsv3__alloc a = ctx->alloc;
    ctx->magic = DSV3__MAGIC_DEAD;
    dsv3__free(&a, ctx);
}

const char *dsv3_context_errmsg(const dsv3_context *ctx)
{
    if (!ctx)
        return "no context (NULL handle)";
    if (ctx->magic != DSV3__MAGIC_CONTEXT && ctx->magic != DSV3__MAGIC_FAILED)
        return "not a context handle (freed or corrupt)";
    return ctx->err.msg;
}

/* ---- decode ------------------------------------------------------------------- */

/* Make room for rows of logits in a host array. */
static int grow_rows(dsv3_context *ctx, float **p, uint32_t *cap, size_t rows)
{
    if (rows <= *cap)
        return DSV3_OK;
    size_t bytes;
    if (!dsv3__mul_size(rows, (size_t)ctx->model->hp.vocab_size * sizeof(float), &bytes))
        return dsv3__seterr(&ctx->err, DSV3_E_NOMEM, "logits buffer size overflows");
    float *n = dsv3__realloc(&ctx->alloc, *p, bytes);
    if (!n)
        return dsv3__seterr(&ctx->err, DSV3_E_NOMEM, "out of memory for %zu rows of logits",
                            rows);
    *p = n;
    *cap = (uint32_t)rows;
    return DSV3_OK;
}

static int check_tokens(dsv3_context *ctx, const int32_t *tokens, size_t n)
{
    int32_t V = ctx->model->hp.vocab_size;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return dsv3__seterr(&ctx->err, DSV3_E_RANGE,
                                "token %d (index %zu) is outside the vocabulary (0 ... %d)",
                                (int)tokens[i], i, (int)V - 1);
    return DSV3_OK;
}

static int decode_run(dsv3_context *ctx, const int32_t *tokens, size_t n, uint32_t flags)
{
    int all = (flags & DSV3_DECODE_ALL_LOGITS) != 0;
    int rc = grow_rows(ctx, &ctx->logits, &ctx->cap_logits, all ? n : 1);
    if (rc)
        return rc;
    dsv3__fwd f;
    fwd_setup(ctx, &f);
    size_t V = (size_t)ctx->model->hp.vocab_size, d = (size_t)ctx->model->hp.hidden_size;
    ctx->n_logits = 0; /* the old logits are overwritten */
    for (size_t off = 0; off < n; off += ctx->n_batch) {
        int64_t T = (int64_t)DSV3__MIN((size_t)ctx->n_batch, n - off);
        int last = off + (size_t)T == n;
        int64_t r0 = all ? 0 : T - 1, n_out = all ? T : last ? 1 : 0;
        float *out = all ? ctx->logits + off * V : ctx->logits;
        float *hid = ctx->mtp_on ? (float *)ctx->hid->base + (ctx->n_past + off) * d : NULL;
        rc = dsv3__fwd_main(&f, ctx->kv->base, ctx->kv_layer_bytes, tokens + off, T,
                            (int64_t)(ctx->n_past + off), hid, r0, n_out, out);
        if (rc)
            return ctx_sync(ctx, rc);
    }
    if ((rc = ctx_sync(ctx, DSV3_OK)))
        return rc;
    ctx->n_logits = all ? (uint32_t)n : 1;
    ctx->logits_row0 = all ? 0 : (uint32_t)n - 1;
    ctx->logits_pos0 = ctx->n_past + ctx->logits_row0;
    ctx->n_past += (uint32_t)n;
    return DSV3_OK;
}

int dsv3__context_decode(dsv3_context *ctx, const int32_t *tokens, size_t n_tokens,
                         uint32_t flags)
{
    int rc = DSV3_OK;
    if (!tokens || n_tokens == 0)
        rc = dsv3__seterr(&ctx->err, DSV3_E_INVAL, "decode: %s",
                          tokens ? "no tokens" : "tokens is NULL");
    else if (flags & ~(uint32_t)DSV3_DECODE_ALL_LOGITS)
        rc = dsv3__seterr(&ctx->err, DSV3_E_INVAL, "decode: unknown flags 0x%x", flags);
    else if (!(rc = check_tokens(ctx, tokens, n_tokens)) &&
             n_tokens > (size_t)(ctx->n_ctx - ctx->n_past))
        rc = dsv3__seterr(&ctx->err, DSV3_E_CTX_FULL,
                          "%zu tokens do not fit: %u of %u positions are used", n_tokens,
                          ctx->n_past, ctx->n_ctx);
    else if (!rc && dsv3__context_cancel_requested(ctx))
        rc = dsv3__seterr(&ctx->err, DSV3_E_CANCELED, "canceled");
    if (!rc)
        rc = decode_run(ctx, tokens, n_tokens, flags);
    return rc;
}

int dsv3_context_decode(dsv3_context *ctx, const int32_t *tokens, size_t n_tokens, uint32_t flags)
{
    int rc = ctx_enter(ctx);
    if (rc)
        return rc;
    return ctx_leave(ctx, dsv3__context_decode(ctx, tokens, n_tokens, flags));
}

static int logits_row(dsv3_context *ctx, int32_t row, uint32_t n, uint32_t row0,
                      const float *base, const float **out)
{
    if (n == 0)
        return dsv3__seterr(&ctx->err, DSV3_E_MISUSE, "no logits: nothing was evaluated");
    uint32_t i;
    if (row == -1)
        i = n - 1;
    else if (row >= 0 && (uint32_t)row >= row0 && (uint32_t)row - row0 < n)
        i = (uint32_t)row - row0;
    else
        return dsv3__seterr(&ctx->err, DSV3_E_RANGE, "no logits kept for row %d", (int)row);
    *out = base + (size_t)i * (size_t)ctx->model->hp.vocab_size;
    return DSV3_OK;
}

int dsv3_context_logits(dsv3_context *ctx, int32_t row, const float **logits)
{
    int rc = ctx_enter(ctx);
    if (rc)
        return rc;
    if (!logits)
        rc = dsv3__seterr(&ctx->err, DSV3_E_INVAL, "logits: output pointer is NULL");
    else
        rc = logits_row(ctx, row, ctx->n_logits, ctx->logits_row0, ctx->logits, logits);
    return ctx_leave(ctx, rc);
}

uint32_t dsv3_context_n_past(const dsv3_context *ctx)
{
    return ctx && ctx->magic == DSV3__MAGIC_CONTEXT ? ctx->n_past : 0;
}

/* ---- MTP ------------------------------------------------------------------------ */

static int mtp_run(dsv3_context *ctx, const int32_t *next, size_t n, uint32_t flags)
{
    uint32_t i0 = ctx->mtp_n_past;
    if (!ctx->mtp_on || !ctx->kv_mtp)
        return dsv3__seterr(&ctx->err, DSV3_E_MISUSE, "MTP is off on this context");
    if (i0 < ctx->hid_from || (size_t)i0 + n > ctx->n_past)
        return dsv3__seterr(&ctx->err, DSV3_E_MISUSE,
                            "MTP positions %u ... %zu need hidden states of positions "
                            "%u ... %u", i0, i0 + n - 1, ctx->hid_from, ctx->n_past);
    int all = (flags & DSV3_DECODE_ALL_LOGITS) != 0;
    int rc = grow_rows(ctx, &ctx->mtp_logits, &ctx->cap_mtp_logits, all ? n : 1);
    if (rc)
        return rc;
    dsv3__fwd f;
    fwd_setup(ctx, &f);
    size_t V = (size_t)ctx->model->hp.vocab_size, d = (size_t)ctx->model->hp.hidden_size;
    ctx->n_mtp_logits = 0;
    for (size_t off = 0; off < n; off += ctx->n_batch) {
        int64_t T = (int64_t)DSV3__MIN((size_t)ctx->n_batch, n - off);
        int last = off + (size_t)T == n;
        int64_t r0 = all ? 0 : T - 1, n_out = all ? T : last ? 1 : 0;
        const float *hid = (const float *)ctx->hid->base + (i0 + off) * d;
        rc = dsv3__mtp_forward(&f, ctx->kv_mtp->base, hid, next + off, T, (int64_t)(i0 + off),
                               r0, n_out, all ? ctx->mtp_logits + off * V : ctx->mtp_logits);
        if (rc)
            return ctx_sync(ctx, rc);
    }
    if ((rc = ctx_sync(ctx, DSV3_OK)))
        return rc;
    ctx->n_mtp_logits = all ? (uint32_t)n : 1;
    ctx->mtp_logits_row0 = all ? 0 : (uint32_t)n - 1;
    ctx->mtp_logits_pos0 = i0 + ctx->mtp_logits_row0;
    ctx->mtp_n_past = i0 + (uint32_t)n;
    return DSV3_OK;
}

int dsv3__context_mtp_eval(dsv3_context *ctx, const int32_t *next_tokens, size_t n,
                           uint32_t flags)
{
    int rc = ctx_enter(ctx);
    if (rc)
        return rc;
    if (!next_tokens || n == 0)
        rc = dsv3__seterr(&ctx->err, DSV3_E_INVAL, "MTP: no tokens");
    else if (!(rc = check_tokens(ctx, next_tokens, n)))
        rc = mtp_run(ctx, next_tokens, n, flags);
    return ctx_leave(ctx, rc);
}

int dsv3__context_mtp_logits(dsv3_context *ctx, int32_t row, const float **logits)
{
    int rc = ctx_enter(ctx);
    if (rc)
        return rc;
    if (!logits)
        rc = dsv3__seterr(&ctx->err, DSV3_E_INVAL, "MTP logits: output pointer is NULL");
    else
        rc = logits_row(ctx, row, ctx->n_mtp_logits, ctx->mtp_logits_row0, ctx->mtp_logits,
                        logits);
    return ctx_leave(ctx, rc);
}

/* ---- rollback ----------------------------------------------------------------- */

/* Rows at positions pos0 ... pos0 + *n - 1 that survive keeping positions
 * below keep. */
static void keep_rows(uint32_t *n, uint32_t pos0, uint32_t keep)
{
    uint32_t room = keep > pos0 ? keep - pos0 : 0;
    if (*n > room)
        *n = room;
}

int dsv3_context_truncate(dsv3_context *ctx, uint32_t n_keep)
{
    int rc = ctx_enter(ctx);
    if (rc)
        return rc;
    if (n_keep > ctx->n_past)
        return ctx_leave(ctx, dsv3__seterr(&ctx->err, DSV3_E_RANGE,
                                           "cannot keep %u positions: only %u are cached",
                                           n_keep, ctx->n_past));
    if (n_keep < ctx->n_past) {
        /* MTP entry i used the token at position i + 1: it survives only if
         * that token does. */
        uint32_t mtp_keep = n_keep > 0 ? n_keep - 1 : 0;
        if (ctx->mtp_n_past > mtp_keep)
            ctx->mtp_n_past = mtp_keep;
        ctx->n_past = n_keep;
        if (ctx->hid_from > n_keep)
            ctx->hid_from = n_keep;
        keep_rows(&ctx->n_logits, ctx->logits_pos0, n_keep);
        keep_rows(&ctx->n_mtp_logits, ctx->mtp_logits_pos0, ctx->mtp_n_past);
    }
    return ctx_leave(ctx, DSV3_OK);
}

int dsv3_context_clear(dsv3_context *ctx)
{
    int rc = ctx_enter(ctx);
    if (rc)
        return rc;
    ctx->n_past = ctx->mtp_n_past = 0;
    ctx->n_logits = ctx->n_mtp_logits = 0;
    ctx->hid_from = 0;
    ctx->n_drafted = ctx->n_accepted = 0;
    return ctx_leave(ctx, DSV3_OK);
}

void dsv3_context_cancel(dsv3_context *ctx)
{
    if (ctx && ctx->magic == DSV3__MAGIC_CONTEXT)
        atomic_store_explicit(&ctx->cancel, 1, memory_order_relaxed);
}

/* ---- knobs ------------------------------------------------------------------------ */

int dsv3_context_param_bounds(int32_t key, int64_t *min, int64_t *max)
{
    if (!min || !max)
        return DSV3_E_INVAL;
    switch (key) {
    case DSV3_CTX_PARAM_N_THREADS:
        *min = 1;
        *max = MAX_THREADS;
        return DSV3_OK;
    case DSV3_CTX_PARAM_MTP:
        *min = 0;
        *max = 1;
        return DSV3_OK;
    default:
        return DSV3_E_INVAL;
    }
}

int dsv3_context_set_param(dsv3_context *ctx, int32_t key, int64_t value)
{
    int rc = ctx_enter(ctx);
    if (rc)
        return rc;
    int64_t lo, hi;
    if (dsv3_context_param_bounds(key, &lo, &hi))
        rc = dsv3__seterr(&ctx->err, DSV3_E_INVAL, "context parameter %d is unknown or read-only",
                          (int)key);
    else if (value < lo || value > hi)
        rc = dsv3__seterr(&ctx->err, DSV3_E_RANGE, "value %lld outside %lld ... %lld",
                          (long long)value, (long long)lo, (long long)hi);
    else if (key == DSV3_CTX_PARAM_N_THREADS)
        ctx->n_threads = (int32_t)value;
    else if (value && ctx->model->w.n_layers <= ctx->model->hp.n_layers)
        rc = dsv3__seterr(&ctx->err, DSV3_E_UNSUPPORTED, "the model has no MTP module loaded");
    else if (!value || !(rc = alloc_mtp_cache(ctx))) {
        if (value && !ctx->mtp_on)
            ctx->hid_from = ctx->n_past; /* hidden states are kept only while on */
        ctx->mtp_on = (int32_t)value;
    }
    return ctx_leave(ctx, rc);
}

int dsv3_context_get_param(const dsv3_context *ctx, int32_t key, int64_t *value)
{
    if (!ctx || !value)
        return DSV3_E_INVAL;
    if (ctx->magic != DSV3__MAGIC_CONTEXT)
        return DSV3_E_MISUSE;
    switch (key) {
    case DSV3_CTX_PARAM_N_THREADS:
        *value = ctx->n_threads;
        return DSV3_OK;
    case DSV3_CTX_PARAM_MTP:
        *value = ctx->mtp_on;
        return DSV3_OK;
    case DSV3_CTX_PARAM_N_CTX:
        *value = ctx->n_ctx;
        return DSV3_OK;
    case DSV3_CTX_PARAM_N_PAST:
        *value = ctx->n_past;
        return DSV3_OK;
    case DSV3_CTX_PARAM_MTP_DRAFTED:
        *value = (int64_t)ctx->n_drafted;
        return DSV3_OK;
    case DSV3_CTX_PARAM_MTP_ACCEPTED:
        *value = (int64_t)ctx->n_accepted;
        return DSV3_OK;
    default:
        return DSV3_E_INVAL;
    }
}

/* ---- services to dsv3_generate (model.h) ------------------------------------ */

int dsv3__context_check(const dsv3_context *ctx)
{
    if (!ctx)
        return DSV3_E_INVAL;
    return ctx->magic == DSV3__MAGIC_CONTEXT ? DSV3_OK : DSV3_E_MISUSE;
}

int dsv3__context_begin(dsv3_context *ctx)
{
    return ctx_enter(ctx);
}

void dsv3__context_end(dsv3_context *ctx)
{
    ctx_leave(ctx, DSV3_OK);
}

const float *dsv3__context_last_logits(dsv3_context *ctx)
{
    if (!ctx->n_logits)
        return NULL;
    return ctx->logits + (size_t)(ctx->n_logits - 1) * (size_t)ctx->model->hp.vocab_size;
}

int dsv3__context_cancel_requested(const dsv3_context *ctx)
{
    return atomic_load_explicit(&ctx->cancel, memory_order_relaxed);
}

dsv3_model *dsv3__context_model(const dsv3_context *ctx)
{
    return ctx->model;
}

uint32_t dsv3__context_n_ctx(const dsv3_context *ctx)
{
    return ctx->n_ctx;
}

dsv3__err *dsv3__context_err(dsv3_context *ctx)
{
    return &ctx->err;
}

/* ---- internal access for lib/async --------------------------------------------- */

const dsv3__alloc *dsv3__context_allocator(const dsv3_context *ctx)
{
    return ctx && ctx->magic == DSV3__MAGIC_CONTEXT ? &ctx->alloc : NULL;
}

int dsv3__context_async_claim(dsv3_context *ctx)
{
    /* the request holds the call claim for its whole life: other calls on
     * the context fail with DSV3_E_BUSY meanwhile, and a cancel is kept from
     * this moment on, also one that arrives before the worker starts */
    return ctx_enter(ctx);
}

void dsv3__context_async_release(dsv3_context *ctx)
{
    ctx_leave(ctx, DSV3_OK);
}
