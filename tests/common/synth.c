/*
 * synth.c - deterministic synthetic checkpoints (C port of
 * tests/reference/synth.py; the recipe is specified in
 * tests/reference/README.md). Every value is computed in double with plain
 * IEEE operations (no contraction into fused multiply-adds: see meson.build)
 * and rounded to float, then to BF16, so the bytes match the Python writer.
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "st_writer.h"
#include "synth.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define NAME_MAX_ 160
#define DIM_MAX ((int64_t)1 << 26)

/* ---- primitives ---------------------------------------------------------------------- */

uint64_t synth_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

uint64_t synth_fnv1a64(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001B3ULL;
    }
    return h;
}

uint16_t synth_f32_to_bf16(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    b += 0x7FFFu + ((b >> 16) & 1u);
    return (uint16_t)(b >> 16);
}

static double unit(uint64_t r)
{
    return (double)(r >> 11) * 0x1p-53;
}

static int fail(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t cap, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65537 > cap) {
            cap = (n + 65537) * 2;
            char *nb = realloc(buf, cap);
            if (!nb)
                break;
            buf = nb;
        }
        size_t r = fread(buf + n, 1, 65536, f);
        n += r;
        if (r < 65536) {
            fclose(f);
            buf[n] = '\0';
            *len = n;
            return buf;
        }
    }
    free(buf);
    fclose(f);
    return NULL;
}

/* ---- configuration ----------------------------------------------------------------------- */

typedef struct shape {
    int64_t V, d, f_d, f_m, L, K_d, freq, D, n_h, r_q, r_kv, d_n, d_r, d_v, E, E_s, G;
    int bias;
} shape;

/* Integer member: absent -> def (or an error when def < 0), null -> 0. */
static int get_int(const dsv3_json *root, const char *key, int64_t def, int64_t *out, char *err,
                   size_t cap)
{
    const dsv3_json *n = dsv3__json_get(root, key);
    if (!n) {
        if (def < 0)
            return fail(err, cap, "config: missing \"%s\"", key);
        *out = def;
        return 0;
    }
    if (n->type == DSV3_JSON_NULL) {
        *out = 0;
        return 0;
    }
    if (!dsv3__json_int64(n, out) || *out < 0 || *out > DIM_MAX)
        return fail(err, cap, "config: \"%s\" is not an integer in [0, %lld]", key,
                    (long long)DIM_MAX);
    return 0;
}

static int is_moe(const shape *s, int64_t l)
{
    if (s->E == 0)
        return 0;
    if (l >= s->L) {
        for (int64_t i = 0; i < s->L; i++)
            if (is_moe(s, i))
                return 1;
        return 0;
    }
    return l >= s->K_d && l % s->freq == 0;
}

static int check_shape(const shape *s, char *err, size_t cap)
{
    if (!s->V || !s->d || !s->L || !s->n_h || !s->r_kv || !s->d_n || !s->d_r || !s->d_v)
        return fail(err, cap, "config: a required size is zero");
    if (!s->freq)
        return fail(err, cap, "config: moe_layer_freq is zero");
    if (s->E && (!s->f_m || !s->G || s->E % s->G))
        return fail(err, cap, "config: n_routed_experts must be a multiple of n_group and "
                              "moe_intermediate_size non-zero");
    for (int64_t l = 0; l < s->L + s->D; l++)
        if (!is_moe(s, l) && !s->f_d)
            return fail(err, cap, "config: intermediate_size is zero but layer %lld is dense",
                        (long long)l);
    if (s->n_h * (s->d_n + s->d_v) > DIM_MAX || s->E_s * s->f_m > DIM_MAX)
        return fail(err, cap, "config: sizes too large");
    return 0;
}

static int load_shape(const char *path, shape *s, char **text, char *err, size_t cap)
{
    size_t len = 0;
    *text = read_text(path, &len);
    if (!*text)
        return fail(err, cap, "cannot read %s", path);
    dsv3__alloc a;
    dsv3__alloc_init(&a, NULL);
    dsv3_json_doc doc;
    dsv3__err e;
    if (dsv3__json_parse(&a, *text, len, &doc, &e) != DSV3_OK) {
        fail(err, cap, "%s: %s", path, e.msg);
        return -1;
    }
    const dsv3_json *r = doc.root;
    int rc = r->type == DSV3_JSON_OBJECT ? 0 : fail(err, cap, "%s: not a JSON object", path);
    struct { const char *key; int64_t def; int64_t *dst; } f[] = {
        {"vocab_size", -1, &s->V}, {"hidden_size", -1, &s->d}, {"intermediate_size", 0, &s->f_d},
        {"moe_intermediate_size", 0, &s->f_m}, {"num_hidden_layers", -1, &s->L},
        {"first_k_dense_replace", 0, &s->K_d}, {"moe_layer_freq", 1, &s->freq},
        {"num_nextn_predict_layers", 0, &s->D}, {"num_attention_heads", -1, &s->n_h},
        {"q_lora_rank", 0, &s->r_q}, {"kv_lora_rank", -1, &s->r_kv},
        {"qk_nope_head_dim", -1, &s->d_n}, {"qk_rope_head_dim", -1, &s->d_r},
        {"v_head_dim", -1, &s->d_v}, {"n_routed_experts", 0, &s->E},
        {"n_shared_experts", 0, &s->E_s}, {"n_group", 1, &s->G},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0] && rc == 0; i++)
        rc = get_int(r, f[i].key, f[i].def, f[i].dst, err, cap);
    if (rc == 0) {
        if (s->G == 0)
            s->G = 1;
        s->bias = dsv3__json_streq(dsv3__json_get(r, "topk_method"), "noaux_tc");
        rc = check_shape(s, err, cap);
    }
    dsv3__json_free(&doc);
    return rc;
}

/* ---- the tensor set ------------------------------------------------------------------- */

enum { K_LINEAR, K_FP8, K_SCALE, K_NORM, K_BIAS, K_COPY };

typedef struct spec {
    char name[NAME_MAX_];
    char src[NAME_MAX_]; /* K_SCALE: its weight; K_COPY: the tensor copied */
    const char *dtype;
    int kind;
    int ndim;
    int64_t dims[2];
    double sigma;
    int64_t per_group; /* K_BIAS: experts per group (0: no group offset) */
} spec;

typedef struct plan {
    spec *s;
    size_t n, cap;
    int fp8;
    int bad; /* a name did not fit or memory ran out */
} plan;

static spec *add(plan *p, const char *name, const char *dtype, int kind, int64_t rows,
                 int64_t cols)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        spec *ns = realloc(p->s, cap * sizeof *ns);
        if (!ns) {
            p->bad = 1;
            return NULL;
        }
        p->s = ns;
        p->cap = cap;
    }
    spec *t = &p->s[p->n];
    memset(t, 0, sizeof *t);
    if (strlen(name) >= NAME_MAX_) {
        p->bad = 1;
        return NULL;
    }
    strcpy(t->name, name);
    t->dtype = dtype;
    t->kind = kind;
    t->ndim = cols ? 2 : 1;
    t->dims[0] = rows;
    t->dims[1] = cols;
    p->n++;
    return t;
}

/* A linear weight [rows, cols]; sigma <= 0 means 1/sqrt(cols). FP8 when the
 * plan is fp8 and the tensor is a projection. */
static void lin(plan *p, const char *name, int64_t rows, int64_t cols, double sigma, int proj)
{
    double sig = sigma > 0 ? sigma : 1.0 / sqrt((double)cols);
    if (p->fp8 && proj) {
        /* set each entry before the next add(), which may move the array */
        spec *t = add(p, name, "F8_E4M3", K_FP8, rows, cols);
        if (t)
            t->sigma = sig;
        char sn[NAME_MAX_ + 16];
        snprintf(sn, sizeof sn, "%s_scale_inv", name);
        spec *sc = add(p, sn, "F32", K_SCALE, (rows + 127) / 128, (cols + 127) / 128);
        if (sc) {
            sc->sigma = sig;
            strcpy(sc->src, name);
        }
    } else {
        spec *t = add(p, name, "BF16", K_LINEAR, rows, cols);
        if (t)
            t->sigma = sig;
    }
}

/* buf = prefix + rest (buf has NAME_MAX_ bytes); marks the plan bad when
 * the name does not fit. */
static void pfx(plan *p, char *buf, const char *prefix, const char *rest)
{
    int n = snprintf(buf, NAME_MAX_, "%s%s", prefix, rest);
    if (n < 0 || n >= NAME_MAX_)
        p->bad = 1;
}

static void mlp(plan *p, const shape *s, const char *prefix, int64_t f)
{
    char n[NAME_MAX_];
    pfx(p, n, prefix, "gate_proj.weight");
    lin(p, n, f, s->d, 0, 1);
    pfx(p, n, prefix, "up_proj.weight");
    lin(p, n, f, s->d, 0, 1);
    pfx(p, n, prefix, "down_proj.weight");
    lin(p, n, s->d, f, 0, 1);
}

static void attention(plan *p, const shape *s, const char *a)
{
    char n[NAME_MAX_];
    int64_t d_q = s->d_n + s->d_r;
    if (s->r_q) {
        pfx(p, n, a, "q_a_proj.weight");
        lin(p, n, s->r_q, s->d, 0, 1);
        pfx(p, n, a, "q_a_layernorm.weight");
        add(p, n, "BF16", K_NORM, s->r_q, 0);
        pfx(p, n, a, "q_b_proj.weight");
        lin(p, n, s->n_h * d_q, s->r_q, 0, 1);
    } else {
        pfx(p, n, a, "q_proj.weight");
        lin(p, n, s->n_h * d_q, s->d, 0, 1);
    }
    pfx(p, n, a, "kv_a_proj_with_mqa.weight");
    lin(p, n, s->r_kv + s->d_r, s->d, 0, 1);
    pfx(p, n, a, "kv_a_layernorm.weight");
    add(p, n, "BF16", K_NORM, s->r_kv, 0);
    pfx(p, n, a, "kv_b_proj.weight");
    lin(p, n, s->n_h * (s->d_n + s->d_v), s->r_kv, 0, 1);
    pfx(p, n, a, "o_proj.weight");
    lin(p, n, s->d, s->n_h * s->d_v, 0, 1);
}

static void moe(plan *p, const shape *s, const char *lp)
{
    char n[NAME_MAX_], e[NAME_MAX_];
    pfx(p, n, lp, "mlp.gate.weight");
    lin(p, n, s->E, s->d, 3.0 / sqrt((double)s->d), 0);
    if (s->bias) {
        pfx(p, n, lp, "mlp.gate.e_score_correction_bias");
        spec *t = add(p, n, "F32", K_BIAS, s->E, 0);
        if (t)
            t->per_group = s->G > 1 ? s->E / s->G : 0;
    }
    for (int64_t j = 0; j < s->E; j++) {
        int k = snprintf(e, sizeof e, "%smlp.experts.%lld.", lp, (long long)j);
        if (k < 0 || k >= (int)sizeof e)
            p->bad = 1;
        else
            mlp(p, s, e, s->f_m);
    }
    if (s->E_s) {
        pfx(p, n, lp, "mlp.shared_experts.");
        mlp(p, s, n, s->E_s * s->f_m);
    }
}

static void mtp_extras(plan *p, const shape *s, const char *lp)
{
    char n[NAME_MAX_];
    spec *t;
    pfx(p, n, lp, "enorm.weight");
    add(p, n, "BF16", K_NORM, s->d, 0);
    pfx(p, n, lp, "hnorm.weight");
    add(p, n, "BF16", K_NORM, s->d, 0);
    pfx(p, n, lp, "eh_proj.weight");
    lin(p, n, s->d, 2 * s->d, 0, 0);
    pfx(p, n, lp, "embed_tokens.weight");
    if ((t = add(p, n, "BF16", K_COPY, s->V, s->d)))
        strcpy(t->src, "model.embed_tokens.weight");
    pfx(p, n, lp, "shared_head.norm.weight");
    add(p, n, "BF16", K_NORM, s->d, 0);
    pfx(p, n, lp, "shared_head.head.weight");
    if ((t = add(p, n, "BF16", K_COPY, s->V, s->d)))
        strcpy(t->src, "lm_head.weight");
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const spec *)a)->name, ((const spec *)b)->name);
}

static int build_plan(const shape *s, int fp8, plan *p, char *err, size_t cap)
{
    memset(p, 0, sizeof *p);
    p->fp8 = fp8;
    lin(p, "model.embed_tokens.weight", s->V, s->d, 1.0, 0);
    lin(p, "lm_head.weight", s->V, s->d, 0, 0);
    add(p, "model.norm.weight", "BF16", K_NORM, s->d, 0);
    for (int64_t l = 0; l < s->L + s->D && !p->bad; l++) {
        char lp[NAME_MAX_], n[NAME_MAX_];
        int k = snprintf(lp, sizeof lp, "model.layers.%lld.", (long long)l);
        if (k < 0 || k >= (int)sizeof lp)
            p->bad = 1;
        pfx(p, n, lp, "input_layernorm.weight");
        add(p, n, "BF16", K_NORM, s->d, 0);
        pfx(p, n, lp, "post_attention_layernorm.weight");
        add(p, n, "BF16", K_NORM, s->d, 0);
        pfx(p, n, lp, "self_attn.");
        attention(p, s, n);
        if (is_moe(s, l)) {
            moe(p, s, lp);
        } else {
            pfx(p, n, lp, "mlp.");
            mlp(p, s, n, s->f_d);
        }
        if (l >= s->L)
            mtp_extras(p, s, lp);
    }
    if (p->bad) {
        free(p->s);
        p->s = NULL;
        return fail(err, cap, "out of memory or tensor name too long");
    }
    qsort(p->s, p->n, sizeof *p->s, by_name);
    return 0;
}

static size_t elem_size(const spec *t)
{
    return t->kind == K_FP8 ? 1 : (t->kind == K_SCALE || t->kind == K_BIAS) ? 4 : 2;
}

static uint64_t numel(const spec *t)
{
    return (uint64_t)t->dims[0] * (uint64_t)(t->ndim == 2 ? t->dims[1] : 1);
}

static const spec *find(const plan *p, const char *name)
{
    spec key;
    snprintf(key.name, sizeof key.name, "%s", name);
    return bsearch(&key, p->s, p->n, sizeof *p->s, by_name);
}

/* ---- values ----------------------------------------------------------------------------- */

static void gen(const spec *t, uint64_t seed, void *out)
{
    uint64_t st = synth_fnv1a64(SYNTH_FNV_OFFSET, t->name, strlen(t->name)) ^ seed;
    uint64_t n = numel(t);
    uint16_t *o16 = out;
    float *o32 = out;
    uint8_t *o8 = out;
    if (t->kind == K_LINEAR) {
        double amp = sqrt(3.0) * t->sigma;
        for (uint64_t i = 0; i < n; i++) {
            double v = 2.0 * unit(synth_splitmix64(&st)) - 1.0;
            o16[i] = synth_f32_to_bf16((float)(v * amp));
        }
    } else if (t->kind == K_NORM) {
        for (uint64_t i = 0; i < n; i++) {
            double v = 2.0 * unit(synth_splitmix64(&st)) - 1.0;
            double w = 0.2 * v;
            o16[i] = synth_f32_to_bf16((float)(1.0 + w));
        }
    } else if (t->kind == K_BIAS) {
        for (uint64_t i = 0; i < n; i++) {
            double v = 2.0 * unit(synth_splitmix64(&st)) - 1.0;
            double b = 0.1 * v;
            if (t->per_group && i % (uint64_t)t->per_group != 0)
                b = b - 0.7;
            o32[i] = (float)b;
        }
    } else if (t->kind == K_SCALE) {
        double c = 0.25 * t->sigma;
        for (uint64_t i = 0; i < n; i++) {
            double v = 0.5 + unit(synth_splitmix64(&st));
            o32[i] = (float)(c * v);
        }
    } else { /* K_FP8 */
        for (uint64_t i = 0; i < n; i++) {
            uint64_t r = synth_splitmix64(&st);
            o8[i] = (uint8_t)(((r & 1) << 7) | (((r >> 1) % 11) << 3) | ((r >> 5) & 7));
        }
    }
}

static uint64_t hash_header(uint64_t h, const char *name, const char *dtype, int ndim,
                            const int64_t *dims)
{
    char buf[NAME_MAX_ + 96];
    int n = snprintf(buf, sizeof buf, "%s\n%s\n%lld", name, dtype, (long long)dims[0]);
    for (int i = 1; i < ndim && n > 0 && (size_t)n < sizeof buf; i++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, ",%lld", (long long)dims[i]);
    if (n > 0 && (size_t)n < sizeof buf - 1)
        buf[n++] = '\n';
    return synth_fnv1a64(h, buf, n > 0 ? (size_t)n : 0);
}

/* ---- writing --------------------------------------------------------------------------- */

static int variant_fp8(const char *variant, int *fp8, char *err, size_t cap)
{
    if (variant && !strcmp(variant, "bf16"))
        *fp8 = 0;
    else if (variant && !strcmp(variant, "fp8"))
        *fp8 = 1;
    else
        return fail(err, cap, "variant must be \"bf16\" or \"fp8\"");
    return 0;
}

static void summarize(const plan *p, synth_info *info)
{
    memset(info, 0, sizeof *info);
    info->n_tensors = (int64_t)p->n;
    for (size_t i = 0; i < p->n; i++) {
        info->n_bytes += numel(&p->s[i]) * elem_size(&p->s[i]);
        if (p->s[i].kind != K_SCALE)
            info->n_params += (int64_t)numel(&p->s[i]);
    }
}

int synth_plan(const char *config_path, const char *variant, synth_info *info, char *err,
               size_t errcap)
{
    int fp8 = 0;
    shape s;
    char *text = NULL;
    plan p;
    if (variant_fp8(variant, &fp8, err, errcap) || load_shape(config_path, &s, &text, err, errcap) ||
        build_plan(&s, fp8, &p, err, errcap)) {
        free(text);
        return -1;
    }
    summarize(&p, info);
    free(p.s);
    free(text);
    return 0;
}

static const char QUANT[] = ",\n  \"quantization_config\": {\n    \"activation_scheme\": \"dynamic\",\n"
                            "    \"fmt\": \"e4m3\",\n    \"quant_method\": \"fp8\",\n"
                            "    \"weight_block_size\": [128, 128]\n  }\n}\n";

static int write_config(const char *out_dir, const char *text, int fp8, char *err, size_t cap)
{
    size_t len = strlen(text);
    if (fp8) {
        char *end = strrchr(text, '}');
        if (!end)
            return fail(err, cap, "config text has no closing brace");
        len = (size_t)(end - text);
        while (len && strchr(" \t\r\n\v\f", text[len - 1]))
            len--;
    }
    char *path = NULL;
    if (asprintf(&path, "%s/config.json", out_dir) < 0)
        return fail(err, cap, "out of memory");
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(text, 1, len, f) == len;
    if (ok && fp8)
        ok = fwrite(QUANT, 1, sizeof QUANT - 1, f) == sizeof QUANT - 1;
    if (f && fclose(f) != 0)
        ok = 0;
    int rc = ok ? 0 : fail(err, cap, "cannot write %s", path);
    free(path);
    return rc;
}

/* Generate every tensor in name order into w, hashing as we go. */
static int fill(const plan *p, uint64_t seed, st_writer *w, uint64_t *hash, char *err, size_t cap)
{
    uint64_t h = SYNTH_FNV_OFFSET;
    for (size_t i = 0; i < p->n; i++) {
        const spec *t = &p->s[i];
        const spec *g = t;
        if (t->kind == K_COPY && !(g = find(p, t->src)))
            return fail(err, cap, "no tensor %s to copy", t->src);
        size_t nb = (size_t)(numel(t) * elem_size(t));
        void *buf = malloc(nb ? nb : 1);
        if (!buf)
            return fail(err, cap, "out of memory (%zu bytes for %s)", nb, t->name);
        gen(g, seed, buf);
        h = hash_header(h, t->name, t->dtype, t->ndim, t->dims);
        h = synth_fnv1a64(h, buf, nb);
        int rc = st_add(w, t->name, t->dtype, t->ndim, t->dims, buf, nb);
        free(buf);
        if (rc)
            return fail(err, cap, "out of memory adding %s", t->name);
    }
    *hash = h;
    return 0;
}

int synth_write(const char *config_path, const char *variant, uint64_t seed, const char *out_dir,
                int n_files, synth_info *info, char *err, size_t errcap)
{
    int fp8 = 0;
    shape s;
    char *text = NULL;
    plan p = {0};
    st_writer *w = NULL;
    int rc = -1;
    if (!out_dir || variant_fp8(variant, &fp8, err, errcap) ||
        load_shape(config_path, &s, &text, err, errcap) || build_plan(&s, fp8, &p, err, errcap))
        goto done;
    if (n_files <= 0)
        n_files = fp8 ? 3 : 1;
    if ((size_t)n_files > p.n) {
        fail(err, errcap, "%d files for %zu tensors", n_files, p.n);
        goto done;
    }
    summarize(&p, info);
    if (!(w = st_new())) {
        fail(err, errcap, "out of memory");
        goto done;
    }
    if (fill(&p, seed, w, &info->hash, err, errcap))
        goto done;
    if (n_files == 1) {
        char *path = NULL;
        if (asprintf(&path, "%s/model.safetensors", out_dir) < 0) {
            fail(err, errcap, "out of memory");
            goto done;
        }
        rc = st_write(w, path);
        if (rc)
            fail(err, errcap, "cannot write %s", path);
        free(path);
    } else {
        rc = st_write_sharded(w, out_dir, n_files);
        if (rc)
            fail(err, errcap, "cannot write the shards in %s", out_dir);
    }
    if (rc == 0)
        rc = write_config(out_dir, text, fp8, err, errcap);
done:
    st_free(w);
    free(p.s);
    free(text);
    return rc;
}
