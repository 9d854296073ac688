/*
 * tensors.c - the table of tensors a model holds: Hugging Face names,
 * expected shapes (ARCHITECTURE.md 3.1, 4, 5.1, 6.2) and their place in
 * dsv3_weights. Shared by the converter and the loader.
 * SPDX-License-Identifier: MIT
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "model.h"

typedef struct spec_list {
    dsv3__tspec *v;
    size_t n, cap;
} spec_list;

static void add(spec_list *l, int32_t kind, uint32_t flags, int32_t layer, dsv3_tensor *dst,
                int32_t n_dims, int64_t a, int64_t b, int64_t c, const char *fmt, ...)
    DSV3__PRINTF(10, 11);

static void add(spec_list *l, int32_t kind, uint32_t flags, int32_t layer, dsv3_tensor *dst,
                int32_t n_dims, int64_t a, int64_t b, int64_t c, const char *fmt, ...)
{
    if (l->n >= l->cap)
        return; /* sized exactly by the caller; cannot happen */
    dsv3__tspec *s = &l->v[l->n++];
    memset(s, 0, sizeof *s);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->name, sizeof s->name, fmt, ap);
    va_end(ap);
    s->kind = kind;
    s->flags = flags;
    s->layer = layer;
    s->n_dims = n_dims;
    s->ne[0] = a;
    s->ne[1] = b;
    s->ne[2] = c;
    s->dst = dst;
}

#define T(field) (lw ? &lw->field : NULL)

static void attention(spec_list *l, const dsv3_hparams *hp, int32_t i, uint32_t fl,
                      dsv3_layer_weights *lw)
{
    int64_t d = hp->hidden_size, nh = hp->n_heads, dq = dsv3__hp_qk_head_dim(hp);
    int64_t rq = hp->q_lora_rank, rkv = hp->kv_lora_rank;
#define A "model.layers.%d.self_attn.%s"
    if (rq > 0) {
        add(l, DSV3__TK_PROJ, fl, i, T(q_a), 2, rq, d, 1, A, i, "q_a_proj.weight");
        add(l, DSV3__TK_VECTOR, fl, i, T(q_a_norm), 1, rq, 1, 1, A, i, "q_a_layernorm.weight");
        add(l, DSV3__TK_PROJ, fl, i, T(q_b), 2, nh * dq, rq, 1, A, i, "q_b_proj.weight");
    } else {
        add(l, DSV3__TK_PROJ, fl, i, T(q), 2, nh * dq, d, 1, A, i, "q_proj.weight");
    }
    add(l, DSV3__TK_PROJ, fl, i, T(kv_a), 2, rkv + hp->qk_rope_dim, d, 1, A, i,
        "kv_a_proj_with_mqa.weight");
    add(l, DSV3__TK_VECTOR, fl, i, T(kv_a_norm), 1, rkv, 1, 1, A, i, "kv_a_layernorm.weight");
    add(l, DSV3__TK_PROJ, fl, i, T(kv_b), 2, nh * (hp->qk_nope_dim + hp->v_head_dim), rkv, 1, A,
        i, "kv_b_proj.weight");
    add(l, DSV3__TK_PROJ, fl, i, T(o), 2, d, nh * hp->v_head_dim, 1, A, i, "o_proj.weight");
#undef A
}

static void mlp(spec_list *l, int32_t i, uint32_t fl, dsv3_mlp_weights *m, int64_t f, int64_t d,
                const char *part)
{
    add(l, DSV3__TK_PROJ, fl, i, m ? &m->gate : NULL, 2, f, d, 1,
        "model.layers.%d.mlp.%sgate_proj.weight", i, part);
    add(l, DSV3__TK_PROJ, fl, i, m ? &m->up : NULL, 2, f, d, 1,
        "model.layers.%d.mlp.%sup_proj.weight", i, part);
    add(l, DSV3__TK_PROJ, fl, i, m ? &m->down : NULL, 2, d, f, 1,
        "model.layers.%d.mlp.%sdown_proj.weight", i, part);
}

static void ffn(spec_list *l, const dsv3_hparams *hp, int32_t i, uint32_t fl,
                dsv3_layer_weights *lw)
{
    int64_t d = hp->hidden_size, E = hp->n_routed_experts, fm = hp->moe_intermediate_size;
    if (!dsv3__hp_layer_is_moe(hp, i)) {
        mlp(l, i, fl, T(mlp), hp->intermediate_size, d, "");
        return;
    }
    if (lw)
        lw->is_moe = 1;
    add(l, DSV3__TK_MATRIX, fl, i, T(router), 2, E, d, 1, "model.layers.%d.mlp.gate.weight", i);
    if (hp->topk_method == DSV3_TOPK_NOAUX_TC)
        add(l, DSV3__TK_VECTOR, fl, i, T(router_bias), 1, E, 1, 1,
            "model.layers.%d.mlp.gate.e_score_correction_bias", i);
    uint32_t st = fl | DSV3__TS_STACK;
    add(l, DSV3__TK_PROJ, st, i, T(exp_gate), 3, E, fm, d,
        "model.layers.%d.mlp.experts.gate_proj.weight", i);
    add(l, DSV3__TK_PROJ, st, i, T(exp_up), 3, E, fm, d,
        "model.layers.%d.mlp.experts.up_proj.weight", i);
    add(l, DSV3__TK_PROJ, st, i, T(exp_down), 3, E, d, fm,
        "model.layers.%d.mlp.experts.down_proj.weight", i);
    if (hp->n_shared_experts > 0)
        mlp(l, i, fl, T(shared), (int64_t)hp->n_shared_experts * fm, d, "shared_experts.");
}

static void mtp_extra(spec_list *l, const dsv3_hparams *hp, int32_t i, dsv3_layer_weights *lw)
{
    int64_t d = hp->hidden_size, V = hp->vocab_size;
    uint32_t fl = DSV3__TS_MTP;
    add(l, DSV3__TK_VECTOR, fl, i, T(enorm), 1, d, 1, 1, "model.layers.%d.enorm.weight", i);
    add(l, DSV3__TK_VECTOR, fl, i, T(hnorm), 1, d, 1, 1, "model.layers.%d.hnorm.weight", i);
    add(l, DSV3__TK_MATRIX, fl, i, T(eh_proj), 2, d, 2 * d, 1, "model.layers.%d.eh_proj.weight",
        i);
    add(l, DSV3__TK_MATRIX, fl | DSV3__TS_ALIASABLE, i, T(embed), 2, V, d, 1,
        "model.layers.%d.embed_tokens.weight", i);
    l->v[l->n - 1].alias_of = "model.embed_tokens.weight";
    add(l, DSV3__TK_VECTOR, fl, i, T(head_norm), 1, d, 1, 1,
        "model.layers.%d.shared_head.norm.weight", i);
    add(l, DSV3__TK_MATRIX, fl | DSV3__TS_ALIASABLE, i, T(head), 2, V, d, 1,
        "model.layers.%d.shared_head.head.weight", i);
    l->v[l->n - 1].alias_of = "lm_head.weight";
}

int dsv3__tensor_specs(const dsv3__alloc *a, const dsv3_hparams *hp, int32_t n_mtp,
                       dsv3_weights *w, dsv3__tspec **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int32_t nl = hp->n_layers + n_mtp;
    spec_list l = {NULL, 0, 3 + (size_t)nl * 24};
    l.v = dsv3__calloc(a, l.cap, sizeof *l.v);
    if (!l.v)
        return DSV3_E_NOMEM;
    if (w) {
        memset(w, 0, sizeof *w);
        w->layers = dsv3__calloc(a, (size_t)nl, sizeof *w->layers);
        if (!w->layers) {
            dsv3__free(a, l.v);
            return DSV3_E_NOMEM;
        }
        w->n_layers = nl;
    }
    int64_t d = hp->hidden_size, V = hp->vocab_size;
    add(&l, DSV3__TK_MATRIX, 0, -1, w ? &w->embed : NULL, 2, V, d, 1, "model.embed_tokens.weight");
    for (int32_t i = 0; i < nl; i++) {
        dsv3_layer_weights *lw = w ? &w->layers[i] : NULL;
        uint32_t fl = i >= hp->n_layers ? DSV3__TS_MTP : 0;
        if (fl)
            mtp_extra(&l, hp, i, lw);
        add(&l, DSV3__TK_VECTOR, fl, i, T(attn_norm), 1, d, 1, 1,
            "model.layers.%d.input_layernorm.weight", i);
        attention(&l, hp, i, fl, lw);
        add(&l, DSV3__TK_VECTOR, fl, i, T(ffn_norm), 1, d, 1, 1,
            "model.layers.%d.post_attention_layernorm.weight", i);
        ffn(&l, hp, i, fl, lw);
    }
    add(&l, DSV3__TK_VECTOR, 0, -1, w ? &w->norm : NULL, 1, d, 1, 1, "model.norm.weight");
    add(&l, DSV3__TK_MATRIX, 0, -1, w ? &w->head : NULL, 2, V, d, 1, "lm_head.weight");
    *out = l.v;
    *n = l.n;
    return DSV3_OK;
}

void dsv3__tspec_expert_name(const dsv3__tspec *s, int32_t j, char *buf, size_t cap)
{
    const char *p = strstr(s->name, ".experts.");
    if (!p) {
        snprintf(buf, cap, "%s", s->name);
        return;
    }
    size_t pre = (size_t)(p - s->name) + strlen(".experts.");
    snprintf(buf, cap, "%.*s%d.%s", (int)pre, s->name, j, s->name + pre);
}
