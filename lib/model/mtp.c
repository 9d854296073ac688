/*
 * mtp.c - the multi-token-prediction module (ARCHITECTURE.md 5.2):
 * u = W_eh [enorm(Emb(t_{i+1})) ; hnorm(h_i)], one full decoder block with
 * its own latent cache, shared_head.norm, head.
 * SPDX-License-Identifier: MIT
 */
#include "model.h"

int dsv3__mtp_forward(const dsv3__fwd *f, void *cache, const float *hid, const int32_t *tokens,
                      int64_t n, int64_t pos0, int64_t r0, int64_t n_out, float *out_host)
{
    const dsv3_model *m = f->m;
    const dsv3_fwd_scratch *s = f->s;
    int32_t L = m->hp.n_layers;
    const dsv3_layer_weights *w = &m->w.layers[L];
    int64_t d = m->hp.hidden_size;
    int rc = dsv3__fwd_upload_tokens(f, tokens, n);
    if (rc)
        return rc;
    /* e = Emb(t_{i+1}) (the module's copy of the table when it has one) */
    dsv3_op_embed_args ea = {.table = w->embed.data ? &w->embed : &m->w.embed,
                             .tokens = s->tok, .out = s->h, .n = n, .ld_out = d};
    if ((rc = dsv3__fwd_op(f, DSV3_OP_EMBED, &ea)))
        return rc;
    /* cat = [enorm(e) ; hnorm(h)], embedding half first */
    if ((rc = dsv3__fwd_rmsnorm(f, &w->enorm, s->h, d, s->cat, 2 * d, n, d)) ||
        (rc = dsv3__fwd_rmsnorm(f, &w->hnorm, hid, d, s->cat + d, 2 * d, n, d)) ||
        (rc = dsv3__fwd_matmul(f, &w->eh_proj, s->cat, 2 * d, s->h, d, n, 0)))
        return rc;
    if ((rc = dsv3__layer_forward(f, L, cache, n, pos0)))
        return rc;
    if ((rc = dsv3__fwd_rmsnorm(f, &w->head_norm, s->h, d, s->xn, d, n, d)))
        return rc;
    return dsv3__fwd_logits(f, w->head.data ? &w->head : &m->w.head, s->xn, r0, n_out, out_host);
}
