/*
 * tinymodel.c - in-memory synthetic models for forward-pass tests.
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tinymodel.h"

dsv3_hparams tm_tiny_hparams(void)
{
    dsv3_hparams hp = {0};
    hp.vocab_size = 1024;
    hp.hidden_size = 128;
    hp.intermediate_size = 384;
    hp.moe_intermediate_size = 64;
    hp.n_layers = 4;
    hp.first_k_dense = 2;
    hp.moe_layer_freq = 1;
    hp.n_heads = 4;
    hp.q_lora_rank = 96;
    hp.kv_lora_rank = 64;
    hp.qk_nope_dim = 32;
    hp.qk_rope_dim = 16;
    hp.v_head_dim = 32;
    hp.n_routed_experts = 16;
    hp.n_shared_experts = 1;
    hp.n_experts_per_tok = 4;
    hp.n_group = 4;
    hp.topk_group = 2;
    hp.scoring = DSV3_SCORING_SIGMOID;
    hp.topk_method = DSV3_TOPK_NOAUX_TC;
    hp.norm_topk_prob = 1;
    hp.n_mtp = 1;
    hp.max_position = 256;
    hp.bos_token = 0;
    hp.eos_token = 1;
    hp.routed_scaling = 2.5f;
    hp.rms_eps = 1e-6f;
    hp.rope_theta = 10000;
    hp.rope_yarn = 1;
    hp.yarn_orig_ctx = 64;
    hp.yarn_factor = 4;
    hp.yarn_beta_fast = 32;
    hp.yarn_beta_slow = 1;
    hp.yarn_mscale = 1;
    hp.yarn_mscale_all_dim = 1;
    return hp;
}

uint8_t tm_f32_to_e4m3(float v)
{
    uint8_t sign = v < 0 ? 0x80 : 0;
    double a = fabs((double)v);
    if (!(a == a))
        return 0x7f;
    if (a >= 448)
        return sign | 0x7e;
    if (a < ldexp(1.0, -6)) /* subnormal: multiples of 2^-9 (code 8 = 2^-6) */
        return sign | (uint8_t)lround(a / ldexp(1.0, -9));
    int e;
    double f = frexp(a, &e); /* a = f 2^e, f in [0.5, 1) */
    e -= 1;                  /* a = (2f) 2^e, 2f in [1, 2) */
    long m = lround((2 * f - 1) * 8);
    if (m == 8) {
        m = 0;
        e++;
    }
    int field = e + 7;
    if (field > 15 || (field == 15 && m == 7))
        return sign | 0x7e;
    return sign | (uint8_t)((field << 3) | m);
}

static void *block(tm_model *t, size_t bytes)
{
    if (t->n_blocks == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->blocks = realloc(t->blocks, t->cap * sizeof *t->blocks);
    }
    void *p = calloc(1, bytes ? bytes : 1);
    t->blocks[t->n_blocks++] = p;
    return p;
}

static float urand(tm_model *t) /* uniform in [-1, 1) */
{
    t->rng = t->rng * 1664525u + 1013904223u;
    return (float)((t->rng >> 8) & 0xffffff) / 8388608.0f - 1.0f;
}

/* A matrix [E?, M, K] of uniform values with standard deviation sigma. */
static dsv3_tensor matrix(tm_model *t, int32_t dtype, int64_t E, int64_t M, int64_t K, float sigma)
{
    dsv3_tensor w = {.dtype = dtype, .backend = DSV3_BACKEND_CPU};
    w.n_dims = E ? 3 : 2;
    if (E) {
        w.ne[0] = E, w.ne[1] = M, w.ne[2] = K, w.ne[3] = 1;
    } else {
        w.ne[0] = M, w.ne[1] = K, w.ne[2] = w.ne[3] = 1;
        E = 1;
    }
    int64_t n = E * M * K;
    float a = sigma * sqrtf(3.0f);
    float *v = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        v[i] = a * urand(t);
    if (dtype == DSV3_DTYPE_F32) {
        w.data = block(t, (size_t)n * 4);
        memcpy(w.data, v, (size_t)n * 4);
    } else if (dtype == DSV3_DTYPE_BF16) {
        uint16_t *p = block(t, (size_t)n * 2);
        for (int64_t i = 0; i < n; i++)
            p[i] = dsv3__f32_to_bf16(v[i]);
        w.data = p;
    } else { /* FP8 with block scales amax / 448 */
        int64_t sm = (M + 127) / 128, sk = (K + 127) / 128;
        uint8_t *q = block(t, (size_t)n);
        float *s = block(t, (size_t)(E * sm * sk) * sizeof(float));
        for (int64_t e = 0; e < E; e++)
            for (int64_t bm = 0; bm < sm; bm++)
                for (int64_t bk = 0; bk < sk; bk++) {
                    float amax = 0;
                    for (int64_t i = bm * 128; i < M && i < bm * 128 + 128; i++)
                        for (int64_t k = bk * 128; k < K && k < bk * 128 + 128; k++)
                            amax = fmaxf(amax, fabsf(v[(e * M + i) * K + k]));
                    float sc = amax > 0 ? amax / 448.0f : 1.0f;
                    s[(e * sm + bm) * sk + bk] = sc;
                    for (int64_t i = bm * 128; i < M && i < bm * 128 + 128; i++)
                        for (int64_t k = bk * 128; k < K && k < bk * 128 + 128; k++)
                            q[(e * M + i) * K + k] = tm_f32_to_e4m3(v[(e * M + i) * K + k] / sc);
                }
        w.data = q;
        w.scale = s;
    }
    w.nbytes = (size_t)n * (dtype == DSV3_DTYPE_F32 ? 4 : dtype == DSV3_DTYPE_BF16 ? 2 : 1);
    free(v);
    return w;
}

/* An F32 vector: 1 + U(-0.2, 0.2) for norms, or spread * U(-1, 1) + shift. */
static dsv3_tensor vec(tm_model *t, int64_t n, float center, float spread)
{
    dsv3_tensor w = {.dtype = DSV3_DTYPE_F32, .n_dims = 1, .ne = {n, 1, 1, 1},
                     .backend = DSV3_BACKEND_CPU};
    float *p = block(t, (size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        p[i] = center + spread * urand(t);
    w.data = p;
    w.nbytes = (size_t)n * 4;
    return w;
}

static dsv3_mlp_weights mlp(tm_model *t, int32_t dt, int64_t d, int64_t f)
{
    dsv3_mlp_weights m;
    m.gate = matrix(t, dt, 0, f, d, 1 / sqrtf((float)d));
    m.up = matrix(t, dt, 0, f, d, 1 / sqrtf((float)d));
    m.down = matrix(t, dt, 0, d, f, 1 / sqrtf((float)f));
    return m;
}

static void make_layer(tm_model *t, const dsv3_hparams *hp, int32_t dt, int32_t l,
                       dsv3_layer_weights *w)
{
    int64_t d = hp->hidden_size, nh = hp->n_heads, dq = hp->qk_nope_dim + hp->qk_rope_dim;
    int64_t rkv = hp->kv_lora_rank, E = hp->n_routed_experts, fm = hp->moe_intermediate_size;
    float sd = 1 / sqrtf((float)d);
    w->attn_norm = vec(t, d, 1, 0.2f);
    w->ffn_norm = vec(t, d, 1, 0.2f);
    if (hp->q_lora_rank > 0) {
        w->q_a = matrix(t, dt, 0, hp->q_lora_rank, d, sd);
        w->q_a_norm = vec(t, hp->q_lora_rank, 1, 0.2f);
        w->q_b = matrix(t, dt, 0, nh * dq, hp->q_lora_rank, 1 / sqrtf((float)hp->q_lora_rank));
    } else {
        w->q = matrix(t, dt, 0, nh * dq, d, sd);
    }
    w->kv_a = matrix(t, dt, 0, rkv + hp->qk_rope_dim, d, sd);
    w->kv_a_norm = vec(t, rkv, 1, 0.2f);
    w->kv_b = matrix(t, dt, 0, nh * (hp->qk_nope_dim + hp->v_head_dim), rkv,
                     1 / sqrtf((float)rkv));
    w->o = matrix(t, dt, 0, d, nh * hp->v_head_dim, 1 / sqrtf((float)(nh * hp->v_head_dim)));
    w->is_moe = dsv3__hp_layer_is_moe(hp, l);
    if (w->is_moe) {
        w->router = matrix(t, DSV3_DTYPE_BF16, 0, E, d, 3 * sd);
        if (hp->topk_method == DSV3_TOPK_NOAUX_TC) {
            w->router_bias = vec(t, E, 0, 0.1f);
            float *b = w->router_bias.data; /* one group pushed negative */
            int64_t per = E / (hp->n_group > 0 ? hp->n_group : 1);
            for (int64_t i = 0; i < per; i++)
                b[per + i] -= 0.7f;
        }
        w->exp_gate = matrix(t, dt, E, fm, d, sd);
        w->exp_up = matrix(t, dt, E, fm, d, sd);
        w->exp_down = matrix(t, dt, E, d, fm, 1 / sqrtf((float)fm));
        if (hp->n_shared_experts > 0)
            w->shared = mlp(t, dt, d, (int64_t)hp->n_shared_experts * fm);
    } else {
        w->mlp = mlp(t, dt, d, hp->intermediate_size);
    }
    if (l >= hp->n_layers) {
        w->enorm = vec(t, d, 1, 0.2f);
        w->hnorm = vec(t, d, 1, 0.2f);
        w->eh_proj = matrix(t, DSV3_DTYPE_BF16, 0, d, 2 * d, 1 / sqrtf((float)(2 * d)));
        w->head_norm = vec(t, d, 1, 0.2f);
    }
}

int tm_model_init(tm_model *t, const dsv3_hparams *hp, int32_t wdtype, int with_mtp,
                  uint32_t seed, const dsv3_allocator *alloc)
{
    memset(t, 0, sizeof *t);
    t->rng = seed;
    dsv3__alloc a;
    dsv3__alloc_init(&a, alloc);
    dsv3_model *m = dsv3__calloc(&a, 1, sizeof *m);
    m->magic = DSV3__MAGIC_MODEL;
    atomic_init(&m->refs, 1);
    m->alloc = a;
    pthread_mutex_init(&m->err_lock, NULL);
    m->hp = *hp;
    dsv3_backend_config cfg = {.struct_size = sizeof cfg, .n_threads = 1, .alloc = &m->alloc};
    dsv3__backend_open(DSV3_BACKEND_CPU, &cfg, &m->be, &m->err);
    int64_t d = hp->hidden_size;
    m->w.embed = matrix(t, DSV3_DTYPE_BF16, 0, hp->vocab_size, d, 1.0f);
    m->w.norm = vec(t, d, 1, 0.2f);
    m->w.head = matrix(t, DSV3_DTYPE_BF16, 0, hp->vocab_size, d, 1 / sqrtf((float)d));
    m->w.n_layers = hp->n_layers + (with_mtp ? hp->n_mtp : 0);
    m->w.layers = dsv3__calloc(&m->alloc, (size_t)m->w.n_layers, sizeof *m->w.layers);
    for (int32_t l = 0; l < m->w.n_layers; l++)
        make_layer(t, hp, wdtype, l, &m->w.layers[l]);
    t->m = m;
    return dsv3__fwd_model_init(m);
}

void tm_model_release(tm_model *t)
{
    dsv3_model_free(t->m);
    for (size_t i = 0; i < t->n_blocks; i++)
        free(t->blocks[i]);
    free(t->blocks);
    memset(t, 0, sizeof *t);
}
