/*
 * ckpt_gen.c - random-weight checkpoints of the TINY_CONFIGS.md configs.
 * Initialisation follows TINY_CONFIGS.md section 5: linear weights
 * N(0, 1/in), norms 1 + U(-0.2, 0.2), router N(0, 9/d), router bias
 * U(-0.1, 0.1) with the first group of every MoE layer pushed down by 0.7,
 * MTP embedding/head copies of the main ones.
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_gen.h"
#include "st_writer.h"

const cg_config cg_tiny = {"tiny", 1024, 128, 384, 64, 4, 2, 4, 96, 64, 32, 16, 32,
                           16, 1, 4, 4, 2, 1, 256, 4.0, 64, 1.0, 0, 1};
const cg_config cg_tiny_noq = {"tiny-noq", 1024, 128, 384, 64, 4, 2, 4, 0, 64, 32, 16, 32,
                               16, 1, 4, 4, 2, 1, 256, 4.0, 64, 1.0, 0, 1};
const cg_config cg_mini = {"mini", 32768, 1024, 2816, 256, 8, 2, 8, 512, 512, 128, 64, 128,
                           32, 1, 4, 8, 4, 1, 16384, 4.0, 4096, 1.0, 0, 1};

/* ---- numbers --------------------------------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t next64(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double unif(rng *r) /* (0, 1) */
{
    return ((double)(next64(r) >> 11) + 0.5) / 9007199254740992.0;
}

static double gauss(rng *r)
{
    return sqrt(-2.0 * log(unif(r))) * cos(6.283185307179586 * unif(r));
}

float cg_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t cg_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1); /* round to nearest even (finite inputs) */
    return (uint16_t)(u >> 16);
}

float cg_fp8_decode(uint8_t b)
{
    int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    float v;
    if (e == 15 && m == 7)
        return NAN;
    if (e == 0)
        v = ldexpf((float)m / 8.0f, -6);
    else
        v = ldexpf(1.0f + (float)m / 8.0f, e - 7);
    return s ? -v : v;
}

/* The 127 non-negative finite e4m3 values in code order (increasing). */
static double fp8_values[127];
static int fp8_ready;

uint8_t cg_fp8_encode(float x)
{
    if (isnan(x))
        return 0x7f;
    if (!fp8_ready) {
        for (int c = 0; c <= 0x7e; c++)
            fp8_values[c] = (double)cg_fp8_decode((uint8_t)c);
        fp8_ready = 1;
    }
    uint8_t sign = signbit(x) ? 0x80 : 0;
    double a = fabs((double)x);
    int lo = 0, hi = 0x7e; /* nearest value: the last value <= a, or the next one */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (fp8_values[mid] <= a)
            lo = mid;
        else
            hi = mid - 1;
    }
    int code = lo;
    if (lo < 0x7e) {
        double dl = a - fp8_values[lo], dh = fp8_values[lo + 1] - a;
        if (dh < dl || (dh == dl && (lo & 1)))
            code = lo + 1; /* a tie goes to the even code */
    }
    return sign | (uint8_t)code;
}

/* ---- tensors ----------------------------------------------------------------- */

typedef struct gen {
    const cg_opts *o;
    rng r;
    cg_tensor_fn fn;
    void *ud;
    float *embed, *head; /* kept for the MTP copies */
    int rc;
} gen;

static void emit(gen *g, const char *name, const char *dtype, int nd, const int64_t *shape,
                 const void *data, size_t n)
{
    if (!g->rc)
        g->rc = g->fn(name, dtype, nd, shape, data, n, g->ud);
}

/* F32 values stored as BF16 (or F32 with CG_F32). */
static void emit_float(gen *g, const char *name, int nd, const int64_t *shape, const float *v,
                       size_t n, int force_f32)
{
    if (g->o->dtype == CG_F32 || force_f32) {
        emit(g, name, "F32", nd, shape, v, n * 4);
        return;
    }
    uint16_t *h = malloc(n * 2 + 1);
    for (size_t i = 0; i < n; i++)
        h[i] = cg_f32_to_bf16(v[i]);
    emit(g, name, "BF16", nd, shape, h, n * 2);
    free(h);
}

/* A projection [rows, cols]: BF16 values; FP8 = those values quantized in
 * 128x128 blocks with scale = amax / 448. */
static void emit_proj(gen *g, const char *name, int64_t rows, int64_t cols, double sigma)
{
    size_t n = (size_t)(rows * cols);
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        float x = (float)(gauss(&g->r) * sigma);
        v[i] = g->o->dtype == CG_F32 ? x : cg_bf16_to_f32(cg_f32_to_bf16(x));
    }
    int64_t shape[2] = {rows, cols};
    if (g->o->dtype != CG_FP8) {
        emit_float(g, name, 2, shape, v, n, 0);
        free(v);
        return;
    }
    int64_t sr = (rows + 127) / 128, sc = (cols + 127) / 128;
    float *s = calloc((size_t)(sr * sc), sizeof *s);
    uint8_t *q = malloc(n);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            float a = fabsf(v[i * cols + j]);
            if (a > s[(i / 128) * sc + j / 128])
                s[(i / 128) * sc + j / 128] = a;
        }
    for (int64_t b = 0; b < sr * sc; b++)
        s[b] /= 448.0f;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            float sb = s[(i / 128) * sc + j / 128];
            q[i * cols + j] = sb > 0 ? cg_fp8_encode(v[i * cols + j] / sb) : 0;
        }
    emit(g, name, "F8_E4M3", 2, shape, q, n);
    char sname[160];
    snprintf(sname, sizeof sname, "%s_scale_inv", name);
    int64_t sshape[2] = {sr, sc};
    emit(g, sname, "F32", 2, sshape, s, (size_t)(sr * sc) * 4);
    free(q);
    free(s);
    free(v);
}

static void emit_norm(gen *g, const char *name, int64_t n)
{
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)(1.0 + 0.4 * (unif(&g->r) - 0.5));
    emit_float(g, name, 1, &n, v, (size_t)n, 0);
    free(v);
}

/* A plain matrix (embedding, head, router, eh_proj); *keep receives a copy. */
static void emit_matrix(gen *g, const char *name, int64_t rows, int64_t cols, double sigma,
                        float **keep)
{
    size_t n = (size_t)(rows * cols);
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(gauss(&g->r) * sigma);
    int64_t shape[2] = {rows, cols};
    emit_float(g, name, 2, shape, v, n, 0);
    if (keep)
        *keep = v;
    else
        free(v);
}

#define NAME(...) (snprintf(nm, sizeof nm, __VA_ARGS__), nm)

static void attention(gen *g, int l)
{
    const cg_config *c = g->o->cfg;
    char nm[160];
    int64_t d = c->hidden, dq = c->nope + c->rope;
    if (c->q_lora) {
        emit_proj(g, NAME("model.layers.%d.self_attn.q_a_proj.weight", l), c->q_lora, d,
                  1 / sqrt((double)d));
        emit_norm(g, NAME("model.layers.%d.self_attn.q_a_layernorm.weight", l), c->q_lora);
        emit_proj(g, NAME("model.layers.%d.self_attn.q_b_proj.weight", l), c->heads * dq,
                  c->q_lora, 1 / sqrt((double)c->q_lora));
    } else {
        emit_proj(g, NAME("model.layers.%d.self_attn.q_proj.weight", l), c->heads * dq, d,
                  1 / sqrt((double)d));
    }
    emit_proj(g, NAME("model.layers.%d.self_attn.kv_a_proj_with_mqa.weight", l),
              c->kv_lora + c->rope, d, 1 / sqrt((double)d));
    emit_norm(g, NAME("model.layers.%d.self_attn.kv_a_layernorm.weight", l), c->kv_lora);
    emit_proj(g, NAME("model.layers.%d.self_attn.kv_b_proj.weight", l),
              c->heads * (c->nope + c->v_head), c->kv_lora, 1 / sqrt((double)c->kv_lora));
    emit_proj(g, NAME("model.layers.%d.self_attn.o_proj.weight", l), d, c->heads * c->v_head,
              1 / sqrt((double)(c->heads * c->v_head)));
}

static void mlp(gen *g, const char *prefix, int64_t f, int64_t d)
{
    char nm[200];
    emit_proj(g, NAME("%sgate_proj.weight", prefix), f, d, 1 / sqrt((double)d));
    emit_proj(g, NAME("%sup_proj.weight", prefix), f, d, 1 / sqrt((double)d));
    emit_proj(g, NAME("%sdown_proj.weight", prefix), d, f, 1 / sqrt((double)f));
}

static void moe(gen *g, int l)
{
    const cg_config *c = g->o->cfg;
    char nm[160], pre[128];
    int64_t d = c->hidden;
    emit_matrix(g, NAME("model.layers.%d.mlp.gate.weight", l), c->experts, d, 3 / sqrt((double)d),
                NULL);
    float *b = malloc((size_t)c->experts * sizeof *b);
    int per_group = c->experts / c->groups;
    for (int e = 0; e < c->experts; e++)
        b[e] = (float)(0.2 * (unif(&g->r) - 0.5)) - (e < per_group ? 0.7f : 0.0f);
    int64_t ne = c->experts;
    emit(g, NAME("model.layers.%d.mlp.gate.e_score_correction_bias", l), "F32", 1, &ne, b,
         (size_t)c->experts * 4);
    free(b);
    for (int e = 0; e < c->experts; e++) {
        snprintf(pre, sizeof pre, "model.layers.%d.mlp.experts.%d.", l, e);
        mlp(g, pre, c->moe_inter, d);
    }
    if (c->shared) {
        snprintf(pre, sizeof pre, "model.layers.%d.mlp.shared_experts.", l);
        mlp(g, pre, (int64_t)c->shared * c->moe_inter, d);
    }
}

static void mtp_copy(gen *g, const char *name, const float *src)
{
    const cg_config *c = g->o->cfg;
    if (g->o->mtp_copies == CG_MTP_OMIT)
        return;
    if (g->o->mtp_copies == CG_MTP_DISTINCT) {
        emit_matrix(g, name, c->vocab, c->hidden, 1.0, NULL);
        return;
    }
    int64_t shape[2] = {c->vocab, c->hidden};
    emit_float(g, name, 2, shape, src, (size_t)c->vocab * (size_t)c->hidden, 0);
}

static void layer(gen *g, int l)
{
    const cg_config *c = g->o->cfg;
    char nm[160];
    int64_t d = c->hidden;
    if (l >= c->layers) {
        emit_norm(g, NAME("model.layers.%d.enorm.weight", l), d);
        emit_norm(g, NAME("model.layers.%d.hnorm.weight", l), d);
        emit_matrix(g, NAME("model.layers.%d.eh_proj.weight", l), d, 2 * d,
                    1 / sqrt(2.0 * (double)d), NULL);
        mtp_copy(g, NAME("model.layers.%d.embed_tokens.weight", l), g->embed);
        emit_norm(g, NAME("model.layers.%d.shared_head.norm.weight", l), d);
        mtp_copy(g, NAME("model.layers.%d.shared_head.head.weight", l), g->head);
    }
    emit_norm(g, NAME("model.layers.%d.input_layernorm.weight", l), d);
    attention(g, l);
    emit_norm(g, NAME("model.layers.%d.post_attention_layernorm.weight", l), d);
    if (l < c->dense) {
        char pre[64];
        snprintf(pre, sizeof pre, "model.layers.%d.mlp.", l);
        mlp(g, pre, c->inter, d);
    } else {
        moe(g, l);
    }
}

int cg_generate(const cg_opts *o, cg_tensor_fn fn, void *ud)
{
    const cg_config *c = o->cfg;
    gen g = {o, {o->seed * 0x2545f4914f6cdd1dull + 1}, fn, ud, NULL, NULL, 0};
    emit_matrix(&g, "model.embed_tokens.weight", c->vocab, c->hidden, 1.0, &g.embed);
    /* the head is drawn before the layers so the MTP copy can repeat it */
    rng keep = g.r;
    g.r.s ^= 0x5eedull;
    size_t n = (size_t)c->vocab * (size_t)c->hidden;
    g.head = malloc(n * sizeof *g.head);
    for (size_t i = 0; i < n; i++)
        g.head[i] = (float)(gauss(&g.r) / sqrt((double)c->hidden));
    g.r = keep;
    for (int l = 0; l < c->layers + c->mtp && !g.rc; l++)
        layer(&g, l);
    emit_norm(&g, "model.norm.weight", c->hidden);
    int64_t shape[2] = {c->vocab, c->hidden};
    emit_float(&g, "lm_head.weight", 2, shape, g.head, n, 0);
    free(g.embed);
    free(g.head);
    return g.rc;
}

char *cg_config_json(const cg_config *c)
{
    char *s = NULL, ql[16];
    if (c->q_lora)
        snprintf(ql, sizeof ql, "%d", c->q_lora);
    else
        snprintf(ql, sizeof ql, "null");
    if (asprintf(&s,
                 "{\n  \"architectures\": [\"DeepseekV3ForCausalLM\"],\n"
                 "  \"model_type\": \"deepseek_v3\",\n  \"vocab_size\": %d,\n"
                 "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n"
                 "  \"moe_intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
                 "  \"first_k_dense_replace\": %d,\n  \"moe_layer_freq\": 1,\n"
                 "  \"num_nextn_predict_layers\": %d,\n  \"num_attention_heads\": %d,\n"
                 "  \"num_key_value_heads\": %d,\n  \"q_lora_rank\": %s,\n"
                 "  \"kv_lora_rank\": %d,\n  \"qk_nope_head_dim\": %d,\n"
                 "  \"qk_rope_head_dim\": %d,\n  \"v_head_dim\": %d,\n"
                 "  \"n_routed_experts\": %d,\n  \"n_shared_experts\": %d,\n"
                 "  \"num_experts_per_tok\": %d,\n  \"n_group\": %d,\n  \"topk_group\": %d,\n"
                 "  \"scoring_func\": \"sigmoid\",\n  \"topk_method\": \"noaux_tc\",\n"
                 "  \"norm_topk_prob\": true,\n  \"routed_scaling_factor\": 2.5,\n"
                 "  \"hidden_act\": \"silu\",\n  \"rms_norm_eps\": 1e-06,\n"
                 "  \"rope_theta\": 10000,\n  \"max_position_embeddings\": %d,\n"
                 "  \"rope_scaling\": {\n    \"type\": \"yarn\",\n    \"factor\": %g,\n"
                 "    \"original_max_position_embeddings\": %d,\n    \"beta_fast\": 32,\n"
                 "    \"beta_slow\": 1,\n    \"mscale\": %g,\n    \"mscale_all_dim\": %g\n  },\n"
                 "  \"attention_bias\": false,\n  \"tie_word_embeddings\": false,\n"
                 "  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n"
                 "  \"torch_dtype\": \"bfloat16\"\n}\n",
                 c->vocab, c->hidden, c->inter, c->moe_inter, c->layers, c->dense, c->mtp,
                 c->heads, c->heads, ql, c->kv_lora, c->nope, c->rope, c->v_head, c->experts,
                 c->shared, c->topk, c->groups, c->topk_group, c->max_pos, c->yarn_factor,
                 c->yarn_orig, c->mscale, c->mscale, c->bos, c->eos) < 0)
        return NULL;
    return s;
}

static int to_writer(const char *name, const char *dtype, int nd, const int64_t *shape,
                     const void *data, size_t n, void *ud)
{
    return st_add(ud, name, dtype, nd, shape, data, n);
}

int cg_write(const char *dir, const cg_opts *o, int n_files)
{
    st_writer *w = st_new();
    char *cfg = cg_config_json(o->cfg);
    char path[4096];
    int rc = (!w || !cfg) ? -1 : cg_generate(o, to_writer, w);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = rc ? NULL : fopen(path, "wb");
    if (!f || fputs(cfg, f) < 0)
        rc = -1;
    if (f && fclose(f))
        rc = -1;
    if (!rc && n_files == 0) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        rc = st_write(w, path);
    } else if (!rc) {
        rc = st_write_sharded(w, dir, n_files);
    }
    free(cfg);
    st_free(w);
    return rc;
}

/* ---- in-memory sets -------------------------------------------------------------- */

static int to_set(const char *name, const char *dtype, int nd, const int64_t *shape,
                  const void *data, size_t n, void *ud)
{
    cg_set *s = ud;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 256;
        cg_tensor *t = realloc(s->t, (size_t)cap * sizeof *t);
        if (!t)
            return -1;
        s->t = t;
        s->cap = cap;
    }
    cg_tensor *t = &s->t[s->n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
    t->n_dims = nd;
    for (int i = 0; i < nd && i < 4; i++)
        t->shape[i] = shape[i];
    t->data = malloc(n ? n : 1);
    if (!t->data)
        return -1;
    memcpy(t->data, data, n);
    t->nbytes = n;
    s->n++;
    return 0;
}

int cg_collect(const cg_opts *o, cg_set *s)
{
    memset(s, 0, sizeof *s);
    return cg_generate(o, to_set, s);
}

const cg_tensor *cg_find(const cg_set *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->t[i].name, name))
            return &s->t[i];
    return NULL;
}

void cg_set_free(cg_set *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->t[i].data);
    free(s->t);
    memset(s, 0, sizeof *s);
}
