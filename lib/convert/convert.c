/*
 * convert.c - Hugging Face checkpoint -> libdsv3 model directory: reads
 * config.json, the safetensors files and the tokenizer files, plans every
 * output tensor (experts stacked, FP8 kept, dequantized or quantized), and
 * streams them through the output writer.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../model/model.h"
#include "../tokenizer/tokenizer.h"
#include "convert.h"

static const dsv3_convert_params convert_defaults = {
    .struct_size = sizeof(dsv3_convert_params),
    .log_level = DSV3_LOG_INFO,
};

int dsv3_convert_params_init(dsv3_convert_params *p, size_t size)
{
    return dsv3__params_init(p, size, &convert_defaults, sizeof convert_defaults,
                             sizeof(dsv3_convert_params));
}

/* One output tensor (plus its scale tensor when FP8). */
typedef struct plan {
    const dsv3__tspec *spec;
    int32_t in_dtype, out_dtype;
    int32_t n_src;
    const unsigned char **src;   /* [n_src] */
    const unsigned char **scale; /* [n_src] FP8 source scales, or NULL */
    const dsv3__st_tensor **st;  /* [2 * n_src]: sources then scales (to release) */
    int32_t scale_dtype;
    bool alias;
} plan;

typedef struct conv {
    dsv3__alloc alloc;
    dsv3__log log;
    dsv3__err err;
    dsv3_convert_params p;
    dsv3_hparams hp;
    dsv3__stset st;
    dsv3__tspec *specs;
    size_t n_specs;
    plan *plans;
    uint64_t total;
    dsv3__outw *w;
    void *tok_blob;
    size_t tok_len;
    int32_t chat_kind;
    char *config;
    size_t config_len;
    bool planes; /* byte planes for BF16/F32 chunks */
} conv;

#define FAIL(c, code, ...) dsv3__seterr(&(c)->err, code, __VA_ARGS__)

static int check_params(conv *c, const dsv3_convert_params *params)
{
    dsv3_convert_params_init(&c->p, sizeof c->p);
    if (params) {
        int rc = dsv3__params_copy(&c->p, sizeof c->p, params, sizeof c->p);
        if (rc)
            return FAIL(c, rc, "invalid conversion params (struct_size %u)", params->struct_size);
    }
    c->log = (dsv3__log){c->p.log_fn, c->p.log_user_data, c->p.log_level};
    if (c->p.flags)
        return FAIL(c, DSV3_E_INVAL, "unknown conversion flags 0x%x", c->p.flags);
    switch (c->p.weights) {
    case DSV3_DTYPE_DEFAULT:
    case DSV3_DTYPE_F32:
    case DSV3_DTYPE_BF16:
    case DSV3_DTYPE_FP8_E4M3:
        break;
    case DSV3_DTYPE_Q8_0:
    case DSV3_DTYPE_Q4:
        return FAIL(c, DSV3_E_UNSUPPORTED,
                    "--weights %s: this converter cannot write %s weights yet (supported: f32, "
                    "bf16, fp8)",
                    dsv3__dtype_name(c->p.weights), dsv3__dtype_name(c->p.weights));
    default:
        return FAIL(c, c->p.weights == DSV3_DTYPE_F16 ? DSV3_E_UNSUPPORTED : DSV3_E_INVAL,
                    "unsupported output weight type %d", c->p.weights);
    }
    if (c->p.level < -1 || c->p.level > 22)
        return FAIL(c, DSV3_E_INVAL, "compression level %d is outside -1 ... 22", c->p.level);
    if (c->p.level == 0)
        c->p.level = 3;
    if (c->p.shard_size == 0)
        c->p.shard_size = (uint64_t)2 << 30;
    return DSV3_OK;
}

static int read_config(conv *c, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = dsv3__read_file(&c->alloc, path, &c->config, &c->config_len, &c->err);
    if (rc)
        return rc;
    return dsv3__hparams_from_config(&c->alloc, c->config, c->config_len, &c->hp, &c->log,
                                     &c->err);
}

static int read_tokenizer(conv *c, const char *dir)
{
    char path[4096];
    char *tok = NULL, *cfg = NULL;
    size_t tok_len = 0, cfg_len = 0;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (access(path, F_OK) != 0) {
        dsv3__logf(&c->log, DSV3_LOG_WARN, "%s: no tokenizer.json; converting without a tokenizer",
                   dir);
        return DSV3_OK;
    }
    int rc = dsv3__read_file(&c->alloc, path, &tok, &tok_len, &c->err);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (!rc && access(path, F_OK) == 0)
        rc = dsv3__read_file(&c->alloc, path, &cfg, &cfg_len, &c->err);
    if (!rc) {
        rc = dsv3__tokenizer_blob_from_hf(&c->alloc, tok, tok_len, cfg, cfg_len, &c->tok_blob,
                                          &c->tok_len, &c->chat_kind, &c->err);
        if (rc == DSV3_E_UNSUPPORTED) {
            dsv3__logf(&c->log, DSV3_LOG_WARN, "converting without a tokenizer: %s", c->err.msg);
            c->tok_blob = NULL;
            c->chat_kind = 0;
            rc = DSV3_OK;
        }
    }
    dsv3__free(&c->alloc, tok);
    dsv3__free(&c->alloc, cfg);
    return rc;
}

/* num_nextn_predict_layers > 0 but no MTP tensors: convert without MTP. */
static void check_mtp(conv *c)
{
    if (c->hp.n_mtp == 0)
        return;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "model.layers.%d.", c->hp.n_layers);
    const dsv3__st_tensor *t = c->st.tensors.data;
    for (size_t i = 0; i < c->st.tensors.len; i++)
        if (!strncmp(t[i].name, prefix, strlen(prefix)))
            return;
    dsv3__logf(&c->log, DSV3_LOG_WARN,
               "config.json announces %d MTP module(s) but the checkpoint has no %s* tensors: "
               "converting without MTP",
               c->hp.n_mtp, prefix);
    c->hp.n_mtp = 0;
}

static const dsv3__st_tensor *need(conv *c, const char *name, int *rc)
{
    const dsv3__st_tensor *t = dsv3__st_find(&c->st, name);
    if (!t)
        *rc = FAIL(c, DSV3_E_FORMAT, "the checkpoint has no tensor '%s' (required by config.json)",
                   name);
    else if (t->dtype < 0)
        *rc = FAIL(c, DSV3_E_UNSUPPORTED, "tensor '%s' has dtype %s, which libdsv3 does not read",
                   name, t->dtype_name);
    return t;
}

static int shape_err(conv *c, const dsv3__st_tensor *t, int32_t nd, const int64_t *ne)
{
    char got[96] = "", want[96] = "";
    size_t g = 0, w = 0;
    for (int i = 0; i < t->n_dims && g < sizeof got; i++)
        g += (size_t)snprintf(got + g, sizeof got - g, "%s%lld", i ? ", " : "", (long long)t->ne[i]);
    for (int i = 0; i < nd && w < sizeof want; i++)
        w += (size_t)snprintf(want + w, sizeof want - w, "%s%lld", i ? ", " : "", (long long)ne[i]);
    return FAIL(c, DSV3_E_FORMAT, "tensor '%s' has shape [%s] but config.json implies [%s]",
                t->name, got, want);
}

static bool same_shape(const dsv3__st_tensor *t, int32_t nd, const int64_t *ne)
{
    if (t->n_dims != nd)
        return false;
    for (int i = 0; i < nd; i++)
        if (t->ne[i] != ne[i])
            return false;
    return true;
}

/* The FP8 scale of source weight t: [ceil(R/128), ceil(C/128)]. */
static int find_scale(conv *c, const dsv3__st_tensor *t, const dsv3__st_tensor **out)
{
    char name[160];
    snprintf(name, sizeof name, "%s_scale_inv", t->name);
    int rc = DSV3_OK;
    const dsv3__st_tensor *s = need(c, name, &rc);
    if (rc)
        return FAIL(c, DSV3_E_FORMAT, "FP8 tensor '%s' has no block scales '%s'", t->name, name);
    int64_t ne[2] = {(t->ne[0] + 127) / 128, (t->ne[1] + 127) / 128};
    if (!same_shape(s, 2, ne))
        return shape_err(c, s, 2, ne);
    if (s->dtype == DSV3_DTYPE_FP8_E4M3)
        return FAIL(c, DSV3_E_FORMAT, "scales '%s' are FP8", name);
    *out = s;
    return DSV3_OK;
}

static int32_t out_dtype(const conv *c, const dsv3__tspec *s, int32_t in)
{
    int32_t w = c->p.weights;
    if (s->kind == DSV3__TK_VECTOR || w == DSV3_DTYPE_DEFAULT)
        return in;
    if (w == DSV3_DTYPE_FP8_E4M3)
        return s->kind == DSV3__TK_PROJ ? DSV3_DTYPE_FP8_E4M3 : in;
    return w;
}

/* Sources of one spec: the tensor, or the E experts of a stack. */
static int plan_sources(conv *c, plan *pl)
{
    const dsv3__tspec *s = pl->spec;
    bool stack = s->flags & DSV3__TS_STACK;
    int32_t n = stack ? (int32_t)s->ne[0] : 1;
    const int64_t *mne = stack ? s->ne + 1 : s->ne;
    int32_t mnd = stack ? 2 : s->n_dims;
    pl->n_src = n;
    pl->src = dsv3__calloc(&c->alloc, (size_t)n, sizeof *pl->src);
    pl->scale = dsv3__calloc(&c->alloc, (size_t)n, sizeof *pl->scale);
    pl->st = dsv3__calloc(&c->alloc, 2 * (size_t)n, sizeof *pl->st);
    if (!pl->src || !pl->scale || !pl->st)
        return FAIL(c, DSV3_E_NOMEM, "out of memory");
    int rc = DSV3_OK;
    for (int32_t j = 0; j < n; j++) {
        char name[160];
        if (stack)
            dsv3__tspec_expert_name(s, j, name, sizeof name);
        else
            snprintf(name, sizeof name, "%s", s->name);
        const dsv3__st_tensor *t = need(c, name, &rc);
        if (rc)
            return rc;
        if (!same_shape(t, mnd, mne))
            return shape_err(c, t, mnd, mne);
        if (j == 0)
            pl->in_dtype = t->dtype;
        else if (t->dtype != pl->in_dtype)
            return FAIL(c, DSV3_E_FORMAT, "experts of '%s' have different dtypes", s->name);
        pl->src[j] = t->data;
        pl->st[j] = t;
        if (t->dtype == DSV3_DTYPE_FP8_E4M3) {
            if (s->kind != DSV3__TK_PROJ)
                return FAIL(c, DSV3_E_UNSUPPORTED, "tensor '%s' is FP8; libdsv3 expects FP8 only "
                            "for projection matrices", name);
            const dsv3__st_tensor *sc = NULL;
            if ((rc = find_scale(c, t, &sc)))
                return rc;
            if (j && sc->dtype != pl->scale_dtype)
                return FAIL(c, DSV3_E_FORMAT, "scales of '%s' have different dtypes", s->name);
            pl->scale_dtype = sc->dtype;
            pl->scale[j] = sc->data;
            pl->st[n + j] = sc;
        }
    }
    return DSV3_OK;
}

/* The MTP copy of the embedding / head: an alias when absent or identical. */
static bool plan_alias(conv *c, plan *pl)
{
    const dsv3__tspec *s = pl->spec;
    if (!(s->flags & DSV3__TS_ALIASABLE))
        return false;
    const dsv3__st_tensor *t = dsv3__st_find(&c->st, s->name);
    const dsv3__st_tensor *g = dsv3__st_find(&c->st, s->alias_of);
    if (!t)
        dsv3__logf(&c->log, DSV3_LOG_INFO, "%s is absent: sharing %s", s->name, s->alias_of);
    else if (!g || g->dtype != t->dtype || g->nbytes != t->nbytes ||
             memcmp(g->data, t->data, (size_t)t->nbytes))
        return false;
    if (t)
        ((dsv3__st_tensor *)t)->used = true;
    pl->alias = true;
    return true;
}

static uint64_t out_bytes(int32_t dtype, int32_t nd, const int64_t *ne)
{
    uint64_t n = 0;
    dsv3__fmt_tensor_bytes(dtype, nd, ne, &n);
    return n;
}

static int make_plans(conv *c)
{
    int rc = dsv3__tensor_specs(&c->alloc, &c->hp, c->hp.n_mtp, NULL, &c->specs, &c->n_specs);
    if (rc)
        return FAIL(c, rc, "out of memory");
    c->plans = dsv3__calloc(&c->alloc, c->n_specs, sizeof *c->plans);
    if (!c->plans)
        return FAIL(c, DSV3_E_NOMEM, "out of memory");
    for (size_t i = 0; i < c->n_specs; i++) {
        plan *pl = &c->plans[i];
        const dsv3__tspec *s = pl->spec = &c->specs[i];
        if (plan_alias(c, pl))
            continue;
        if ((rc = plan_sources(c, pl)))
            return rc;
        for (int32_t j = 0; j < 2 * pl->n_src; j++)
            if (pl->st[j])
                ((dsv3__st_tensor *)pl->st[j])->used = true;
        pl->out_dtype = out_dtype(c, s, pl->in_dtype);
        c->total += out_bytes(pl->out_dtype, s->n_dims, s->ne);
        if (pl->out_dtype == DSV3_DTYPE_FP8_E4M3) {
            int64_t R = s->ne[s->n_dims - 2], C = s->ne[s->n_dims - 1];
            c->total += (uint64_t)pl->n_src * (uint64_t)((R + 127) / 128) *
                        (uint64_t)((C + 127) / 128) * 4;
        }
    }
    return DSV3_OK;
}

static void warn_unused(conv *c)
{
    const dsv3__st_tensor *t = c->st.tensors.data;
    size_t n = 0;
    for (size_t i = 0; i < c->st.tensors.len; i++) {
        if (t[i].used)
            continue;
        if (n++ < 10)
            dsv3__logf(&c->log, DSV3_LOG_WARN, "skipping unexpected tensor '%s'", t[i].name);
    }
    if (n > 10)
        dsv3__logf(&c->log, DSV3_LOG_WARN, "skipped %zu unexpected tensors in all", n);
}

/* Write the weight of a plan, then its scales when FP8. */
static int write_plan(conv *c, plan *pl)
{
    const dsv3__tspec *s = pl->spec;
    int64_t R = s->ne[s->n_dims - 2 >= 0 ? s->n_dims - 2 : 0], C = s->ne[s->n_dims - 1];
    if (s->n_dims == 1)
        R = 1;
    int64_t sr = (R + 127) / 128, sc = (C + 127) / 128;
    bool quant = pl->out_dtype == DSV3_DTYPE_FP8_E4M3 && pl->in_dtype != DSV3_DTYPE_FP8_E4M3;
    dsv3__prod p = {.n_src = pl->n_src, .src = pl->src, .scale = pl->scale,
                    .in_dtype = pl->in_dtype, .out_dtype = pl->out_dtype, .R = R, .C = C};
    if (quant && !(p.q_scales = dsv3__malloc(&c->alloc, (size_t)(pl->n_src * sr * sc) * 4)))
        return FAIL(c, DSV3_E_NOMEM, "out of memory");
    int rc = dsv3__prod_init(&p, &c->alloc);
    if (!rc)
        rc = dsv3__outw_tensor(c->w, s->name, pl->out_dtype, s->n_dims, s->ne, &p, &c->err);
    else
        FAIL(c, rc, "out of memory");
    dsv3__prod_free(&p);
    if (!rc && pl->out_dtype == DSV3_DTYPE_FP8_E4M3) {
        char name[160];
        snprintf(name, sizeof name, "%s_scale_inv", s->name);
        int64_t ne[3] = {pl->n_src, sr, sc};
        bool st = s->flags & DSV3__TS_STACK;
        const unsigned char *qs = (const unsigned char *)p.q_scales;
        dsv3__prod ps = {.n_src = quant ? 1 : pl->n_src, .src = quant ? &qs : pl->scale,
                         .in_dtype = quant ? DSV3_DTYPE_F32 : pl->scale_dtype,
                         .out_dtype = DSV3_DTYPE_F32, .R = quant ? pl->n_src * sr : sr, .C = sc};
        rc = dsv3__prod_init(&ps, &c->alloc);
        if (!rc)
            rc = dsv3__outw_tensor(c->w, name, DSV3_DTYPE_F32, st ? 3 : 2, st ? ne : ne + 1, &ps,
                                   &c->err);
        else
            FAIL(c, rc, "out of memory");
        dsv3__prod_free(&ps);
    }
    dsv3__free(&c->alloc, p.q_scales);
    for (int32_t j = 0; j < 2 * pl->n_src; j++)
        if (pl->st[j])
            dsv3__st_release(&c->st, pl->st[j]);
    return rc;
}

static void write_meta(conv *c)
{
    dsv3__mbuild *mb = dsv3__outw_manifest(c->w);
    dsv3__hparams_to_kv(&c->hp, mb);
    dsv3__mbuild_kv_i64(mb, DSV3__SEC_META, "tokenizer.chat_kind", c->chat_kind);
    const char *conv_by = "libdsv3 " DSV3_VERSION_STRING;
    dsv3__mbuild_kv_str(mb, DSV3__SEC_META, "converter", conv_by, strlen(conv_by));
    dsv3__mbuild_blob(mb, DSV3__SEC_CONFIG, c->config, c->config_len);
    if (c->tok_blob)
        dsv3__mbuild_blob(mb, DSV3__SEC_TOKENIZER, c->tok_blob, c->tok_len);
}

static int prepare_out_dir(conv *c, const char *out_dir, bool *created)
{
    *created = false;
    if (mkdir(out_dir, 0755) == 0) {
        *created = true;
        return DSV3_OK;
    }
    struct stat st;
    if (errno != EEXIST || stat(out_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return FAIL(c, DSV3_E_IO, "%s: cannot create the output directory: %s", out_dir,
                    strerror(errno));
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", out_dir, DSV3__FMT_MANIFEST_NAME);
    if (access(path, F_OK) == 0)
        return FAIL(c, DSV3_E_IO, "%s already holds a model (remove it first)", out_dir);
    return DSV3_OK;
}

static int write_all(conv *c, const char *out_dir)
{
    dsv3__out_opts o = {out_dir, c->p.shard_size, c->p.level, c->planes,
                        dsv3__resolve_threads(c->p.n_threads), &c->log, c->p.progress_fn,
                        c->p.progress_user_data, c->total};
    int rc = dsv3__outw_open(&c->alloc, &o, &c->w, &c->err);
    if (rc)
        return rc;
    write_meta(c);
    for (size_t i = 0; i < c->n_specs && !rc; i++)
        if (!c->plans[i].alias)
            rc = write_plan(c, &c->plans[i]);
    for (size_t i = 0; i < c->n_specs && !rc; i++)
        if (c->plans[i].alias)
            dsv3__mbuild_alias(dsv3__outw_manifest(c->w), c->specs[i].name,
                               c->specs[i].alias_of);
    if (!rc)
        rc = dsv3__outw_finish(c->w, &c->err);
    return rc;
}

static void conv_free(conv *c)
{
    for (size_t i = 0; c->plans && i < c->n_specs; i++) {
        dsv3__free(&c->alloc, c->plans[i].src);
        dsv3__free(&c->alloc, c->plans[i].scale);
        dsv3__free(&c->alloc, c->plans[i].st);
    }
    dsv3__free(&c->alloc, c->plans);
    dsv3__free(&c->alloc, c->specs);
    dsv3__free(&c->alloc, c->tok_blob);
    dsv3__free(&c->alloc, c->config);
    dsv3__st_close(&c->st);
}

int dsv3__convert(const char *hf_dir, const char *out_dir, const dsv3_convert_params *params,
                  const dsv3__convert_opts *opts, char *errbuf, size_t errcap)
{
    conv c;
    memset(&c, 0, sizeof c);
    dsv3__alloc_init(&c.alloc, NULL);
    dsv3__st_init(&c.st, &c.alloc);
    int rc = check_params(&c, params);
    if (!rc && (!hf_dir || !out_dir))
        rc = FAIL(&c, DSV3_E_INVAL, "NULL checkpoint or output directory");
    if (!rc)
        rc = read_config(&c, hf_dir);
    if (!rc)
        rc = read_tokenizer(&c, hf_dir);
    if (!rc)
        rc = dsv3__st_open_dir(&c.st, hf_dir, &c.err);
    if (!rc) {
        check_mtp(&c);
        rc = make_plans(&c);
    }
    bool created = false;
    if (!rc)
        rc = prepare_out_dir(&c, out_dir, &created);
    if (!rc) {
        warn_unused(&c);
        c.planes = !(opts && opts->no_byte_planes);
        rc = write_all(&c, out_dir);
    }
    dsv3__outw_free(c.w, rc != DSV3_OK);
    if (rc && created)
        rmdir(out_dir);
    conv_free(&c);
    dsv3__copy_msg(errbuf, errcap, rc ? c.err.msg : "");
    return rc;
}

int dsv3_convert(const char *hf_dir, const char *out_dir, const dsv3_convert_params *params,
                 char *errbuf, size_t errcap)
{
    return dsv3__convert(hf_dir, out_dir, params, NULL, errbuf, errcap);
}
