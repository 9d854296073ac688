/*
 * hparams.c - hyper-parameters: Hugging Face config.json parsing, the
 * validation rules of ARCHITECTURE.md 1.3, and the manifest's key-value form.
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "../core/json.h"
#include "../format/format.h"
#include "model.h"

/* ---- field table shared by config.json and the manifest ------------------ */

enum ftype { F_I32, F_F32, F_BOOL, F_SCORING, F_TOPK };

typedef struct field {
    const char *key; /* HF config.json key ("rope_scaling.x" inside that object) */
    int type;
    size_t off;
} field;

#define FI(k, m) {k, F_I32, offsetof(dsv3_hparams, m)}
#define FF(k, m) {k, F_F32, offsetof(dsv3_hparams, m)}

static const field fields[] = {
    FI("vocab_size", vocab_size),
    FI("hidden_size", hidden_size),
    FI("intermediate_size", intermediate_size),
    FI("moe_intermediate_size", moe_intermediate_size),
    FI("num_hidden_layers", n_layers),
    FI("first_k_dense_replace", first_k_dense),
    FI("moe_layer_freq", moe_layer_freq),
    FI("num_attention_heads", n_heads),
    FI("q_lora_rank", q_lora_rank),
    FI("kv_lora_rank", kv_lora_rank),
    FI("qk_nope_head_dim", qk_nope_dim),
    FI("qk_rope_head_dim", qk_rope_dim),
    FI("v_head_dim", v_head_dim),
    FI("n_routed_experts", n_routed_experts),
    FI("n_shared_experts", n_shared_experts),
    FI("num_experts_per_tok", n_experts_per_tok),
    FI("n_group", n_group),
    FI("topk_group", topk_group),
    {"scoring_func", F_SCORING, offsetof(dsv3_hparams, scoring)},
    {"topk_method", F_TOPK, offsetof(dsv3_hparams, topk_method)},
    {"norm_topk_prob", F_BOOL, offsetof(dsv3_hparams, norm_topk_prob)},
    FI("num_nextn_predict_layers", n_mtp),
    FI("max_position_embeddings", max_position),
    FI("bos_token_id", bos_token),
    FI("eos_token_id", eos_token),
    FF("routed_scaling_factor", routed_scaling),
    FF("rms_norm_eps", rms_eps),
    FF("rope_theta", rope_theta),
    {"rope_scaling.yarn", F_BOOL, offsetof(dsv3_hparams, rope_yarn)},
    FI("rope_scaling.original_max_position_embeddings", yarn_orig_ctx),
    FF("rope_scaling.factor", yarn_factor),
    FF("rope_scaling.beta_fast", yarn_beta_fast),
    FF("rope_scaling.beta_slow", yarn_beta_slow),
    FF("rope_scaling.mscale", yarn_mscale),
    FF("rope_scaling.mscale_all_dim", yarn_mscale_all_dim),
};

static const char *const scoring_names[] = {"softmax", "sigmoid"};
static const char *const topk_names[] = {"greedy", "group_limited_greedy", "noaux_tc"};

static int32_t *fi32(dsv3_hparams *hp, const field *f)
{
    return (int32_t *)(void *)((char *)hp + f->off);
}

static float *ff32(dsv3_hparams *hp, const field *f)
{
    return (float *)(void *)((char *)hp + f->off);
}

static const field *find_field(const char *key)
{
    for (size_t i = 0; i < DSV3__ARRAY_LEN(fields); i++)
        if (!strcmp(fields[i].key, key))
            return &fields[i];
    return NULL;
}

/* ---- validation ------------------------------------------------------------ */

#define BAD(...) dsv3__seterr(err, DSV3_E_FORMAT, __VA_ARGS__)

static int check_range(const char *name, int64_t v, int64_t lo, int64_t hi, dsv3__err *err)
{
    if (v < lo || v > hi)
        return BAD("hyper-parameter %s = %lld is outside [%lld, %lld]", name, (long long)v,
                   (long long)lo, (long long)hi);
    return DSV3_OK;
}

static int check_dims(const dsv3_hparams *hp, dsv3__err *err)
{
    const struct {
        const char *n;
        int32_t v;
        int64_t lo, hi;
    } r[] = {
        {"vocab_size", hp->vocab_size, 1, 1 << 22},
        {"hidden_size", hp->hidden_size, 1, 1 << 16},
        {"intermediate_size", hp->intermediate_size, 1, 1 << 20},
        {"num_hidden_layers", hp->n_layers, 1, 1024},
        {"first_k_dense_replace", hp->first_k_dense, 0, hp->n_layers},
        {"moe_layer_freq", hp->moe_layer_freq, 1, 1024},
        {"num_attention_heads", hp->n_heads, 1, 1024},
        {"q_lora_rank", hp->q_lora_rank, 0, 1 << 16},
        {"kv_lora_rank", hp->kv_lora_rank, 1, 1 << 16},
        {"qk_nope_head_dim", hp->qk_nope_dim, 1, 1024},
        {"qk_rope_head_dim", hp->qk_rope_dim, 2, 1024},
        {"v_head_dim", hp->v_head_dim, 1, 1024},
        {"n_routed_experts", hp->n_routed_experts, 0, 4096},
        {"num_nextn_predict_layers", hp->n_mtp, 0, 8},
        {"max_position_embeddings", hp->max_position, 1, 1 << 30},
        {"bos_token_id", hp->bos_token, -1, hp->vocab_size - 1},
        {"eos_token_id", hp->eos_token, -1, hp->vocab_size - 1},
    };
    for (size_t i = 0; i < DSV3__ARRAY_LEN(r); i++) {
        int rc = check_range(r[i].n, r[i].v, r[i].lo, r[i].hi, err);
        if (rc)
            return rc;
    }
    if (hp->qk_rope_dim % 2)
        return BAD("qk_rope_head_dim = %d must be even (RoPE rotates pairs)", hp->qk_rope_dim);
    return DSV3_OK;
}

static int check_moe(const dsv3_hparams *hp, dsv3__err *err)
{
    int32_t E = hp->n_routed_experts, G = hp->n_group;
    if (E == 0) {
        if (hp->topk_method == DSV3_TOPK_NOAUX_TC && hp->first_k_dense < hp->n_layers)
            return BAD("topk_method noaux_tc needs routed experts (n_routed_experts is 0)");
        return DSV3_OK;
    }
    const struct {
        const char *n;
        int32_t v;
        int64_t lo, hi;
    } r[] = {
        {"moe_intermediate_size", hp->moe_intermediate_size, 1, 1 << 20},
        {"n_shared_experts", hp->n_shared_experts, 0, 64},
        {"num_experts_per_tok", hp->n_experts_per_tok, 1, E},
        {"n_group", G, 1, E},
        {"topk_group", hp->topk_group, 1, G},
    };
    for (size_t i = 0; i < DSV3__ARRAY_LEN(r); i++) {
        int rc = check_range(r[i].n, r[i].v, r[i].lo, r[i].hi, err);
        if (rc)
            return rc;
    }
    if (E % G)
        return BAD("n_routed_experts (%d) is not a multiple of n_group (%d)", E, G);
    if (hp->topk_method == DSV3_TOPK_NOAUX_TC && G > 1 && E / G < 2)
        return BAD("noaux_tc routing scores groups by their top-2 experts: needs at least 2 "
                   "experts per group (%d experts, %d groups)",
                   E, G);
    if ((int64_t)hp->topk_group * (E / G) < hp->n_experts_per_tok)
        return BAD("topk_group (%d) groups of %d experts cannot hold num_experts_per_tok (%d)",
                   hp->topk_group, E / G, hp->n_experts_per_tok);
    return DSV3_OK;
}

static bool pos_finite(float v)
{
    return isfinite(v) && v > 0;
}

int dsv3__hparams_validate(const dsv3_hparams *hp, dsv3__err *err)
{
    int rc = check_dims(hp, err);
    if (!rc)
        rc = check_moe(hp, err);
    if (rc)
        return rc;
    if (hp->scoring != DSV3_SCORING_SOFTMAX && hp->scoring != DSV3_SCORING_SIGMOID)
        return BAD("bad scoring function id %d", hp->scoring);
    if (hp->topk_method < DSV3_TOPK_GREEDY || hp->topk_method > DSV3_TOPK_NOAUX_TC)
        return BAD("bad top-k method id %d", hp->topk_method);
    if (!pos_finite(hp->rms_eps) || hp->rms_eps >= 1)
        return BAD("rms_norm_eps = %g is not in (0, 1)", (double)hp->rms_eps);
    if (!pos_finite(hp->rope_theta))
        return BAD("rope_theta = %g must be positive", (double)hp->rope_theta);
    if (!pos_finite(hp->routed_scaling))
        return BAD("routed_scaling_factor = %g must be positive", (double)hp->routed_scaling);
    if (hp->rope_yarn) {
        if (!pos_finite(hp->yarn_factor) || hp->yarn_orig_ctx < 1 ||
            !pos_finite(hp->yarn_beta_fast) || !pos_finite(hp->yarn_beta_slow) ||
            !isfinite(hp->yarn_mscale) || !isfinite(hp->yarn_mscale_all_dim) ||
            hp->yarn_mscale < 0 || hp->yarn_mscale_all_dim < 0)
            return BAD("rope_scaling (yarn): factor, original_max_position_embeddings and "
                       "beta_fast/beta_slow must be positive, mscales finite and >= 0");
    }
    return DSV3_OK;
}

/* ---- config.json ------------------------------------------------------------- */

/* Keys with no effect on inference. Training-only keys of ARCHITECTURE.md
 * 1.1, then descriptive metadata. */
static const char *const ignorable[] = {
    "aux_loss_alpha", "seq_aux", "ep_size", "initializer_range", "pretraining_tp",
    "use_cache", "attention_dropout",
    "architectures", "auto_map", "transformers_version", "torch_dtype", "dtype",
    "_name_or_path", "pad_token_id", "head_dim",
};

/* Keys checked for a supported value but otherwise unused. */
static int check_validated(const dsv3_json *n, const char *key, const dsv3__log *log,
                           dsv3__err *err, bool *handled)
{
    *handled = true;
    bool b;
    if (!strcmp(key, "hidden_act")) {
        if (!dsv3__json_string(n))
            return BAD("config.json: hidden_act must be a string");
        if (!dsv3__json_streq(n, "silu"))
            return dsv3__seterr(err, DSV3_E_UNSUPPORTED,
                                "config.json: hidden_act \"%s\" is not supported (only silu)",
                                dsv3__json_string(n));
    } else if (!strcmp(key, "attention_bias") || !strcmp(key, "tie_word_embeddings")) {
        if (!dsv3__json_bool(n, &b))
            return BAD("config.json: %s must be true or false", key);
        if (b)
            return dsv3__seterr(err, DSV3_E_UNSUPPORTED, "config.json: %s = true is not supported",
                                key);
    } else if (!strcmp(key, "rope_interleave")) {
        if (!dsv3__json_bool(n, &b))
            return BAD("config.json: rope_interleave must be true or false");
        if (!b)
            return dsv3__seterr(err, DSV3_E_UNSUPPORTED,
                                "config.json: rope_interleave = false is not supported (DeepSeek "
                                "checkpoints rotate interleaved pairs)");
    } else if (!strcmp(key, "num_key_value_heads")) {
        int64_t v;
        if (n->type != DSV3_JSON_NULL && (!dsv3__json_int64(n, &v) || v < 1))
            return BAD("config.json: num_key_value_heads must be a positive integer");
        /* MLA has one shared latent: the value is meaningless (not GQA) */
    } else if (!strcmp(key, "model_type")) {
        if (!dsv3__json_string(n))
            return BAD("config.json: model_type must be a string");
        if (!dsv3__json_streq(n, "deepseek_v3") && !dsv3__json_streq(n, "deepseek_v2"))
            dsv3__logf(log, DSV3_LOG_WARN,
                       "config.json: model_type \"%s\" is not deepseek_v3/deepseek_v2; "
                       "reading it as DeepSeek-V3 architecture",
                       dsv3__json_string(n));
    } else {
        *handled = false;
    }
    return DSV3_OK;
}

static int quant_config(const dsv3_json *q, const dsv3__log *log, dsv3__err *err)
{
    if (q->type == DSV3_JSON_NULL)
        return DSV3_OK;
    if (q->type != DSV3_JSON_OBJECT)
        return BAD("config.json: quantization_config must be an object");
    for (size_t i = 0; i < q->n_children; i++) {
        const dsv3_json *c = &q->children[i];
        const char *k = c->key;
        if (!strcmp(k, "quant_method") || !strcmp(k, "fmt")) {
            const char *want = k[0] == 'q' ? "fp8" : "e4m3";
            if (!dsv3__json_streq(c, want))
                return dsv3__seterr(err, DSV3_E_UNSUPPORTED,
                                    "config.json: quantization_config.%s must be \"%s\"", k, want);
        } else if (!strcmp(k, "weight_block_size")) {
            int64_t a, b;
            if (c->n_children != 2 || !dsv3__json_int64(dsv3__json_at(c, 0), &a) ||
                !dsv3__json_int64(dsv3__json_at(c, 1), &b) || a != 128 || b != 128)
                return dsv3__seterr(err, DSV3_E_UNSUPPORTED,
                                    "config.json: quantization_config.weight_block_size must be "
                                    "[128, 128]");
        } else if (!strcmp(k, "activation_scheme") || !strcmp(k, "scale_fmt")) {
            /* activation quantization of FP8 GEMMs: libdsv3 computes in F32 */
            if (c->type != DSV3_JSON_STRING && c->type != DSV3_JSON_NULL)
                return BAD("config.json: quantization_config.%s must be a string", k);
        } else {
            dsv3__logf(log, DSV3_LOG_WARN, "config.json: ignoring unknown key quantization_config.%s",
                       k);
        }
    }
    return DSV3_OK;
}

static int rope_scaling(const dsv3_json *r, dsv3_hparams *hp, const dsv3__log *log,
                        dsv3__err *err)
{
    if (r->type == DSV3_JSON_NULL)
        return DSV3_OK;
    if (r->type != DSV3_JSON_OBJECT)
        return BAD("config.json: rope_scaling must be an object or null");
    const dsv3_json *t = dsv3__json_get(r, "type");
    if (!t)
        t = dsv3__json_get(r, "rope_type");
    if (!t || !dsv3__json_string(t))
        return BAD("config.json: rope_scaling has no type");
    if (dsv3__json_streq(t, "default") && r->n_children == 1)
        return DSV3_OK; /* plain RoPE, as Hugging Face writes it */
    if (!dsv3__json_streq(t, "yarn"))
        return dsv3__seterr(err, DSV3_E_UNSUPPORTED,
                            "config.json: rope_scaling type \"%s\" is not supported (only yarn)",
                            dsv3__json_string(t));
    hp->rope_yarn = 1;
    for (size_t i = 0; i < r->n_children; i++) {
        const dsv3_json *c = &r->children[i];
        if (!strcmp(c->key, "type") || !strcmp(c->key, "rope_type"))
            continue;
        char full[96];
        snprintf(full, sizeof full, "rope_scaling.%s", c->key);
        const field *f = find_field(full);
        if (!f || f->type == F_BOOL) {
            dsv3__logf(log, DSV3_LOG_WARN, "config.json: ignoring unknown key %s", full);
            continue;
        }
        double v;
        if (!dsv3__json_double(c, &v))
            return BAD("config.json: %s must be a number", full);
        if (f->type == F_I32) {
            if (v != floor(v) || v < 0 || v > INT32_MAX)
                return BAD("config.json: %s must be a non-negative integer", full);
            *fi32(hp, f) = (int32_t)v;
        } else {
            *ff32(hp, f) = (float)v;
        }
    }
    return DSV3_OK;
}

/* One top-level key of the table. */
static int set_field(const field *f, const dsv3_json *n, dsv3_hparams *hp, dsv3__err *err)
{
    int64_t v;
    double d;
    bool b;
    switch (f->type) {
    case F_I32:
        if (n->type == DSV3_JSON_ARRAY && !strcmp(f->key, "eos_token_id") && n->n_children)
            n = &n->children[0]; /* several EOS ids: the first is the main one */
        if (n->type == DSV3_JSON_NULL) {
            bool nullable = !strcmp(f->key, "q_lora_rank") || !strcmp(f->key, "bos_token_id") ||
                            !strcmp(f->key, "eos_token_id") || strstr(f->key, "expert") ||
                            strstr(f->key, "group");
            if (!nullable)
                return BAD("config.json: %s must not be null", f->key);
            /* no token: -1; no query compression or experts: 0; one group */
            *fi32(hp, f) = strstr(f->key, "token_id") ? -1 : strstr(f->key, "group") ? 1 : 0;
            return DSV3_OK;
        }
        if (!dsv3__json_int64(n, &v) || v < INT32_MIN || v > INT32_MAX)
            return BAD("config.json: %s must be an integer", f->key);
        *fi32(hp, f) = (int32_t)v;
        return DSV3_OK;
    case F_F32:
        if (!dsv3__json_double(n, &d))
            return BAD("config.json: %s must be a number", f->key);
        *ff32(hp, f) = (float)d;
        return DSV3_OK;
    case F_BOOL:
        if (!dsv3__json_bool(n, &b))
            return BAD("config.json: %s must be true or false", f->key);
        *fi32(hp, f) = b;
        return DSV3_OK;
    default: {
        const char *s = dsv3__json_string(n);
        const char *const *names = f->type == F_SCORING ? scoring_names : topk_names;
        size_t nn = f->type == F_SCORING ? 2 : 3;
        for (size_t i = 0; s && i < nn; i++)
            if (!strcmp(s, names[i])) {
                *fi32(hp, f) = (int32_t)i;
                return DSV3_OK;
            }
        if (!s)
            return BAD("config.json: %s must be a string", f->key);
        return dsv3__seterr(err, DSV3_E_UNSUPPORTED, "config.json: %s \"%s\" is not supported",
                            f->key, s);
    }
    }
}

static void set_defaults(dsv3_hparams *hp, bool v2)
{
    memset(hp, 0, sizeof *hp);
    hp->moe_layer_freq = 1;
    hp->n_group = 1;
    hp->topk_group = 1;
    hp->scoring = v2 ? DSV3_SCORING_SOFTMAX : DSV3_SCORING_SIGMOID;
    hp->topk_method = v2 ? DSV3_TOPK_GREEDY : DSV3_TOPK_NOAUX_TC;
    hp->norm_topk_prob = v2 ? 0 : 1;
    hp->routed_scaling = 1.0f;
    hp->rms_eps = 1e-6f;
    hp->rope_theta = 10000.0f;
    hp->max_position = 4096;
    hp->bos_token = -1;
    hp->eos_token = -1;
    hp->yarn_factor = 1.0f;
    hp->yarn_orig_ctx = 4096;
    hp->yarn_beta_fast = 32.0f;
    hp->yarn_beta_slow = 1.0f;
    hp->yarn_mscale = 1.0f;
    hp->yarn_mscale_all_dim = 0.0f;
}

static const char *const required_keys[] = {
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
    "v_head_dim",
};

static int config_keys(const dsv3_json *root, dsv3_hparams *hp, const dsv3__log *log,
                       dsv3__err *err)
{
    for (size_t i = 0; i < root->n_children; i++) {
        const dsv3_json *n = &root->children[i];
        const char *k = n->key;
        bool handled;
        int rc = check_validated(n, k, log, err, &handled);
        if (rc || handled) {
            if (rc)
                return rc;
            continue;
        }
        const field *f = find_field(k);
        if (f && !strchr(k, '.'))
            rc = set_field(f, n, hp, err);
        else if (!strcmp(k, "rope_scaling"))
            rc = rope_scaling(n, hp, log, err);
        else if (!strcmp(k, "quantization_config"))
            rc = quant_config(n, log, err);
        else {
            bool ign = false;
            for (size_t j = 0; j < DSV3__ARRAY_LEN(ignorable); j++)
                ign = ign || !strcmp(k, ignorable[j]);
            if (!ign)
                dsv3__logf(log, DSV3_LOG_WARN, "config.json: ignoring unknown key \"%s\"", k);
        }
        if (rc)
            return rc;
    }
    return DSV3_OK;
}

int dsv3__hparams_from_config(const dsv3__alloc *a, const char *json, size_t len,
                              dsv3_hparams *hp, const dsv3__log *log, dsv3__err *err)
{
    dsv3_json_doc doc;
    dsv3__err jerr;
    int rc = dsv3__json_parse(a, json, len, &doc, &jerr);
    if (rc)
        return dsv3__seterr(err, rc, "config.json: %s", rc == DSV3_E_NOMEM ? "out of memory" : jerr.msg);
    const dsv3_json *root = doc.root;
    if (root->type != DSV3_JSON_OBJECT) {
        dsv3__json_free(&doc);
        return BAD("config.json: not a JSON object");
    }
    set_defaults(hp, dsv3__json_streq(dsv3__json_get(root, "model_type"), "deepseek_v2"));
    for (size_t i = 0; i < DSV3__ARRAY_LEN(required_keys); i++)
        if (!dsv3__json_get(root, required_keys[i])) {
            dsv3__json_free(&doc);
            return BAD("config.json: required key \"%s\" is missing", required_keys[i]);
        }
    rc = config_keys(root, hp, log, err);
    if (!rc && hp->n_routed_experts > 0 && !dsv3__json_get(root, "num_experts_per_tok"))
        rc = BAD("config.json: num_experts_per_tok is missing (the model has routed experts)");
    if (!rc && hp->n_routed_experts > 0 && !dsv3__json_get(root, "moe_intermediate_size"))
        rc = BAD("config.json: moe_intermediate_size is missing (the model has routed experts)");
    dsv3__json_free(&doc);
    if (rc)
        return rc;
    dsv3__err v;
    rc = dsv3__hparams_validate(hp, &v);
    if (rc)
        dsv3__seterr(err, rc, "config.json: %s", v.msg);
    return rc;
}

/* ---- manifest key-value form ------------------------------------------------ */

void dsv3__hparams_to_kv(const dsv3_hparams *hpc, struct dsv3__mbuild *b)
{
    dsv3_hparams hp = *hpc;
    for (size_t i = 0; i < DSV3__ARRAY_LEN(fields); i++) {
        const field *f = &fields[i];
        int32_t iv = *fi32(&hp, f);
        switch (f->type) {
        case F_I32:
            dsv3__mbuild_kv_i64(b, DSV3__SEC_HPARAMS, f->key, iv);
            break;
        case F_F32:
            dsv3__mbuild_kv_f64(b, DSV3__SEC_HPARAMS, f->key, (double)*ff32(&hp, f));
            break;
        case F_BOOL:
            dsv3__mbuild_kv_bool(b, DSV3__SEC_HPARAMS, f->key, iv != 0);
            break;
        default: {
            const char *s = f->type == F_SCORING ? scoring_names[iv] : topk_names[iv];
            dsv3__mbuild_kv_str(b, DSV3__SEC_HPARAMS, f->key, s, strlen(s));
        }
        }
    }
}

static int kv_field(const dsv3__kv *kv, const field *f, dsv3_hparams *hp, dsv3__err *err)
{
    static const int want[] = {DSV3__KV_I64, DSV3__KV_F64, DSV3__KV_BOOL, DSV3__KV_STR,
                               DSV3__KV_STR};
    if (kv->type != want[f->type])
        return BAD("manifest: hyper-parameter %s has the wrong type", f->key);
    switch (f->type) {
    case F_I32:
        if (kv->i < INT32_MIN || kv->i > INT32_MAX)
            return BAD("manifest: hyper-parameter %s is out of range", f->key);
        *fi32(hp, f) = (int32_t)kv->i;
        return DSV3_OK;
    case F_F32:
        *ff32(hp, f) = (float)kv->f;
        return DSV3_OK;
    case F_BOOL:
        *fi32(hp, f) = (int32_t)kv->i;
        return DSV3_OK;
    default: {
        const char *const *names = f->type == F_SCORING ? scoring_names : topk_names;
        size_t nn = f->type == F_SCORING ? 2 : 3;
        for (size_t i = 0; i < nn; i++)
            if (!strcmp(kv->s, names[i])) {
                *fi32(hp, f) = (int32_t)i;
                return DSV3_OK;
            }
        return dsv3__seterr(err, DSV3_E_UNSUPPORTED, "manifest: %s \"%s\" is not supported",
                            f->key, kv->s);
    }
    }
}

int dsv3__hparams_from_kv(const struct dsv3__kvlist *kv, dsv3_hparams *hp, const dsv3__log *log,
                          dsv3__err *err)
{
    memset(hp, 0, sizeof *hp);
    for (size_t i = 0; i < DSV3__ARRAY_LEN(fields); i++) {
        const dsv3__kv *e = dsv3__kv_find(kv, fields[i].key);
        if (!e)
            return BAD("manifest: hyper-parameter %s is missing", fields[i].key);
        int rc = kv_field(e, &fields[i], hp, err);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < kv->n; i++)
        if (!find_field(kv->items[i].key))
            dsv3__logf(log, DSV3_LOG_INFO, "manifest: ignoring hyper-parameter %s (newer writer)",
                       kv->items[i].key);
    return dsv3__hparams_validate(hp, err);
}
