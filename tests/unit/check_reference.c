/*
 * check_reference.c - the library's logits against the independent
 * reference (tests/reference/vectors): for every committed vector set the
 * synthetic checkpoint is regenerated (tests/common/synth), converted with
 * dsv3_convert and loaded; then prefill (all positions), decode steps, the
 * long case, 32 greedy steps, the MTP drafts, and the naive vs absorbed MLA
 * forms are compared. The dsv3 logits and dsv3 info commands are exercised
 * on one case.
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"
#include "model/model.h"
#include "synth.h"
#include "testutil.h"

static const char *const cases[] = {"tiny-bf16", "tiny-fp8", "tiny-noq-bf16", "tiny-v2-bf16",
                                    "tiny-v2lite-bf16"};
#define N_CASES (sizeof cases / sizeof cases[0])

/* One vector set and its converted model. */
typedef struct vcase {
    const char *name;
    char *vdir, *tmp, *model_dir;
    char *meta_text;
    dsv3_json_doc meta;
    int32_t V;
    dsv3_model *m;
    double tol;
} vcase;

/* dir/name (malloc'ed) */
static char *path2(const char *dir, const char *name)
{
    char *p = NULL;
    ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
    return p;
}

static const dsv3_json *meta_get(const vcase *c, const char *key)
{
    const dsv3_json *j = dsv3__json_get(c->meta.root, key);
    ck_assert_msg(j != NULL, "%s: meta.json has no %s", c->name, key);
    return j;
}

/* An array of ints from meta.json (malloc'ed). */
static int32_t *meta_ids(const vcase *c, const dsv3_json *arr, size_t *n)
{
    ck_assert_int_eq(arr->type, DSV3_JSON_ARRAY);
    int32_t *v = malloc((arr->n_children + 1) * sizeof *v);
    for (size_t i = 0; i < arr->n_children; i++) {
        int64_t x;
        ck_assert(dsv3__json_int64(&arr->children[i], &x));
        v[i] = (int32_t)x;
    }
    *n = arr->n_children;
    (void)c;
    return v;
}

static float *read_rows(const vcase *c, const char *file, size_t rows)
{
    char *path = path2(c->vdir, file);
    size_t len;
    char *data = tu_read_file(path, &len);
    ck_assert_msg(data != NULL, "cannot read %s", path);
    ck_assert_uint_eq(len, rows * (size_t)c->V * sizeof(float));
    free(path);
    return (float *)data;
}

static void case_open(vcase *c, const char *name)
{
    memset(c, 0, sizeof *c);
    c->name = name;
    ck_assert_int_ge(asprintf(&c->vdir, "%s/tests/reference/vectors/%s", tu_source_dir(), name),
                     0);
    char *meta = path2(c->vdir, "meta.json");
    size_t len;
    c->meta_text = tu_read_file(meta, &len);
    ck_assert_ptr_nonnull(c->meta_text);
    dsv3__alloc a;
    dsv3__alloc_init(&a, NULL);
    ck_assert_int_eq(dsv3__json_parse(&a, c->meta_text, len, &c->meta, NULL), DSV3_OK);
    free(meta);
    int64_t v;
    ck_assert(dsv3__json_int64(meta_get(c, "vocab_size"), &v));
    c->V = (int32_t)v;
    ck_assert(dsv3__json_double(dsv3__json_get(meta_get(c, "tolerance"), "logits_abs"), &c->tol));
    ck_assert(c->tol > 0 && c->tol <= 1e-3);

    /* regenerate the checkpoint, convert it, load it */
    c->tmp = tu_mkdtemp("ref");
    char *hf = path2(c->tmp, "hf");
    c->model_dir = path2(c->tmp, "model");
    ck_assert_int_eq(mkdir(hf, 0700), 0);
    char *cfg = NULL;
    ck_assert_int_ge(asprintf(&cfg, "%s/tests/reference/configs/%s.json", tu_source_dir(),
                              dsv3__json_string(meta_get(c, "config"))),
                     0);
    char err[512];
    synth_info si;
    ck_assert_msg(synth_write(cfg, dsv3__json_string(meta_get(c, "variant")), SYNTH_DEFAULT_SEED,
                              hf, 0, &si, err, sizeof err) == 0,
                  "synth: %s", err);
    char want_hash[32];
    snprintf(want_hash, sizeof want_hash, "0x%016llx", (unsigned long long)si.hash);
    ck_assert_str_eq(want_hash, dsv3__json_string(meta_get(c, "weights_hash")));
    dsv3_convert_params cp;
    dsv3_convert_params_init(&cp, sizeof cp);
    cp.n_threads = 1;
    cp.log_level = DSV3_LOG_NONE;
    ck_assert_msg(dsv3_convert(hf, c->model_dir, &cp, err, sizeof err) == DSV3_OK, "convert: %s",
                  err);
    dsv3_model_params mp;
    dsv3_model_params_init(&mp, sizeof mp);
    mp.backend = DSV3_BACKEND_CPU;
    mp.n_threads = 1;
    int rc = dsv3_model_load(c->model_dir, &mp, &c->m);
    ck_assert_msg(rc == DSV3_OK, "load: %s", dsv3_model_errmsg(c->m));
    free(hf);
    free(cfg);
}

static void case_close(vcase *c)
{
    dsv3_model_free(c->m);
    dsv3__json_free(&c->meta);
    free(c->meta_text);
    tu_rmtree(c->tmp);
    free(c->tmp);
    free(c->vdir);
    free(c->model_dir);
}

static dsv3_context *ctx_new(const vcase *c, uint32_t flags, uint32_t n_ctx)
{
    dsv3_context_params p;
    dsv3_context_params_init(&p, sizeof p);
    p.flags = flags;
    p.n_ctx = n_ctx;
    p.n_threads = 2;
    dsv3_context *x = NULL;
    int rc = dsv3_context_new(c->m, &p, &x);
    ck_assert_msg(rc == DSV3_OK, "context: %s", dsv3_context_errmsg(x));
    return x;
}

static double rowdiff(const float *a, const float *b, int32_t n)
{
    double m = 0;
    for (int32_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m))
            m = d;
    }
    return m;
}

static int32_t argmax(const float *x, int32_t n)
{
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

/* Prefill with every position's logits, then one token at a time; rows go
 * to out ([n + n_dec][V]). */
static void run_logits(const vcase *c, dsv3_context *x, const int32_t *tok, size_t n,
                       const int32_t *dec, size_t n_dec, int all, float *out)
{
    size_t V = (size_t)c->V, r = 0;
    ck_assert_int_eq(dsv3_context_decode(x, tok, n, all ? DSV3_DECODE_ALL_LOGITS : 0), DSV3_OK);
    for (size_t i = all ? 0 : n - 1; i < n; i++) {
        const float *l;
        ck_assert_int_eq(dsv3_context_logits(x, (int32_t)i, &l), DSV3_OK);
        memcpy(out + r++ * V, l, V * sizeof(float));
    }
    for (size_t i = 0; i < n_dec; i++) {
        const float *l;
        ck_assert_int_eq(dsv3_context_decode(x, dec + i, 1, 0), DSV3_OK);
        ck_assert_int_eq(dsv3_context_logits(x, -1, &l), DSV3_OK);
        memcpy(out + r++ * V, l, V * sizeof(float));
    }
}

static void check_rows(const vcase *c, const char *what, const float *got, const float *want,
                       size_t rows, double tol)
{
    double worst = 0;
    for (size_t i = 0; i < rows; i++) {
        double d = rowdiff(got + i * (size_t)c->V, want + i * (size_t)c->V, c->V);
        ck_assert_msg(d <= tol, "%s: %s row %zu differs by %g (tolerance %g)", c->name, what, i,
                      d, tol);
        worst = d > worst ? d : worst;
    }
    fprintf(stderr, "# %s: %s max |error| %.3g over %zu rows\n", c->name, what, worst, rows);
}

/* The cache rows of the prompt (CPU backend: host memory): normalised
 * latent, then the rotated RoPE key, per main layer (kv.bin). */
static void check_cache(const vcase *c, const dsv3_context *x, size_t n)
{
    const dsv3_hparams *hp = &c->m->hp;
    size_t row = (size_t)(hp->kv_lora_rank + hp->qk_rope_dim), L = (size_t)hp->n_layers;
    char *path = path2(c->vdir, "kv.bin");
    size_t len;
    float *want = (float *)tu_read_file(path, &len);
    ck_assert_ptr_nonnull(want);
    ck_assert_uint_eq(len, L * n * row * sizeof(float));
    double worst = 0;
    for (size_t l = 0; l < L; l++) {
        const float *got = (const float *)((const char *)x->kv->base + l * x->kv_layer_bytes);
        for (size_t i = 0; i < n * row; i++) {
            double d = fabs((double)got[i] - (double)want[l * n * row + i]);
            worst = d > worst ? d : worst;
        }
    }
    ck_assert_msg(worst <= c->tol, "%s: cache rows differ by %g", c->name, worst);
    fprintf(stderr, "# %s: cache rows max |error| %.3g\n", c->name, worst);
    free(want);
    free(path);
}

START_TEST(logits_match_reference)
{
    vcase c;
    case_open(&c, cases[_i]);
    size_t n, n_dec, V = (size_t)c.V;
    int32_t *prompt = meta_ids(&c, meta_get(&c, "prompt"), &n);
    int32_t *dec = meta_ids(&c, meta_get(&c, "decode_tokens"), &n_dec);
    float *want = read_rows(&c, "logits.bin", n + n_dec);
    float *got = malloc((n + n_dec) * V * sizeof(float));
    float *naive = malloc((n + n_dec) * V * sizeof(float));

    dsv3_context *x = ctx_new(&c, 0, 256);
    run_logits(&c, x, prompt, n, dec, n_dec, 1, got);
    check_rows(&c, "prefill+decode logits", got, want, n + n_dec, c.tol);
    check_cache(&c, x, n);

    dsv3_context *nv = ctx_new(&c, DSV3_CONTEXT_NAIVE_ATTN, 64);
    run_logits(&c, nv, prompt, n, dec, n_dec, 1, naive);
    check_rows(&c, "naive vs absorbed", naive, got, n + n_dec, 1e-4);
    dsv3_context_free(nv);

    /* long prompt: past original_max_position_embeddings */
    size_t nl, nld;
    int32_t *lp = meta_ids(&c, meta_get(&c, "long_prompt"), &nl);
    int32_t *ld = meta_ids(&c, meta_get(&c, "long_decode_tokens"), &nld);
    float *lwant = read_rows(&c, "long_logits.bin", 1 + nld);
    float *lgot = malloc((1 + nld) * V * sizeof(float));
    ck_assert_int_eq(dsv3_context_clear(x), DSV3_OK);
    run_logits(&c, x, lp, nl, ld, nld, 0, lgot);
    check_rows(&c, "long-prompt logits", lgot, lwant, 1 + nld, c.tol);

    /* greedy continuation through the cache, one token per step */
    size_t ng;
    int32_t *greedy = meta_ids(&c, dsv3__json_get(meta_get(&c, "greedy"), "tokens"), &ng);
    ck_assert_uint_eq(ng, 32);
    ck_assert_int_eq(dsv3_context_clear(x), DSV3_OK);
    ck_assert_int_eq(dsv3_context_decode(x, prompt, n, 0), DSV3_OK);
    for (size_t i = 0; i < ng; i++) {
        const float *l;
        ck_assert_int_eq(dsv3_context_logits(x, -1, &l), DSV3_OK);
        int32_t t = argmax(l, c.V);
        ck_assert_msg(t == greedy[i], "%s: greedy step %zu: %d, reference %d", c.name, i, t,
                      greedy[i]);
        ck_assert_int_eq(dsv3_context_decode(x, &t, 1, 0), DSV3_OK);
    }
    dsv3_context_free(x);
    free(prompt), free(dec), free(want), free(got), free(naive);
    free(lp), free(ld), free(lwant), free(lgot), free(greedy);
    case_close(&c);
}
END_TEST

START_TEST(mtp_drafts_match_reference)
{
    vcase c;
    case_open(&c, cases[_i]);
    const dsv3_json *nt = dsv3__json_get(c.meta.root, "mtp_next_tokens");
    if (!nt || nt->type == DSV3_JSON_NULL) { /* configs without an MTP module */
        dsv3_model_info info = {.struct_size = sizeof info};
        ck_assert_int_eq(dsv3_model_info_get(c.m, &info), DSV3_OK);
        ck_assert_int_eq(info.n_mtp_layers, 0);
        case_close(&c);
        return;
    }
    size_t n, nn, V = (size_t)c.V;
    int32_t *prompt = meta_ids(&c, meta_get(&c, "prompt"), &n);
    int32_t *next = meta_ids(&c, nt, &nn);
    ck_assert_uint_eq(nn, n);
    float *want = read_rows(&c, "mtp_draft.bin", n);
    float *got = malloc(n * V * sizeof(float));
    dsv3_context *x = ctx_new(&c, DSV3_CONTEXT_MTP, 64);
    ck_assert_int_eq(dsv3_context_decode(x, prompt, n, 0), DSV3_OK);
    const float *l;
    ck_assert_int_eq(dsv3_context_logits(x, -1, &l), DSV3_OK);
    ck_assert_int_eq(argmax(l, c.V), next[n - 1]);
    ck_assert_int_eq(dsv3__context_mtp_eval(x, next, n, DSV3_DECODE_ALL_LOGITS), DSV3_OK);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(dsv3__context_mtp_logits(x, (int32_t)i, &l), DSV3_OK);
        memcpy(got + i * V, l, V * sizeof(float));
    }
    check_rows(&c, "MTP draft logits", got, want, n, c.tol);
    dsv3_context_free(x);
    free(prompt), free(next), free(want), free(got);
    case_close(&c);
}
END_TEST

/* ---- the dsv3 program on one case ---------------------------------------------- */

static char *join_ids(const int32_t *v, size_t n)
{
    char *s = malloc(n * 12 + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += (size_t)sprintf(s + k, "%s%d", i ? "," : "", (int)v[i]);
    s[k] = 0;
    return s;
}

START_TEST(cli_logits_and_info)
{
    vcase c;
    case_open(&c, "tiny-fp8");
    size_t n, n_dec, V = (size_t)c.V;
    int32_t *prompt = meta_ids(&c, meta_get(&c, "prompt"), &n);
    int32_t *dec = meta_ids(&c, meta_get(&c, "decode_tokens"), &n_dec);
    char *ps = join_ids(prompt, n), *ds = join_ids(dec, n_dec);
    char *out = path2(c.tmp, "logits.bin"), *mtp = path2(c.tmp, "mtp.bin");
    char cmd[8192], *so, *se;
    snprintf(cmd, sizeof cmd,
             "'%s' logits -m '%s' --tokens %s --decode-tokens %s --all-positions --batch 5 "
             "--mtp-draft '%s' -o '%s'",
             tu_cli(), c.model_dir, ps, ds, mtp, out);
    ck_assert_msg(tu_run(cmd, &so, &se) == 0, "dsv3 logits failed: %s", se);
    free(so), free(se);
    size_t len;
    float *got = (float *)tu_read_file(out, &len);
    ck_assert_uint_eq(len, (n + n_dec) * V * sizeof(float));
    float *want = read_rows(&c, "logits.bin", n + n_dec);
    check_rows(&c, "dsv3 logits", got, want, n + n_dec, c.tol);
    free(got), free(want);
    got = (float *)tu_read_file(mtp, &len);
    ck_assert_uint_eq(len, n * V * sizeof(float));
    want = read_rows(&c, "mtp_draft.bin", n);
    check_rows(&c, "dsv3 logits --mtp-draft", got, want, n, c.tol);
    free(got), free(want);

    /* last position only (no --all-positions): one prefill row */
    snprintf(cmd, sizeof cmd, "'%s' logits -m '%s' --tokens %s -o '%s'", tu_cli(), c.model_dir,
             ps, out);
    ck_assert_int_eq(tu_run(cmd, &so, &se), 0);
    free(so), free(se);
    got = (float *)tu_read_file(out, &len);
    ck_assert_uint_eq(len, V * sizeof(float));
    want = read_rows(&c, "logits.bin", n + n_dec);
    check_rows(&c, "dsv3 logits (last row)", got, want + (n - 1) * V, 1, c.tol);
    free(got), free(want);

    /* errors: one line on stderr, non-zero exit */
    const char *bad[] = {"--tokens 1,2", "--tokens 1,x,3 -o /dev/null", "--tokens 1,,2 -o f",
                         "--tokens 1,5000 -o /dev/null", "--tokens 1 -o /nonexistent/dir/f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cmd, sizeof cmd, "'%s' logits -m '%s' %s", tu_cli(), c.model_dir, bad[i]);
        ck_assert_int_ne(tu_run(cmd, &so, &se), 0);
        ck_assert_msg(strchr(se, '\n') == se + strlen(se) - 1, "not one line: '%s'", se);
        free(so), free(se);
    }
    snprintf(cmd, sizeof cmd, "'%s' logits -m '%s' --tokens 1,5000 -o /dev/null", tu_cli(),
             c.model_dir);
    ck_assert_int_ne(tu_run(cmd, &so, &se), 0);
    ck_assert_ptr_nonnull(strstr(se, "DSV3_E_RANGE"));
    free(so), free(se);

    /* dsv3 info: KV bytes per token = (kv_lora_rank + qk_rope_dim) x layers x 4 (F32) */
    snprintf(cmd, sizeof cmd, "'%s' info -m '%s'", tu_cli(), c.model_dir);
    ck_assert_int_eq(tu_run(cmd, &so, &se), 0);
    const char *k = strstr(so, "weight bytes read, ");
    ck_assert_ptr_nonnull(k);
    const dsv3_hparams *hp = &c.m->hp;
    ck_assert_uint_eq(strtoull(k + strlen("weight bytes read, "), NULL, 10),
                      (unsigned long long)(hp->kv_lora_rank + hp->qk_rope_dim) *
                          (unsigned long long)hp->n_layers * 4);
    dsv3_model_info info = {.struct_size = sizeof info};
    ck_assert_int_eq(dsv3_model_info_get(c.m, &info), DSV3_OK);
    ck_assert_uint_eq(info.kv_bytes_per_token, (uint64_t)(64 + 16) * 4 * 4);
    free(so), free(se);
    free(ps), free(ds), free(out), free(mtp), free(prompt), free(dec);
    case_close(&c);
}
END_TEST

static Suite *reference_suite(void)
{
    Suite *s = suite_create("reference");
    TCase *tc = tcase_create("logits");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, logits_match_reference, 0, N_CASES);
    suite_add_tcase(s, tc);
    tc = tcase_create("mtp");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, mtp_drafts_match_reference, 0, N_CASES);
    suite_add_tcase(s, tc);
    tc = tcase_create("cli");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, cli_logits_and_info);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(reference_suite());
}
