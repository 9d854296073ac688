/*
 * forward.c - the forward pass over the backend vtable: per-model derived
 * data (checked shapes, RoPE frequencies, dequantized kv_b), chunk scratch,
 * op helpers, and the whole-model pass embed -> layers -> norm -> head.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>

#include "model.h"

/* ---- shape checks ----------------------------------------------------------- */

static int hp_check(dsv3_model *m)
{
    const dsv3_hparams *hp = &m->hp;
    const char *bad = NULL;
    if (hp->vocab_size <= 0 || hp->hidden_size <= 0 || hp->n_layers <= 0 || hp->n_heads <= 0)
        bad = "vocab, hidden size, layers and heads must be positive";
    else if (hp->qk_nope_dim <= 0 || hp->v_head_dim <= 0 || hp->kv_lora_rank <= 0 ||
             hp->q_lora_rank < 0)
        bad = "head dims and kv_lora_rank must be positive";
    else if (hp->qk_rope_dim <= 0 || hp->qk_rope_dim % 2)
        bad = "qk_rope_head_dim must be positive and even";
    else if (hp->rope_theta <= 0.0f || !(hp->rms_eps >= 0.0f))
        bad = "rope_theta must be positive, rms_norm_eps non-negative";
    else if (hp->n_routed_experts > 0) {
        int32_t E = hp->n_routed_experts, G = hp->n_group > 0 ? hp->n_group : 1;
        if (hp->n_experts_per_tok < 1 || hp->n_experts_per_tok > E ||
            hp->moe_intermediate_size <= 0 || hp->n_shared_experts < 0)
            bad = "bad expert counts";
        else if (E % G || hp->topk_group < 1 || hp->topk_group > G ||
                 (int64_t)hp->topk_group * (E / G) < hp->n_experts_per_tok)
            bad = "n_routed_experts must split into n_group groups that can hold top-k";
        else if (hp->topk_method == DSV3_TOPK_NOAUX_TC && G > 1 && E / G < 2)
            bad = "noaux_tc routing needs at least 2 experts per group";
    }
    if (!bad && hp->first_k_dense > 0 && hp->intermediate_size <= 0)
        bad = "dense layers need intermediate_size";
    if (bad)
        return dsv3__model_seterr(m, DSV3_E_FORMAT, "unusable hyper-parameters: %s", bad);
    return DSV3_OK;
}

/* Is t present with exactly the shape [d0, d1(, d2)] (0 = no such dim)? */
static int shape_is(const dsv3_tensor *t, int64_t d0, int64_t d1, int64_t d2)
{
    int n = d2 ? 3 : d1 ? 2 : 1;
    if (!t->data || t->n_dims != n || t->ne[0] != d0)
        return 0;
    if (n >= 2 && t->ne[1] != d1)
        return 0;
    return n < 3 || t->ne[2] == d2;
}

static int tensor_check(dsv3_model *m, const dsv3_tensor *t, int32_t layer, const char *name,
                        int64_t d0, int64_t d1, int64_t d2)
{
    int ok = shape_is(t, d0, d1, d2);
    if (ok && !d1 && t->dtype != DSV3_DTYPE_F32)
        ok = 0; /* vectors are held as F32 */
    if (ok && t->dtype == DSV3_DTYPE_FP8_E4M3 && !t->scale)
        ok = 0;
    if (ok)
        return DSV3_OK;
    char where[32] = "", shape[96];
    if (layer >= 0)
        snprintf(where, sizeof where, "layer %d ", (int)layer);
    if (d2)
        snprintf(shape, sizeof shape, "[%lld, %lld, %lld]", (long long)d0, (long long)d1,
                 (long long)d2);
    else if (d1)
        snprintf(shape, sizeof shape, "[%lld, %lld]", (long long)d0, (long long)d1);
    else
        snprintf(shape, sizeof shape, "[%lld] f32", (long long)d0);
    return dsv3__model_seterr(m, DSV3_E_FORMAT,
                              "tensor %s%s is missing or has the wrong shape or type (want %s)",
                              where, name, shape);
}

#define CHECK(t, name, d0, d1, d2)                                                         \
    do {                                                                                   \
        int rc_ = tensor_check(m, &(t), l, name, d0, d1, d2);                              \
        if (rc_)                                                                           \
            return rc_;                                                                    \
    } while (0)

static int mlp_check(dsv3_model *m, const dsv3_mlp_weights *w, int32_t l, int64_t f)
{
    int64_t d = m->hp.hidden_size;
    CHECK(w->gate, "mlp gate_proj", f, d, 0);
    CHECK(w->up, "mlp up_proj", f, d, 0);
    CHECK(w->down, "mlp down_proj", d, f, 0);
    return DSV3_OK;
}

static int layer_check(dsv3_model *m, int32_t l)
{
    const dsv3_hparams *hp = &m->hp;
    const dsv3_layer_weights *w = &m->w.layers[l];
    int64_t d = hp->hidden_size, nh = hp->n_heads, dq = dsv3__hp_qk_head_dim(hp);
    int64_t rkv = hp->kv_lora_rank, E = hp->n_routed_experts, fm = hp->moe_intermediate_size;
    CHECK(w->attn_norm, "input_layernorm", d, 0, 0);
    CHECK(w->ffn_norm, "post_attention_layernorm", d, 0, 0);
    if (hp->q_lora_rank > 0) {
        CHECK(w->q_a, "q_a_proj", hp->q_lora_rank, d, 0);
        CHECK(w->q_a_norm, "q_a_layernorm", hp->q_lora_rank, 0, 0);
        CHECK(w->q_b, "q_b_proj", nh * dq, hp->q_lora_rank, 0);
    } else {
        CHECK(w->q, "q_proj", nh * dq, d, 0);
    }
    CHECK(w->kv_a, "kv_a_proj_with_mqa", rkv + hp->qk_rope_dim, d, 0);
    CHECK(w->kv_a_norm, "kv_a_layernorm", rkv, 0, 0);
    CHECK(w->kv_b, "kv_b_proj", nh * (hp->qk_nope_dim + hp->v_head_dim), rkv, 0);
    CHECK(w->o, "o_proj", d, nh * hp->v_head_dim, 0);
    if (dsv3__hp_layer_is_moe(hp, l)) {
        CHECK(w->router, "mlp.gate", E, d, 0);
        if (hp->topk_method == DSV3_TOPK_NOAUX_TC)
            CHECK(w->router_bias, "e_score_correction_bias", E, 0, 0);
        CHECK(w->exp_gate, "experts gate_proj", E, fm, d);
        CHECK(w->exp_up, "experts up_proj", E, fm, d);
        CHECK(w->exp_down, "experts down_proj", E, d, fm);
        if (hp->n_shared_experts > 0) {
            int rc = mlp_check(m, &w->shared, l, (int64_t)hp->n_shared_experts * fm);
            if (rc)
                return rc;
        }
    } else {
        int rc = mlp_check(m, &w->mlp, l, hp->intermediate_size);
        if (rc)
            return rc;
    }
    if (l >= hp->n_layers) { /* MTP module */
        CHECK(w->enorm, "enorm", d, 0, 0);
        CHECK(w->hnorm, "hnorm", d, 0, 0);
        CHECK(w->eh_proj, "eh_proj", d, 2 * d, 0);
        CHECK(w->head_norm, "shared_head.norm", d, 0, 0);
        if (w->embed.data)
            CHECK(w->embed, "embed_tokens", hp->vocab_size, d, 0);
        if (w->head.data)
            CHECK(w->head, "shared_head.head", hp->vocab_size, d, 0);
    }
    return DSV3_OK;
}

static int model_check(dsv3_model *m)
{
    int rc = hp_check(m);
    if (rc)
        return rc;
    const dsv3_hparams *hp = &m->hp;
    int32_t l = -1;
    CHECK(m->w.embed, "model.embed_tokens", hp->vocab_size, hp->hidden_size, 0);
    CHECK(m->w.norm, "model.norm", hp->hidden_size, 0, 0);
    CHECK(m->w.head, "lm_head", hp->vocab_size, hp->hidden_size, 0);
    if (m->w.n_layers < hp->n_layers || m->w.n_layers > hp->n_layers + hp->n_mtp ||
        !m->w.layers)
        return dsv3__model_seterr(m, DSV3_E_FORMAT, "the model holds %d layers, expected %d",
                                  (int)m->w.n_layers, (int)hp->n_layers);
    for (l = 0; l < m->w.n_layers; l++)
        if ((rc = layer_check(m, l)))
            return rc;
    return DSV3_OK;
}

#undef CHECK

/* Every tensor in m->be's memory, except that the routed experts may all be
 * in m->be_cpu's (DSV3_PLACE_EXPERTS_ON_CPU); *apart says which. */
static int placement_check(dsv3_model *m, int32_t *apart)
{
    int32_t home = m->be.ops->id, exp = -1;
    const char *bad = NULL;
    int32_t where = -1;
    const dsv3_tensor *top[] = {&m->w.embed, &m->w.norm, &m->w.head};
    for (size_t i = 0; i < DSV3__ARRAY_LEN(top) && !bad; i++)
        if (top[i]->data && top[i]->backend != home)
            bad = "embedding, final norm or head";
    for (int32_t l = 0; l < m->w.n_layers && !bad; l++) {
        const dsv3_layer_weights *w = &m->w.layers[l];
        const dsv3_tensor *t[] = {
            &w->attn_norm, &w->q_a, &w->q_a_norm, &w->q_b, &w->q, &w->kv_a, &w->kv_a_norm,
            &w->kv_b, &w->o, &w->ffn_norm, &w->mlp.gate, &w->mlp.up, &w->mlp.down, &w->router,
            &w->router_bias, &w->shared.gate, &w->shared.up, &w->shared.down, &w->enorm,
            &w->hnorm, &w->eh_proj, &w->head_norm, &w->embed, &w->head,
        };
        for (size_t i = 0; i < DSV3__ARRAY_LEN(t) && !bad; i++)
            if (t[i]->data && t[i]->backend != home)
                bad = "attention, norms, dense FFN, router or shared experts", where = l;
        const dsv3_tensor *e[] = {&w->exp_gate, &w->exp_up, &w->exp_down};
        for (size_t i = 0; i < DSV3__ARRAY_LEN(e) && !bad; i++) {
            if (!e[i]->data)
                continue;
            if (exp < 0)
                exp = e[i]->backend;
            if (e[i]->backend != exp)
                bad = "routed experts (not all in one backend's memory)", where = l;
        }
    }
    *apart = exp >= 0 && exp != home;
    if (!bad && *apart && (!m->be_cpu.ops || m->be_cpu.ops->id != exp))
        bad = "routed experts (no second backend for their memory)";
    if (!bad)
        return DSV3_OK;
    char at[32] = "";
    if (where >= 0)
        snprintf(at, sizeof at, " of layer %d", (int)where);
    return dsv3__model_seterr(m, DSV3_E_INVAL,
                              "the %s%s are not in the memory of the backend that uses them",
                              bad, at);
}

/* ---- per-model derived data ------------------------------------------------ */

static size_t align64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

static int fwd_build(dsv3_model *m, dsv3_fwd_model *fm)
{
    const dsv3_hparams *hp = &m->hp;
    const dsv3_backend *be = &m->be;
    int64_t rows = (int64_t)hp->n_heads * (hp->qk_nope_dim + hp->v_head_dim);
    size_t freq_bytes = align64((size_t)(hp->qk_rope_dim / 2) * sizeof(float));
    size_t kvb_bytes = align64((size_t)rows * (size_t)hp->kv_lora_rank * sizeof(float));
    size_t total = freq_bytes + (size_t)fm->n_layers * kvb_bytes;
    int rc = be->ops->buf_alloc(be->state, total, DSV3_BUF_WEIGHTS, &fm->buf);
    if (rc)
        return dsv3__model_seterr(m, rc, "cannot allocate %zu bytes for derived weights", total);
    char *base = fm->buf->base;
    fm->rope_freqs = (float *)base;
    float freqs[512];
    if (hp->qk_rope_dim / 2 > (int32_t)DSV3__ARRAY_LEN(freqs))
        return dsv3__model_seterr(m, DSV3_E_UNSUPPORTED, "qk_rope_head_dim %d is too large",
                                  (int)hp->qk_rope_dim);
    dsv3__rope_freqs(hp, freqs);
    rc = be->ops->buf_write(be->state, fm->buf, 0, freqs,
                            (size_t)(hp->qk_rope_dim / 2) * sizeof(float));
    for (int32_t l = 0; !rc && l < fm->n_layers; l++) {
        fm->wkv_b[l] = (float *)(base + freq_bytes + (size_t)l * kvb_bytes);
        dsv3_op_dequant_args a = {.w = &m->w.layers[l].kv_b, .row0 = 0, .rows = rows,
                                  .y = fm->wkv_b[l]};
        dsv3_op_job job = {.op = DSV3_OP_DEQUANT, .n_threads = 0, .args = &a};
        rc = be->ops->run_op(be->state, &job);
    }
    if (!rc && be->ops->sync) /* contexts compute on their own instances */
        rc = be->ops->sync(be->state);
    if (rc)
        return dsv3__model_seterr(m, rc == DSV3_E_NOMEM ? rc : DSV3_E_BACKEND,
                                  "cannot prepare kv_b_proj for absorbed attention: %s",
                                  dsv3_strerror(rc));
    return DSV3_OK;
}

int dsv3__fwd_model_init(dsv3_model *m)
{
    if (m->fwd)
        return DSV3_OK;
    int rc = model_check(m);
    if (rc)
        return rc;
    dsv3_fwd_model *fm = dsv3__calloc(&m->alloc, 1, sizeof *fm);
    if (fm)
        fm->wkv_b = dsv3__calloc(&m->alloc, (size_t)m->w.n_layers, sizeof *fm->wkv_b);
    if (!fm || !fm->wkv_b) {
        dsv3__free(&m->alloc, fm);
        return dsv3__model_seterr(m, DSV3_E_NOMEM, "out of memory");
    }
    fm->n_layers = m->w.n_layers;
    if ((rc = placement_check(m, &fm->experts_apart))) {
        dsv3__free(&m->alloc, fm->wkv_b);
        dsv3__free(&m->alloc, fm);
        return rc;
    }
    fm->attn_scale = dsv3__attn_scale(&m->hp);
    fm->rope_scale = dsv3__rope_scale(&m->hp);
    m->fwd = fm;
    rc = fwd_build(m, fm);
    if (rc)
        dsv3__fwd_model_free(m);
    return rc;
}

void dsv3__fwd_model_free(dsv3_model *m)
{
    dsv3_fwd_model *fm = m->fwd;
    if (!fm)
        return;
    if (fm->buf)
        m->be.ops->buf_free(m->be.state, fm->buf);
    dsv3__free(&m->alloc, fm->wkv_b);
    dsv3__free(&m->alloc, fm);
    m->fwd = NULL;
}

/* ---- chunk scratch ---------------------------------------------------------- */

typedef struct slot {
    void **ptr;
    size_t bytes;
} slot;

static int alloc_slots(const dsv3_backend *be, slot *sl, size_t n, uint32_t usage,
                       dsv3_buf **out)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += align64(sl[i].bytes);
    int rc = be->ops->buf_alloc(be->state, total ? total : 64, usage, out);
    if (rc)
        return rc;
    char *p = (*out)->base;
    for (size_t i = 0; i < n; i++) {
        *sl[i].ptr = sl[i].bytes ? p : NULL;
        p += align64(sl[i].bytes);
    }
    return DSV3_OK;
}

int dsv3__fwd_scratch_init(const dsv3_model *m, int64_t B, int naive, int64_t n_ctx,
                           dsv3_fwd_scratch *s)
{
    const dsv3_hparams *hp = &m->hp;
    memset(s, 0, sizeof *s);
    s->n_rows = B;
    size_t b = (size_t)B, f4 = sizeof(float), d = (size_t)hp->hidden_size;
    size_t fmax = (size_t)DSV3__MAX(hp->intermediate_size,
                                    hp->n_shared_experts * hp->moe_intermediate_size);
    size_t E = (size_t)DSV3__MAX(hp->n_routed_experts, 0);
    size_t k = E ? (size_t)hp->n_experts_per_tok : 0;
    size_t row = (size_t)(hp->kv_lora_rank + hp->qk_rope_dim);
    slot sl[] = {
        {(void **)&s->tok, b * 4},
        {(void **)&s->amax, b * 4},
        {(void **)&s->h, b * d * f4},
        {(void **)&s->xn, b * d * f4},
        {(void **)&s->qa, b * (size_t)hp->q_lora_rank * f4},
        {(void **)&s->q, b * (size_t)(hp->n_heads * dsv3__hp_qk_head_dim(hp)) * f4},
        {(void **)&s->kv, b * row * f4},
        {(void **)&s->ao, b * (size_t)(hp->n_heads * hp->v_head_dim) * f4},
        {(void **)&s->fg, b * fmax * f4},
        {(void **)&s->fu, b * fmax * f4},
        {(void **)&s->moe, b * d * f4},
        {(void **)&s->rlog, b * E * f4},
        {(void **)&s->ridx, b * k * 4},
        {(void **)&s->rw, b * k * f4},
        {(void **)&s->cat, hp->n_mtp > 0 ? b * 2 * d * f4 : 0},
        {(void **)&s->logits, b * (size_t)hp->vocab_size * f4},
    };
    int rc = alloc_slots(&m->be, sl, DSV3__ARRAY_LEN(sl), DSV3_BUF_COMPUTE, &s->buf);
    if (!rc && m->fwd && m->fwd->experts_apart) {
        slot xs[] = {
            {(void **)&s->xx, b * d * f4},
            {(void **)&s->xidx, b * k * 4},
            {(void **)&s->xw, b * k * f4},
            {(void **)&s->xy, b * d * f4},
        };
        rc = alloc_slots(&m->be_cpu, xs, DSV3__ARRAY_LEN(xs), DSV3_BUF_COMPUTE, &s->xbuf);
    }
    if (rc || !naive) {
        if (rc)
            dsv3__fwd_scratch_free(m, s);
        return rc;
    }
    size_t nc = (size_t)n_ctx;
    slot nv[] = {
        {(void **)&s->lat, nc * row * f4},
        {(void **)&s->kvd, nc * (size_t)(hp->n_heads * (hp->qk_nope_dim + hp->v_head_dim)) * f4},
    };
    rc = alloc_slots(&m->be, nv, DSV3__ARRAY_LEN(nv), DSV3_BUF_COMPUTE, &s->naive_buf);
    if (rc)
        dsv3__fwd_scratch_free(m, s);
    return rc;
}

void dsv3__fwd_scratch_free(const dsv3_model *m, dsv3_fwd_scratch *s)
{
    if (s->buf)
        m->be.ops->buf_free(m->be.state, s->buf);
    if (s->naive_buf)
        m->be.ops->buf_free(m->be.state, s->naive_buf);
    if (s->xbuf)
        m->be_cpu.ops->buf_free(m->be_cpu.state, s->xbuf);
    memset(s, 0, sizeof *s);
}

/* ---- op helpers --------------------------------------------------------------- */

static const char *op_name(int32_t op)
{
    static const char *const names[] = {
        "none", "embed", "rmsnorm", "matmul", "dequant", "copy", "rope",
        "mla_attn", "mha", "route", "moe", "swiglu", "add", "argmax",
    };
    return op >= 0 && op < (int32_t)DSV3__ARRAY_LEN(names) ? names[op] : "?";
}

int dsv3__fwd_op_on(const dsv3__fwd *f, const dsv3_backend *be, int32_t op, const void *args)
{
    dsv3_op_job job = {.op = op, .n_threads = f->n_threads, .args = args};
    int rc = be->ops->run_op(be->state, &job);
    if (rc == DSV3_OK)
        return rc;
    if (rc == DSV3_E_NOMEM)
        return dsv3__seterr(f->err, rc, "out of memory in backend op %s", op_name(op));
    return dsv3__seterr(f->err, DSV3_E_BACKEND, "backend %s: op %s failed: %s", be->ops->name,
                        op_name(op), dsv3_strerror(rc));
}

int dsv3__fwd_op(const dsv3__fwd *f, int32_t op, const void *args)
{
    return dsv3__fwd_op_on(f, f->be, op, args);
}

int dsv3__fwd_xfer(const dsv3__fwd *f, const dsv3_backend *sbe, const dsv3_buf *sb,
                   const void *src, const dsv3_backend *dbe, dsv3_buf *db, void *dst, size_t n)
{
    size_t soff = (size_t)((const char *)src - (const char *)sb->base);
    size_t doff = (size_t)((char *)dst - (char *)db->base);
    int rc;
    if (dbe->caps.flags & DSV3_CAP_HOST_MEMORY)
        rc = sbe->ops->buf_read(sbe->state, sb, soff, dst, n);
    else if (sbe->caps.flags & DSV3_CAP_HOST_MEMORY)
        rc = dbe->ops->buf_write(dbe->state, db, doff, src, n);
    else
        rc = DSV3_E_UNSUPPORTED;
    if (rc)
        return dsv3__seterr(f->err, rc == DSV3_E_UNSUPPORTED ? rc : DSV3_E_BACKEND,
                            "moving %zu bytes from backend %s to %s: %s", n, sbe->ops->name,
                            dbe->ops->name, dsv3_strerror(rc));
    return DSV3_OK;
}

int dsv3__fwd_matmul(const dsv3__fwd *f, const dsv3_tensor *w, const float *x, int64_t ldx,
                     float *y, int64_t ldy, int64_t T, int accumulate)
{
    dsv3_op_matmul_args a = {.w = w, .expert = 0, .x = x, .y = y, .T = T, .ldx = ldx,
                             .ldy = ldy, .accumulate = accumulate};
    return dsv3__fwd_op(f, DSV3_OP_MATMUL, &a);
}

int dsv3__fwd_rmsnorm(const dsv3__fwd *f, const dsv3_tensor *g, const float *x, int64_t ldx,
                      float *y, int64_t ldy, int64_t rows, int64_t n)
{
    dsv3_op_rmsnorm_args a = {.x = x, .y = y, .weight = g->data, .rows = rows, .n = n,
                              .ldx = ldx, .ldy = ldy, .eps = f->m->hp.rms_eps};
    return dsv3__fwd_op(f, DSV3_OP_RMSNORM, &a);
}

int dsv3__fwd_canceled(const dsv3__fwd *f)
{
    return f->cancel && atomic_load_explicit(f->cancel, memory_order_relaxed);
}

/* ---- the whole model ---------------------------------------------------------- */

int dsv3__layer_forward(const dsv3__fwd *f, int32_t layer, void *cache, int64_t T, int64_t pos0)
{
    int rc = dsv3__mla_block(f, layer, cache, T, pos0);
    if (!rc)
        rc = dsv3__ffn_block(f, layer, T);
    if (!rc && dsv3__fwd_canceled(f))
        rc = dsv3__seterr(f->err, DSV3_E_CANCELED, "canceled");
    return rc;
}

/* Logits of rows [r0, r0 + n) of x ([T][d] backend) into out_host. */
int dsv3__fwd_logits(const dsv3__fwd *f, const dsv3_tensor *head, const float *x, int64_t r0,
                     int64_t n, float *out_host)
{
    const dsv3_fwd_scratch *s = f->s;
    int64_t d = f->m->hp.hidden_size, V = f->m->hp.vocab_size;
    if (n <= 0)
        return DSV3_OK;
    int rc = dsv3__fwd_matmul(f, head, x + r0 * d, d, s->logits, V, n, 0);
    if (rc)
        return rc;
    size_t off = (size_t)((char *)s->logits - (char *)s->buf->base);
    rc = f->be->ops->buf_read(f->be->state, s->buf, off, out_host,
                              (size_t)n * (size_t)V * sizeof(float));
    if (rc)
        return dsv3__seterr(f->err, DSV3_E_BACKEND, "cannot read logits: %s", dsv3_strerror(rc));
    return DSV3_OK;
}

int dsv3__fwd_upload_tokens(const dsv3__fwd *f, const int32_t *tokens, int64_t T)
{
    const dsv3_fwd_scratch *s = f->s;
    size_t off = (size_t)((char *)s->tok - (char *)s->buf->base);
    int rc = f->be->ops->buf_write(f->be->state, s->buf, off, tokens, (size_t)T * 4);
    if (rc)
        return dsv3__seterr(f->err, DSV3_E_BACKEND, "cannot upload tokens: %s",
                            dsv3_strerror(rc));
    return DSV3_OK;
}

int dsv3__fwd_main(const dsv3__fwd *f, char *kv_base, size_t kv_layer_bytes,
                   const int32_t *tokens, int64_t T, int64_t pos0, float *hid, int64_t r0,
                   int64_t n_out, float *out_host)
{
    const dsv3_model *m = f->m;
    const dsv3_fwd_scratch *s = f->s;
    int64_t d = m->hp.hidden_size;
    int rc = dsv3__fwd_upload_tokens(f, tokens, T);
    if (rc)
        return rc;
    dsv3_op_embed_args ea = {.table = &m->w.embed, .tokens = s->tok, .out = s->h, .n = T,
                             .ld_out = d};
    if ((rc = dsv3__fwd_op(f, DSV3_OP_EMBED, &ea)))
        return rc;
    for (int32_t l = 0; l < m->hp.n_layers; l++)
        if ((rc = dsv3__layer_forward(f, l, kv_base + (size_t)l * kv_layer_bytes, T, pos0)))
            return rc;
    if ((rc = dsv3__fwd_rmsnorm(f, &m->w.norm, s->h, d, s->xn, d, T, d)))
        return rc;
    if (hid) {
        dsv3_op_copy_args ca = {.src = s->xn, .dst = hid, .src_dtype = DSV3_DTYPE_F32,
                                .dst_dtype = DSV3_DTYPE_F32, .rows = T, .cols = d,
                                .ld_src = d, .ld_dst = d};
        if ((rc = dsv3__fwd_op(f, DSV3_OP_COPY, &ca)))
            return rc;
    }
    return dsv3__fwd_logits(f, &m->w.head, s->xn, r0, n_out, out_host);
}
