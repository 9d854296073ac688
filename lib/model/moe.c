/*
 * moe.c - feed-forward blocks (ARCHITECTURE.md 4): the dense SwiGLU MLP and
 * DeepSeekMoE (router, routed experts, shared experts).
 * SPDX-License-Identifier: MIT
 */
#include "model.h"

/* out (+)= down(silu(gate x) * up x) for T rows of s->xn. */
static int swiglu_mlp(const dsv3__fwd *f, const dsv3_mlp_weights *w, float *out, int64_t T,
                      int accumulate)
{
    const dsv3_fwd_scratch *s = f->s;
    int64_t d = f->m->hp.hidden_size, width = w->gate.ne[0];
    int rc;
    if ((rc = dsv3__fwd_matmul(f, &w->gate, s->xn, d, s->fg, width, T, 0)) ||
        (rc = dsv3__fwd_matmul(f, &w->up, s->xn, d, s->fu, width, T, 0)))
        return rc;
    dsv3_op_swiglu_args sa = {.g = s->fg, .u = s->fu, .y = s->fg, .n = T * width};
    if ((rc = dsv3__fwd_op(f, DSV3_OP_SWIGLU, &sa)))
        return rc;
    return dsv3__fwd_matmul(f, &w->down, s->fg, width, out, d, T, accumulate);
}

static void route_args(const dsv3_hparams *hp, const dsv3_layer_weights *w,
                       dsv3_op_route_args *a)
{
    a->n_experts = hp->n_routed_experts;
    a->ld = hp->n_routed_experts;
    a->k = hp->n_experts_per_tok;
    a->n_group = hp->n_group > 0 ? hp->n_group : 1;
    a->topk_group = hp->topk_group > 0 ? hp->topk_group : a->n_group;
    a->scoring = hp->scoring == DSV3_SCORING_SIGMOID ? DSV3_ROUTE_SIGMOID : DSV3_ROUTE_SOFTMAX;
    a->bias = NULL;
    switch (hp->topk_method) {
    case DSV3_TOPK_NOAUX_TC: /* bias for selection, groups by top-2 sum */
        a->bias = w->router_bias.data;
        a->groups = DSV3_GROUPS_TOP2;
        break;
    case DSV3_TOPK_GROUP_LIMITED_GREEDY: /* groups by max score */
        a->groups = DSV3_GROUPS_MAX;
        break;
    default:
        a->groups = DSV3_GROUPS_NONE;
        break;
    }
    a->renorm = hp->norm_topk_prob && hp->n_experts_per_tok > 1;
    a->scaling = hp->routed_scaling;
}

/* The routed experts on the experts' own backend (DSV3_PLACE_EXPERTS_ON_CPU):
 * the op's input rows, choices and weights go there, its output rows come
 * back into s->moe. Only activations cross; the weights stay put. */
static int moe_apart(const dsv3__fwd *f, const dsv3_layer_weights *w, int64_t T)
{
    const dsv3_model *m = f->m;
    const dsv3_backend *eb = &m->be_cpu;
    const dsv3_fwd_scratch *s = f->s;
    int64_t d = m->hp.hidden_size, k = m->hp.n_experts_per_tok;
    size_t rows = (size_t)(T * d) * sizeof(float), sel = (size_t)(T * k) * 4;
    int rc;
    if ((rc = dsv3__fwd_xfer(f, f->be, s->buf, s->xn, eb, s->xbuf, s->xx, rows)) ||
        (rc = dsv3__fwd_xfer(f, f->be, s->buf, s->ridx, eb, s->xbuf, s->xidx, sel)) ||
        (rc = dsv3__fwd_xfer(f, f->be, s->buf, s->rw, eb, s->xbuf, s->xw, sel)))
        return rc;
    dsv3_op_moe_args ma = {.gate = &w->exp_gate, .up = &w->exp_up, .down = &w->exp_down, .x = s->xx,
                           .idx = s->xidx, .weight = s->xw, .y = s->xy, .T = T, .k = k,
                           .ldx = d, .ldy = d};
    if ((rc = dsv3__fwd_op_on(f, eb, DSV3_OP_MOE, &ma)))
        return rc;
    return dsv3__fwd_xfer(f, eb, s->xbuf, s->xy, f->be, s->buf, s->moe, rows);
}

/* s->moe = sum_j w_j Expert_j(x) (ascending expert) + Shared(x); h += s->moe */
static int moe(const dsv3__fwd *f, const dsv3_layer_weights *w, int64_t T)
{
    const dsv3_hparams *hp = &f->m->hp;
    const dsv3_fwd_scratch *s = f->s;
    int64_t d = hp->hidden_size, E = hp->n_routed_experts;
    int rc = dsv3__fwd_matmul(f, &w->router, s->xn, d, s->rlog, E, T, 0);
    if (rc)
        return rc;
    dsv3_op_route_args ra = {.logits = s->rlog, .idx = s->ridx, .weight = s->rw, .T = T};
    route_args(hp, w, &ra);
    if ((rc = dsv3__fwd_op(f, DSV3_OP_ROUTE, &ra)))
        return rc;
    if (f->m->fwd->experts_apart) {
        rc = moe_apart(f, w, T);
    } else {
        dsv3_op_moe_args ma = {.gate = &w->exp_gate, .up = &w->exp_up, .down = &w->exp_down,
                               .x = s->xn, .idx = s->ridx, .weight = s->rw, .y = s->moe,
                               .T = T, .k = hp->n_experts_per_tok, .ldx = d, .ldy = d};
        rc = dsv3__fwd_op(f, DSV3_OP_MOE, &ma);
    }
    if (rc)
        return rc;
    if (hp->n_shared_experts > 0 && (rc = swiglu_mlp(f, &w->shared, s->moe, T, 1)))
        return rc;
    dsv3_op_add_args aa = {.a = s->h, .b = s->moe, .y = s->h, .n = T * d};
    return dsv3__fwd_op(f, DSV3_OP_ADD, &aa);
}

int dsv3__ffn_block(const dsv3__fwd *f, int32_t layer, int64_t T)
{
    const dsv3_layer_weights *w = &f->m->w.layers[layer];
    const dsv3_fwd_scratch *s = f->s;
    int64_t d = f->m->hp.hidden_size;
    int rc = dsv3__fwd_rmsnorm(f, &w->ffn_norm, s->h, d, s->xn, d, T, d);
    if (rc)
        return rc;
    if (dsv3__hp_layer_is_moe(&f->m->hp, layer))
        return moe(f, w, T);
    return swiglu_mlp(f, &w->mlp, s->h, T, 1);
}
