/*
 * refcheck.c - a loaded model against the committed reference vectors
 * (see refcheck.h and tests/reference/README.md).
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"
#include "model/model.h"
#include "refcheck.h"
#include "synth.h"
#include "testutil.h"

const char *const rc_case_names[] = {"tiny-bf16",    "tiny-fp8",         "tiny-noq-bf16",
                                     "tiny-v2-bf16", "tiny-v2lite-bf16", NULL};

static int rfail(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int rfail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

static int ids(const dsv3_json *root, const char *key, int32_t *out, size_t cap, size_t *n)
{
    const dsv3_json *a = dsv3__json_get(root, key);
    *n = 0;
    if (!a)
        return 0; /* optional */
    for (size_t i = 0;; i++) {
        const dsv3_json *v = dsv3__json_at(a, i);
        int64_t x;
        if (!v)
            return 0;
        if (i >= cap || !dsv3__json_int64(v, &x))
            return -1;
        out[(*n)++] = (int32_t)x;
    }
}

static float *read_rows(const char *dir, const char *file, size_t floats)
{
    char *p = tu_path(dir, file);
    size_t len = 0;
    char *data = tu_read_file(p, &len);
    free(p);
    if (!data || len != floats * sizeof(float)) {
        free(data);
        return NULL;
    }
    return (float *)(void *)data;
}

int rc_case_load(const char *name, rc_case *c, char *err, size_t cap)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    char *vdir = NULL, *meta = NULL, *text = NULL;
    if (asprintf(&vdir, "%s/tests/reference/vectors/%s", tu_source_dir(), name) < 0)
        return rfail(err, cap, "out of memory");
    meta = tu_path(vdir, "meta.json");
    size_t len = 0;
    text = tu_read_file(meta, &len);
    int rc = -1;
    dsv3__alloc a;
    dsv3__alloc_init(&a, NULL);
    dsv3_json_doc doc;
    dsv3__err e;
    if (!text) {
        rfail(err, cap, "cannot read %s", meta);
    } else if (dsv3__json_parse(&a, text, len, &doc, &e) != DSV3_OK) {
        rfail(err, cap, "%s: %s", meta, e.msg);
    } else {
        const dsv3_json *r = doc.root;
        const char *cfg = dsv3__json_string(dsv3__json_get(r, "config"));
        const char *var = dsv3__json_string(dsv3__json_get(r, "variant"));
        int64_t V = 0, nf = 0;
        double tol = 0;
        if (!cfg || !var || !dsv3__json_int64(dsv3__json_get(r, "vocab_size"), &V) ||
            !dsv3__json_int64(dsv3__json_get(r, "files_in_checkpoint"), &nf) ||
            !dsv3__json_double(dsv3__json_get(dsv3__json_get(r, "tolerance"), "logits_abs"),
                               &tol) ||
            ids(r, "prompt", c->prompt, 64, &c->n_prompt) ||
            ids(r, "decode_tokens", c->decode, 16, &c->n_decode) ||
            ids(dsv3__json_get(r, "greedy"), "tokens", c->greedy, 64, &c->n_greedy) ||
            ids(r, "mtp_next_tokens", c->mtp_next, 64, &c->n_mtp_next) ||
            ids(r, "long_prompt", c->long_prompt, 512, &c->n_long) ||
            ids(r, "long_decode_tokens", c->long_decode, 16, &c->n_long_decode)) {
            rfail(err, cap, "%s: unexpected contents", meta);
        } else {
            snprintf(c->config, sizeof c->config, "%s", cfg);
            snprintf(c->variant, sizeof c->variant, "%s", var);
            c->V = V;
            c->n_files = (int)nf;
            c->tol = tol;
            size_t v = (size_t)V;
            c->logits = read_rows(vdir, "logits.bin", (c->n_prompt + c->n_decode) * v);
            c->long_logits = read_rows(vdir, "long_logits.bin", (1 + c->n_long_decode) * v);
            if (c->n_mtp_next)
                c->mtp_draft = read_rows(vdir, "mtp_draft.bin", c->n_prompt * v);
            if (!c->logits || !c->long_logits || (c->n_mtp_next && !c->mtp_draft))
                rfail(err, cap, "%s: missing or short .bin files", vdir);
            else
                rc = 0;
        }
        dsv3__json_free(&doc);
    }
    free(text);
    free(meta);
    free(vdir);
    if (rc)
        rc_case_free(c);
    return rc;
}

void rc_case_free(rc_case *c)
{
    free(c->logits);
    free(c->long_logits);
    free(c->mtp_draft);
    c->logits = c->long_logits = c->mtp_draft = NULL;
}

int rc_case_convert(const rc_case *c, const char *dir, char **model, char *err, size_t cap)
{
    char *cfg = NULL, *hf = tu_path(dir, "hf");
    *model = tu_path(dir, "model");
    if (asprintf(&cfg, "%s/tests/reference/configs/%s.json", tu_source_dir(), c->config) < 0 ||
        !hf || !*model) {
        free(cfg);
        free(hf);
        return rfail(err, cap, "out of memory");
    }
    int rc = 0;
    synth_info info;
    if (mkdir(hf, 0755) != 0 ||
        synth_write(cfg, c->variant, SYNTH_DEFAULT_SEED, hf, c->n_files, &info, err, cap) != 0) {
        if (!err[0])
            rfail(err, cap, "cannot create %s", hf);
        rc = -1;
    } else {
        dsv3_convert_params p;
        dsv3_convert_params_init(&p, sizeof p);
        p.log_level = DSV3_LOG_NONE;
        p.n_threads = 2;
        if (dsv3_convert(hf, *model, &p, err, cap) != DSV3_OK)
            rc = -1;
    }
    free(cfg);
    free(hf);
    return rc;
}

/* Largest |a - b| over n values; NaN counts as infinite. */
static double diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

static int32_t argmax(const float *l, int64_t n)
{
    int64_t b = 0;
    for (int64_t i = 1; i < n; i++)
        if (l[i] > l[b])
            b = i;
    return (int32_t)b;
}

typedef struct run {
    const rc_case *c;
    double tol, *maxdiff;
    char *err;
    size_t cap;
} run;

static int check_rows(const run *r, dsv3_context *ctx, int32_t row, const float *want, int mtp,
                      const char *what, size_t i)
{
    const float *l;
    int rc = mtp ? dsv3__context_mtp_logits(ctx, row, &l) : dsv3_context_logits(ctx, row, &l);
    if (rc)
        return rfail(r->err, r->cap, "%s %zu: no logits (%s)", what, i, dsv3_context_errmsg(ctx));
    double d = diff(l, want, (size_t)r->c->V);
    if (d > *r->maxdiff)
        *r->maxdiff = d;
    if (!(d <= r->tol))
        return rfail(r->err, r->cap, "%s %zu: logits differ by %g (tolerance %g)", what, i, d,
                     r->tol);
    return 0;
}

static dsv3_context *new_ctx(dsv3_model *m, uint32_t flags)
{
    dsv3_context_params p;
    dsv3_context_params_init(&p, sizeof p);
    p.flags = flags;
    p.n_ctx = 256;
    p.n_threads = 2;
    dsv3_context *ctx = NULL;
    if (dsv3_context_new(m, &p, &ctx) != DSV3_OK) {
        dsv3_context_free(ctx);
        return NULL;
    }
    return ctx;
}

#define DECODE(ctx, t, n, fl)                                                                      \
    do {                                                                                           \
        if (dsv3_context_decode(ctx, t, n, fl) != DSV3_OK) {                                       \
            rfail(r->err, r->cap, "decode: %s", dsv3_context_errmsg(ctx));                         \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* Prompt (every row), MTP drafts, then one token at a time. */
static int check_prompt(const run *r, dsv3_model *m)
{
    const rc_case *c = r->c;
    size_t V = (size_t)c->V;
    int mtp = c->mtp_draft && (m->w.n_layers > m->hp.n_layers);
    dsv3_context *ctx = new_ctx(m, mtp ? DSV3_CONTEXT_MTP : 0);
    int rc = -1;
    if (!ctx)
        return rfail(r->err, r->cap, "cannot create a context");
    DECODE(ctx, c->prompt, c->n_prompt, DSV3_DECODE_ALL_LOGITS);
    for (size_t i = 0; i < c->n_prompt; i++)
        if (check_rows(r, ctx, (int32_t)i, c->logits + i * V, 0, "prompt position", i))
            goto out;
    if (mtp) {
        if (dsv3__context_mtp_eval(ctx, c->mtp_next, c->n_prompt, DSV3_DECODE_ALL_LOGITS)) {
            rfail(r->err, r->cap, "MTP: %s", dsv3_context_errmsg(ctx));
            goto out;
        }
        for (size_t i = 0; i < c->n_prompt; i++)
            if (check_rows(r, ctx, (int32_t)i, c->mtp_draft + i * V, 1, "MTP draft", i))
                goto out;
    }
    for (size_t i = 0; i < c->n_decode; i++) {
        DECODE(ctx, c->decode + i, 1, 0);
        if (check_rows(r, ctx, -1, c->logits + (c->n_prompt + i) * V, 0, "decode step", i))
            goto out;
    }
    rc = 0;
out:
    dsv3_context_free(ctx);
    return rc;
}

/* Greedy continuation, then the long prompt. */
static int check_greedy_long(const run *r, dsv3_model *m, size_t max_greedy, int with_long)
{
    const rc_case *c = r->c;
    dsv3_context *ctx = new_ctx(m, 0);
    int rc = -1;
    const float *l;
    if (!ctx)
        return rfail(r->err, r->cap, "cannot create a context");
    DECODE(ctx, c->prompt, c->n_prompt, 0);
    for (size_t i = 0; i < c->n_greedy && i < max_greedy; i++) {
        dsv3_context_logits(ctx, -1, &l);
        int32_t t = argmax(l, c->V);
        if (t != c->greedy[i]) {
            rfail(r->err, r->cap, "greedy token %zu is %d, the reference has %d", i, t,
                  c->greedy[i]);
            goto out;
        }
        DECODE(ctx, &t, 1, 0);
    }
    if (!with_long) {
        rc = 0;
        goto out;
    }
    dsv3_context_clear(ctx);
    DECODE(ctx, c->long_prompt, c->n_long, 0);
    if (check_rows(r, ctx, -1, c->long_logits, 0, "long prompt, row", 0))
        goto out;
    for (size_t i = 0; i < c->n_long_decode; i++) {
        DECODE(ctx, c->long_decode + i, 1, 0);
        if (check_rows(r, ctx, -1, c->long_logits + (1 + i) * (size_t)c->V, 0,
                       "long prompt, decode step", i))
            goto out;
    }
    rc = 0;
out:
    dsv3_context_free(ctx);
    return rc;
}

int rc_check_model(dsv3_model *m, const rc_case *c, size_t max_greedy, int with_long,
                   double *maxdiff, char *err, size_t cap)
{
    *maxdiff = 0;
    run r = {c, c->tol, maxdiff, err, cap};
    if (m->hp.vocab_size != c->V)
        return rfail(err, cap, "the model has %d tokens, the case %lld", (int)m->hp.vocab_size,
                     (long long)c->V);
    if (check_prompt(&r, m) || check_greedy_long(&r, m, max_greedy, with_long))
        return -1;
    return 0;
}
