/*
 * state.c - saving and restoring a context's sequence state: cache rows of
 * every layer (and of the MTP module), positions, the last logits and the
 * kept hidden states.
 *
 * Layout (host byte order): a state_hdr, then the payload: for each main
 * layer n_past cache rows, then mtp_n_past MTP cache rows, then n_logits
 * logits rows, n_hid hidden rows, n_mtp_logits draft logits rows. The
 * header's checksum is XXH64 of the payload.
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "model.h"

#define STATE_MAGIC "DSV3CTX"
#define STATE_VERSION 1u

typedef struct state_hdr {
    char magic[8];
    uint32_t version;
    uint32_t kv_dtype;
    uint32_t n_layers, vocab, hidden, row;
    uint32_t n_past, mtp_n_past, has_mtp;
    uint32_t n_logits, logits_pos0, logits_row0;
    uint32_t n_hid, hid_pos0;
    uint32_t n_mtp_logits, mtp_logits_pos0, mtp_logits_row0;
    uint32_t reserved;
    uint64_t payload_bytes;
    uint64_t checksum;
} state_hdr;

typedef struct sizes {
    size_t es, row_bytes, layer, mtp, logits, hid, mtp_logits, total;
} sizes;

static void state_sizes(const dsv3_model *m, const state_hdr *h, sizes *z)
{
    const dsv3_hparams *hp = &m->hp;
    size_t V = (size_t)hp->vocab_size * sizeof(float), d = (size_t)hp->hidden_size * sizeof(float);
    z->es = h->kv_dtype == DSV3_DTYPE_BF16 ? 2 : 4;
    z->row_bytes = (size_t)(hp->kv_lora_rank + hp->qk_rope_dim) * z->es;
    z->layer = (size_t)h->n_past * z->row_bytes;
    z->mtp = (size_t)h->mtp_n_past * z->row_bytes;
    z->logits = (size_t)h->n_logits * V;
    z->hid = (size_t)h->n_hid * d;
    z->mtp_logits = (size_t)h->n_mtp_logits * V;
    z->total = z->layer * (size_t)hp->n_layers + z->mtp + z->logits + z->hid + z->mtp_logits;
}

static void fill_hdr(const dsv3_context *ctx, state_hdr *h)
{
    const dsv3_hparams *hp = &ctx->model->hp;
    int mtp = ctx->mtp_on && ctx->kv_mtp;
    memset(h, 0, sizeof *h);
    memcpy(h->magic, STATE_MAGIC, sizeof STATE_MAGIC);
    h->version = STATE_VERSION;
    h->kv_dtype = (uint32_t)ctx->kv_dtype;
    h->n_layers = (uint32_t)hp->n_layers;
    h->vocab = (uint32_t)hp->vocab_size;
    h->hidden = (uint32_t)hp->hidden_size;
    h->row = (uint32_t)(hp->kv_lora_rank + hp->qk_rope_dim);
    h->n_past = ctx->n_past;
    h->n_logits = ctx->n_logits;
    h->logits_pos0 = ctx->logits_pos0;
    h->logits_row0 = ctx->logits_row0;
    h->has_mtp = (uint32_t)mtp;
    if (mtp) {
        h->mtp_n_past = ctx->mtp_n_past;
        h->hid_pos0 = ctx->hid_from < ctx->n_past ? ctx->hid_from : ctx->n_past;
        h->n_hid = ctx->n_past - h->hid_pos0;
        h->n_mtp_logits = ctx->n_mtp_logits;
        h->mtp_logits_pos0 = ctx->mtp_logits_pos0;
        h->mtp_logits_row0 = ctx->mtp_logits_row0;
    }
}

static int save_body(dsv3_context *ctx, const state_hdr *h, const sizes *z, char *p)
{
    const dsv3_backend *be = &ctx->model->be;
    int rc = DSV3_OK;
    for (int32_t l = 0; !rc && l < ctx->model->hp.n_layers; l++, p += z->layer)
        rc = be->ops->buf_read(be->state, ctx->kv, (size_t)l * ctx->kv_layer_bytes, p, z->layer);
    if (!rc && z->mtp)
        rc = be->ops->buf_read(be->state, ctx->kv_mtp, 0, p, z->mtp);
    p += z->mtp;
    memcpy(p, ctx->logits, z->logits);
    p += z->logits;
    if (!rc && z->hid)
        rc = be->ops->buf_read(be->state, ctx->hid, (size_t)h->hid_pos0 * (z->hid / h->n_hid), p,
                               z->hid);
    p += z->hid;
    if (z->mtp_logits)
        memcpy(p, ctx->mtp_logits, z->mtp_logits);
    return rc;
}

int dsv3_context_state_save(dsv3_context *ctx, void *buf, size_t cap, size_t *needed)
{
    if (!ctx || (!buf && (cap || !needed)))
        return DSV3_E_INVAL;
    if (ctx->magic != DSV3__MAGIC_CONTEXT)
        return DSV3_E_MISUSE;
    if (atomic_exchange_explicit(&ctx->busy, 1, memory_order_acquire))
        return DSV3_E_BUSY;
    dsv3__clearerr(&ctx->err);
    state_hdr h;
    sizes z;
    fill_hdr(ctx, &h);
    state_sizes(ctx->model, &h, &z);
    h.payload_bytes = z.total;
    size_t need = sizeof h + z.total;
    if (needed)
        *needed = need;
    int rc = DSV3_OK;
    if (!buf)
        rc = DSV3_OK; /* size query */
    else if (cap < need)
        rc = dsv3__seterr(&ctx->err, DSV3_E_NOSPC, "state needs %zu bytes, buffer has %zu", need,
                          cap);
    else if ((rc = save_body(ctx, &h, &z, (char *)buf + sizeof h)))
        rc = dsv3__seterr(&ctx->err, DSV3_E_BACKEND, "cannot read the cache: %s",
                          dsv3_strerror(rc));
    if (!rc && buf) {
        h.checksum = dsv3__xxh64((char *)buf + sizeof h, z.total, 0);
        memcpy(buf, &h, sizeof h);
    }
    atomic_store_explicit(&ctx->busy, 0, memory_order_release);
    return rc;
}

/* ---- load ------------------------------------------------------------------------ */

static const char *hdr_problem(const dsv3_context *ctx, const state_hdr *h, size_t size)
{
    const dsv3_hparams *hp = &ctx->model->hp;
    sizes z;
    if (memcmp(h->magic, STATE_MAGIC, sizeof STATE_MAGIC))
        return "not a libdsv3 context state";
    if (h->version != STATE_VERSION)
        return "unsupported state version";
    if (h->n_layers != (uint32_t)hp->n_layers || h->vocab != (uint32_t)hp->vocab_size ||
        h->hidden != (uint32_t)hp->hidden_size ||
        h->row != (uint32_t)(hp->kv_lora_rank + hp->qk_rope_dim))
        return "the state belongs to a model of another shape";
    if (h->kv_dtype != DSV3_DTYPE_F32 && h->kv_dtype != DSV3_DTYPE_BF16)
        return "bad cache type";
    if (h->mtp_n_past > h->n_past || (!h->has_mtp && (h->mtp_n_past || h->n_hid)) ||
        (uint64_t)h->logits_pos0 + h->n_logits > h->n_past ||
        (h->has_mtp && (uint64_t)h->hid_pos0 + h->n_hid != h->n_past) ||
        (uint64_t)h->mtp_logits_pos0 + h->n_mtp_logits > h->mtp_n_past)
        return "inconsistent positions";
    state_sizes(ctx->model, h, &z);
    if (h->payload_bytes != z.total || size - sizeof *h != z.total)
        return "truncated or oversized state";
    return NULL;
}

/* Copy n cache rows from the state (dtype of h) into a cache buffer. */
static int put_rows(dsv3_context *ctx, dsv3_buf *dst, size_t off, const char *src, size_t n,
                    const state_hdr *h, float *tmp)
{
    const dsv3_backend *be = &ctx->model->be;
    size_t row = h->row, ses = h->kv_dtype == DSV3_DTYPE_BF16 ? 2 : 4;
    if ((int32_t)h->kv_dtype == ctx->kv_dtype)
        return be->ops->buf_write(be->state, dst, off, src, n * row * ses);
    size_t des = ctx->kv_dtype == DSV3_DTYPE_BF16 ? 2 : 4;
    for (size_t r = 0; r < n; r++) {
        for (size_t i = 0; i < row; i++) {
            float v;
            if (h->kv_dtype == DSV3_DTYPE_BF16) {
                uint16_t u;
                memcpy(&u, src + (r * row + i) * 2, 2);
                v = dsv3__bf16_to_f32(u);
            } else {
                memcpy(&v, src + (r * row + i) * 4, 4);
            }
            if (des == 2) {
                uint16_t u = dsv3__f32_to_bf16(v);
                memcpy((char *)tmp + i * 2, &u, 2);
            } else {
                tmp[i] = v;
            }
        }
        int rc = be->ops->buf_write(be->state, dst, off + r * row * des, tmp, row * des);
        if (rc)
            return rc;
    }
    return DSV3_OK;
}

static int load_body(dsv3_context *ctx, const state_hdr *h, const char *p, int keep_mtp)
{
    const dsv3_model *m = ctx->model;
    sizes z;
    state_sizes(m, h, &z);
    float *tmp = dsv3__malloc(&ctx->alloc, (size_t)h->row * sizeof(float));
    if (!tmp)
        return DSV3_E_NOMEM;
    int rc = DSV3_OK;
    for (int32_t l = 0; !rc && l < m->hp.n_layers; l++, p += z.layer)
        rc = put_rows(ctx, ctx->kv, (size_t)l * ctx->kv_layer_bytes, p, h->n_past, h, tmp);
    if (!rc && keep_mtp && h->mtp_n_past)
        rc = put_rows(ctx, ctx->kv_mtp, 0, p, h->mtp_n_past, h, tmp);
    p += z.mtp;
    memcpy(ctx->logits, p, z.logits);
    p += z.logits;
    if (!rc && keep_mtp && z.hid)
        rc = m->be.ops->buf_write(m->be.state, ctx->hid,
                                  (size_t)h->hid_pos0 * (size_t)h->hidden * sizeof(float), p,
                                  z.hid);
    p += z.hid;
    if (keep_mtp && z.mtp_logits)
        memcpy(ctx->mtp_logits, p, z.mtp_logits);
    dsv3__free(&ctx->alloc, tmp);
    return rc;
}

/* Make room for what the state holds, before anything changes. */
static int load_room(dsv3_context *ctx, const state_hdr *h, int keep_mtp)
{
    size_t V = (size_t)ctx->model->hp.vocab_size * sizeof(float);
    size_t rows[2] = {h->n_logits, keep_mtp ? h->n_mtp_logits : 0};
    float **ptr[2] = {&ctx->logits, &ctx->mtp_logits};
    uint32_t *cap[2] = {&ctx->cap_logits, &ctx->cap_mtp_logits};
    for (int i = 0; i < 2; i++) {
        if (rows[i] <= *cap[i])
            continue;
        float *n = dsv3__realloc(&ctx->alloc, *ptr[i], rows[i] * V);
        if (!n)
            return DSV3_E_NOMEM;
        *ptr[i] = n;
        *cap[i] = (uint32_t)rows[i];
    }
    return DSV3_OK;
}

static void apply_hdr(dsv3_context *ctx, const state_hdr *h, int keep_mtp)
{
    ctx->n_past = h->n_past;
    ctx->n_logits = h->n_logits;
    ctx->logits_pos0 = h->logits_pos0;
    ctx->logits_row0 = h->logits_row0;
    ctx->mtp_n_past = keep_mtp ? h->mtp_n_past : 0;
    ctx->hid_from = keep_mtp ? h->hid_pos0 : h->n_past;
    ctx->n_mtp_logits = keep_mtp ? h->n_mtp_logits : 0;
    ctx->mtp_logits_pos0 = h->mtp_logits_pos0;
    ctx->mtp_logits_row0 = h->mtp_logits_row0;
}

static int state_load(dsv3_context *ctx, const void *buf, size_t size)
{
    state_hdr h;
    if (size < sizeof h)
        return dsv3__seterr(&ctx->err, DSV3_E_FORMAT, "state: %zu bytes is too short", size);
    memcpy(&h, buf, sizeof h);
    const char *why = hdr_problem(ctx, &h, size);
    if (why)
        return dsv3__seterr(&ctx->err, DSV3_E_FORMAT, "state: %s", why);
    if (h.n_past > ctx->n_ctx)
        return dsv3__seterr(&ctx->err, DSV3_E_CTX_FULL,
                            "state holds %u positions, this context only %u", h.n_past,
                            ctx->n_ctx);
    const char *body = (const char *)buf + sizeof h;
    if (dsv3__xxh64(body, (size_t)h.payload_bytes, 0) != h.checksum)
        return dsv3__seterr(&ctx->err, DSV3_E_FORMAT, "state: checksum mismatch");
    int keep_mtp = h.has_mtp && ctx->mtp_on && ctx->kv_mtp;
    int rc = load_room(ctx, &h, keep_mtp);
    if (rc)
        return dsv3__seterr(&ctx->err, rc, "state: cannot make room: %s", dsv3_strerror(rc));
    rc = load_body(ctx, &h, body, keep_mtp);
    if (rc) { /* partly written: leave an empty, usable context */
        ctx->n_past = ctx->mtp_n_past = ctx->n_logits = ctx->n_mtp_logits = ctx->hid_from = 0;
        return dsv3__seterr(&ctx->err, rc == DSV3_E_NOMEM ? rc : DSV3_E_BACKEND,
                            "state: cannot write the cache: %s", dsv3_strerror(rc));
    }
    apply_hdr(ctx, &h, keep_mtp);
    return DSV3_OK;
}

int dsv3_context_state_load(dsv3_context *ctx, const void *buf, size_t size)
{
    if (!ctx)
        return DSV3_E_INVAL;
    if (ctx->magic != DSV3__MAGIC_CONTEXT)
        return DSV3_E_MISUSE;
    if (atomic_exchange_explicit(&ctx->busy, 1, memory_order_acquire))
        return DSV3_E_BUSY;
    dsv3__clearerr(&ctx->err);
    int rc = buf ? state_load(ctx, buf, size)
                 : dsv3__seterr(&ctx->err, DSV3_E_INVAL, "state: buffer is NULL");
    atomic_store_explicit(&ctx->busy, 0, memory_order_release);
    return rc;
}
