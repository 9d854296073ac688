/*
 * check_demo_model.c - the bundled demo model (models/dsv3-tiny-stories)
 * against the training script's own PyTorch forward of the same checkpoint
 * (tests/data/tiny-stories, written by tools/train/export.py): the real
 * tokenizer, logits at every prompt position, MTP draft logits, and the greedy
 * continuation's ids and text.
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "testutil.h"

#define TOL 1e-3

typedef struct vectors {
    dsv3_json_doc doc;
    char *meta_text;
    int32_t *prompt;
    size_t n_prompt;
    int32_t *logit_ids;
    size_t n_ids;
    float *prompt_logits; /* [n_prompt][n_ids] */
    float *mtp_logits;    /* [n_prompt][n_ids] */
    int32_t *greedy;
    size_t n_greedy;
} vectors;

static char *data_path(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "tests/data/tiny-stories/%s", name);
    return tu_path(tu_source_dir(), rel);
}

static void *read_data(const char *name, size_t elem, size_t *n)
{
    char *p = data_path(name);
    size_t len = 0;
    void *d = tu_read_file(p, &len);
    ck_assert_msg(d != NULL, "cannot read %s", p);
    ck_assert_uint_eq(len % elem, 0);
    free(p);
    *n = len / elem;
    return d;
}

static void load_vectors(vectors *v)
{
    memset(v, 0, sizeof *v);
    char *p = data_path("meta.json");
    size_t len = 0;
    v->meta_text = tu_read_file(p, &len);
    ck_assert_ptr_nonnull(v->meta_text);
    free(p);
    dsv3__alloc a;
    dsv3__alloc_init(&a, NULL);
    dsv3__err e;
    ck_assert_int_eq(dsv3__json_parse(&a, v->meta_text, len, &v->doc, &e), DSV3_OK);
    size_t n;
    v->prompt = read_data("prompt_ids.i32", 4, &v->n_prompt);
    v->logit_ids = read_data("logit_ids.i32", 4, &v->n_ids);
    v->prompt_logits = read_data("prompt_logits.f32", 4, &n);
    ck_assert_uint_eq(n, v->n_prompt * v->n_ids);
    v->mtp_logits = read_data("mtp_draft_logits.f32", 4, &n);
    ck_assert_uint_eq(n, v->n_prompt * v->n_ids);
    v->greedy = read_data("greedy_ids.i32", 4, &v->n_greedy);
}

static void free_vectors(vectors *v)
{
    dsv3__json_free(&v->doc);
    free(v->meta_text);
    free(v->prompt);
    free(v->logit_ids);
    free(v->prompt_logits);
    free(v->mtp_logits);
    free(v->greedy);
}

static dsv3_model *load_model(void)
{
    char *dir = tu_path(tu_source_dir(), "models/dsv3-tiny-stories");
    dsv3_model *m = NULL;
    int rc = dsv3_model_load(dir, NULL, &m);
    ck_assert_msg(rc == DSV3_OK, "load %s: %s", dir, dsv3_model_errmsg(m));
    free(dir);
    return m;
}

/* Largest |ours - reference| over the stored columns of one row. */
static double row_error(const float *ours, const float *ref, const vectors *v)
{
    double worst = 0;
    for (size_t c = 0; c < v->n_ids; c++) {
        double d = fabs((double)ours[v->logit_ids[c]] - (double)ref[c]);
        if (d > worst)
            worst = d;
    }
    return worst;
}

/* The first vocabulary id that has no stored column (ids are ascending). */
static int32_t unstored_id(const vectors *v)
{
    int32_t id = 0;
    for (size_t c = 0; c < v->n_ids && v->logit_ids[c] == id; c++)
        id++;
    return id;
}

START_TEST(tokenizer_matches)
{
    vectors v;
    load_vectors(&v);
    dsv3_model *m = load_model();
    const char *prompt = dsv3__json_string(dsv3__json_get(v.doc.root, "prompt"));
    ck_assert_ptr_nonnull(prompt);
    int32_t ids[256];
    size_t n = 0;
    ck_assert_int_eq(dsv3_tokenize(m, prompt, strlen(prompt), DSV3_TOKENIZE_ADD_BOS, ids, 256, &n),
                     DSV3_OK);
    ck_assert_uint_eq(n, v.n_prompt);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(ids[i], v.prompt[i]);
    dsv3_model_free(m);
    free_vectors(&v);
}
END_TEST

START_TEST(prompt_logits_match)
{
    vectors v;
    load_vectors(&v);
    dsv3_model *m = load_model();
    dsv3_context *ctx = NULL;
    ck_assert_int_eq(dsv3_context_new(m, NULL, &ctx), DSV3_OK);
    ck_assert_int_eq(dsv3_context_decode(ctx, v.prompt, v.n_prompt, DSV3_DECODE_ALL_LOGITS),
                     DSV3_OK);
    double worst = 0;
    for (size_t r = 0; r < v.n_prompt; r++) {
        const float *l = NULL;
        ck_assert_int_eq(dsv3_context_logits(ctx, (int32_t)r, &l), DSV3_OK);
        double e = row_error(l, v.prompt_logits + r * v.n_ids, &v);
        worst = e > worst ? e : worst;
        /* ids without their own rows share the logit of the stored unused ids */
        ck_assert_float_eq(l[unstored_id(&v)], l[129279]);
    }
    printf("# demo model: max |logit error| over %zu positions: %.3g\n", v.n_prompt, worst);
    ck_assert_msg(worst < TOL, "max logit error %g", worst);
    dsv3_context_free(ctx);
    dsv3_model_free(m);
    free_vectors(&v);
}
END_TEST

START_TEST(mtp_draft_logits_match)
{
    vectors v;
    load_vectors(&v);
    char *dir = tu_mkdtemp("demo");
    char *model = tu_path(tu_source_dir(), "models/dsv3-tiny-stories");
    char *main_out = tu_path(dir, "main.f32"), *mtp_out = tu_path(dir, "mtp.f32");
    char ids[4096] = "";
    for (size_t i = 0; i < v.n_prompt; i++)
        snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%d", i ? "," : "", v.prompt[i]);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' logits -m '%s' --tokens %s --all-positions --mtp-draft '%s' "
             "-o '%s'", tu_cli(), model, ids, mtp_out, main_out);
    char *out = NULL, *err = NULL;
    int rc = tu_run(cmd, &out, &err);
    ck_assert_msg(rc == 0, "dsv3 logits failed: %s", err ? err : "");
    size_t n;
    char *raw = tu_read_file(mtp_out, &n);
    ck_assert_ptr_nonnull(raw);
    ck_assert_uint_eq(n, v.n_prompt * 129280 * sizeof(float));
    const float *rows = (const float *)(void *)raw;
    double worst = 0;
    for (size_t r = 0; r < v.n_prompt; r++) {
        double e = row_error(rows + r * 129280, v.mtp_logits + r * v.n_ids, &v);
        worst = e > worst ? e : worst;
    }
    printf("# demo model: max |MTP draft logit error|: %.3g\n", worst);
    ck_assert_msg(worst < TOL, "max MTP draft logit error %g", worst);
    free(raw);
    free(out);
    free(err);
    free(main_out);
    free(mtp_out);
    free(model);
    tu_rmtree(dir);
    free(dir);
    free_vectors(&v);
}
END_TEST

typedef struct collected {
    int32_t ids[256];
    size_t n;
} collected;

static int collect(const dsv3_token_event *ev, void *ud)
{
    collected *c = ud;
    if (c->n < 256)
        c->ids[c->n++] = ev->token;
    return 0;
}

START_TEST(greedy_continuation_matches)
{
    vectors v;
    load_vectors(&v);
    dsv3_model *m = load_model();
    dsv3_context *ctx = NULL;
    dsv3_sampler *s = NULL;
    ck_assert_int_eq(dsv3_context_new(m, NULL, &ctx), DSV3_OK);
    dsv3_sampler_params sp;
    dsv3_sampler_params_init(&sp, sizeof sp);
    sp.temperature = 0;
    ck_assert_int_eq(dsv3_sampler_new(&sp, &s), DSV3_OK);
    dsv3_generate_params gp;
    dsv3_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = (int32_t)v.n_greedy;
    gp.flags = DSV3_GENERATE_IGNORE_EOS;
    collected c = {.n = 0};
    ck_assert_int_eq(dsv3_generate(ctx, s, v.prompt, v.n_prompt, &gp, collect, &c, NULL), DSV3_OK);
    ck_assert_uint_eq(c.n, v.n_greedy);
    for (size_t i = 0; i < c.n; i++)
        ck_assert_msg(c.ids[i] == v.greedy[i], "token %zu: %d, expected %d", i, c.ids[i],
                      v.greedy[i]);
    char text[4096];
    size_t len = 0;
    ck_assert_int_eq(dsv3_detokenize(m, c.ids, c.n, 0, text, sizeof text, &len), DSV3_OK);
    ck_assert_str_eq(text, dsv3__json_string(dsv3__json_get(v.doc.root, "greedy_text")));
    dsv3_sampler_free(s);
    dsv3_context_free(ctx);
    dsv3_model_free(m);
    free_vectors(&v);
}
END_TEST

static Suite *demo_suite(void)
{
    Suite *s = suite_create("demo_model");
    TCase *tc = tcase_create("pytorch");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, tokenizer_matches);
    tcase_add_test(tc, prompt_logits_match);
    tcase_add_test(tc, mtp_draft_logits_match);
    tcase_add_test(tc, greedy_continuation_matches);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(demo_suite());
}
