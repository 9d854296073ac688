/*
 * mla.c - Multi-head Latent Attention block (ARCHITECTURE.md 3): query and
 * latent projections, interleaved RoPE, the latent cache append, then
 * attention in the absorbed form (default) or the naive form (testing).
 * SPDX-License-Identifier: MIT
 */
#include "model.h"

static int rope(const dsv3__fwd *f, float *x, int64_t ldx, int64_t offset, int64_t head_stride,
                int64_t n_heads, int64_t T, int64_t pos0)
{
    const dsv3_fwd_model *fm = f->m->fwd;
    dsv3_op_rope_args a = {.x = x, .freqs = fm->rope_freqs, .T = T, .ldx = ldx,
                           .offset = offset, .head_stride = head_stride, .n_heads = n_heads,
                           .dim = f->m->hp.qk_rope_dim, .pos0 = pos0, .scale = fm->rope_scale};
    return dsv3__fwd_op(f, DSV3_OP_ROPE, &a);
}

/* q = W_qb RMSNorm(W_qa x) (or W_q x), then RoPE on each head's last d_r. */
static int query(const dsv3__fwd *f, const dsv3_layer_weights *w, int64_t T, int64_t pos0)
{
    const dsv3_hparams *hp = &f->m->hp;
    const dsv3_fwd_scratch *s = f->s;
    int64_t d = hp->hidden_size, dq = dsv3__hp_qk_head_dim(hp), ldq = hp->n_heads * dq;
    int rc;
    if (hp->q_lora_rank > 0) {
        int64_t r = hp->q_lora_rank;
        if ((rc = dsv3__fwd_matmul(f, &w->q_a, s->xn, d, s->qa, r, T, 0)) ||
            (rc = dsv3__fwd_rmsnorm(f, &w->q_a_norm, s->qa, r, s->qa, r, T, r)) ||
            (rc = dsv3__fwd_matmul(f, &w->q_b, s->qa, r, s->q, ldq, T, 0)))
            return rc;
    } else if ((rc = dsv3__fwd_matmul(f, &w->q, s->xn, d, s->q, ldq, T, 0))) {
        return rc;
    }
    return rope(f, s->q, ldq, hp->qk_nope_dim, dq, hp->n_heads, T, pos0);
}

/* [c ; k_r] = W_kva x; c = RMSNorm(c) (latent only); k_r = RoPE(k_r); then
 * append the rows to the cache at pos0 ... */
static int latent(const dsv3__fwd *f, const dsv3_layer_weights *w, void *cache, int64_t T,
                  int64_t pos0)
{
    const dsv3_hparams *hp = &f->m->hp;
    const dsv3_fwd_scratch *s = f->s;
    int64_t d = hp->hidden_size, rkv = hp->kv_lora_rank, row = f->ld_cache;
    int rc;
    if ((rc = dsv3__fwd_matmul(f, &w->kv_a, s->xn, d, s->kv, row, T, 0)) ||
        (rc = dsv3__fwd_rmsnorm(f, &w->kv_a_norm, s->kv, row, s->kv, row, T, rkv)) ||
        (rc = rope(f, s->kv, row, rkv, 0, 1, T, pos0)))
        return rc;
    size_t es = f->kv_dtype == DSV3_DTYPE_BF16 ? 2 : 4;
    dsv3_op_copy_args ca = {.src = s->kv, .dst = (char *)cache + (size_t)(pos0 * row) * es,
                            .src_dtype = DSV3_DTYPE_F32, .dst_dtype = f->kv_dtype, .rows = T,
                            .cols = row, .ld_src = row, .ld_dst = row};
    return dsv3__fwd_op(f, DSV3_OP_COPY, &ca);
}

static int attn_absorbed(const dsv3__fwd *f, int32_t layer, const void *cache, int64_t T,
                         int64_t pos0)
{
    const dsv3_hparams *hp = &f->m->hp;
    const dsv3_fwd_scratch *s = f->s;
    int64_t nh = hp->n_heads;
    dsv3_op_mla_attn_args a = {
        .q = s->q, .cache = cache, .wkv_b = f->m->fwd->wkv_b[layer], .out = s->ao,
        .cache_dtype = f->kv_dtype, .T = T, .pos0 = pos0, .n_heads = nh,
        .d_nope = hp->qk_nope_dim, .d_rope = hp->qk_rope_dim, .d_v = hp->v_head_dim,
        .kv_rank = hp->kv_lora_rank, .ldq = nh * dsv3__hp_qk_head_dim(hp),
        .ld_cache = f->ld_cache, .ld_out = nh * hp->v_head_dim,
        .scale = f->m->fwd->attn_scale,
    };
    return dsv3__fwd_op(f, DSV3_OP_MLA_ATTN, &a);
}

/* Naive form: decompress every cached latent with kv_b into per-head keys
 * and values, then ordinary multi-head attention. */
static int attn_naive(const dsv3__fwd *f, const dsv3_layer_weights *w, const void *cache,
                      int64_t T, int64_t pos0)
{
    const dsv3_hparams *hp = &f->m->hp;
    const dsv3_fwd_scratch *s = f->s;
    int64_t nh = hp->n_heads, row = f->ld_cache, n_kv = pos0 + T;
    int64_t ld_kv = nh * (hp->qk_nope_dim + hp->v_head_dim);
    dsv3_op_copy_args ca = {.src = cache, .dst = s->lat, .src_dtype = f->kv_dtype,
                            .dst_dtype = DSV3_DTYPE_F32, .rows = n_kv, .cols = row,
                            .ld_src = row, .ld_dst = row};
    int rc = dsv3__fwd_op(f, DSV3_OP_COPY, &ca);
    if (!rc)
        rc = dsv3__fwd_matmul(f, &w->kv_b, s->lat, row, s->kvd, ld_kv, n_kv, 0);
    if (rc)
        return rc;
    dsv3_op_mha_args a = {
        .q = s->q, .kv = s->kvd, .k_rope = s->lat + hp->kv_lora_rank, .out = s->ao,
        .T = T, .pos0 = pos0, .n_heads = nh, .d_nope = hp->qk_nope_dim,
        .d_rope = hp->qk_rope_dim, .d_v = hp->v_head_dim,
        .ldq = nh * dsv3__hp_qk_head_dim(hp), .ld_kv = ld_kv, .ld_kr = row,
        .ld_out = nh * hp->v_head_dim, .scale = f->m->fwd->attn_scale,
    };
    return dsv3__fwd_op(f, DSV3_OP_MHA, &a);
}

int dsv3__mla_block(const dsv3__fwd *f, int32_t layer, void *cache, int64_t T, int64_t pos0)
{
    const dsv3_hparams *hp = &f->m->hp;
    const dsv3_layer_weights *w = &f->m->w.layers[layer];
    const dsv3_fwd_scratch *s = f->s;
    int64_t d = hp->hidden_size;
    int rc;
    if ((rc = dsv3__fwd_rmsnorm(f, &w->attn_norm, s->h, d, s->xn, d, T, d)) ||
        (rc = query(f, w, T, pos0)) || (rc = latent(f, w, cache, T, pos0)))
        return rc;
    rc = f->naive ? attn_naive(f, w, cache, T, pos0) : attn_absorbed(f, layer, cache, T, pos0);
    if (rc)
        return rc;
    /* h += W_o concat_h(o_h) */
    return dsv3__fwd_matmul(f, &w->o, s->ao, hp->n_heads * hp->v_head_dim, s->h, d, T, 1);
}
