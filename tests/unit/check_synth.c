/*
 * check_synth.c - tests/common/synth: the synthetic checkpoint recipe in C
 * regenerates exactly the weights the Python reference used for every
 * committed vector set (tests/reference/vectors/<case>/meta.json).
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"
#include "synth.h"
#include "testutil.h"

static char *config_path(const char *name)
{
    char *p = NULL;
    ck_assert_int_ge(asprintf(&p, "%s/tests/reference/configs/%s.json", tu_source_dir(), name), 0);
    return p;
}

/* ---- primitives against published test vectors ---- */

START_TEST(splitmix64_known_values)
{
    uint64_t st = 0;
    ck_assert_uint_eq(synth_splitmix64(&st), 0xE220A8397B1DCDAFULL);
    ck_assert_uint_eq(synth_splitmix64(&st), 0x6E789E6AA1B965F4ULL);
    ck_assert_uint_eq(synth_splitmix64(&st), 0x06C45D188009454FULL);
    ck_assert_uint_eq(st, 3 * 0x9E3779B97F4A7C15ULL);
}
END_TEST

START_TEST(fnv1a64_known_values)
{
    ck_assert_uint_eq(synth_fnv1a64(SYNTH_FNV_OFFSET, "", 0), 0xCBF29CE484222325ULL);
    ck_assert_uint_eq(synth_fnv1a64(SYNTH_FNV_OFFSET, "a", 1), 0xAF63DC4C8601EC8CULL);
    ck_assert_uint_eq(synth_fnv1a64(SYNTH_FNV_OFFSET, "foobar", 6), 0x85944171F73967E8ULL);
    /* continuing a hash equals hashing the concatenation */
    uint64_t h = synth_fnv1a64(SYNTH_FNV_OFFSET, "foo", 3);
    ck_assert_uint_eq(synth_fnv1a64(h, "bar", 3), 0x85944171F73967E8ULL);
}
END_TEST

static float f32_bits(uint32_t b)
{
    float f;
    memcpy(&f, &b, 4);
    return f;
}

START_TEST(bf16_round_to_nearest_even)
{
    ck_assert_uint_eq(synth_f32_to_bf16(1.0f), 0x3F80);
    ck_assert_uint_eq(synth_f32_to_bf16(-2.0f), 0xC000);
    ck_assert_uint_eq(synth_f32_to_bf16(f32_bits(0x3F808000u)), 0x3F80); /* tie, even below */
    ck_assert_uint_eq(synth_f32_to_bf16(f32_bits(0x3F818000u)), 0x3F82); /* tie, odd below */
    ck_assert_uint_eq(synth_f32_to_bf16(f32_bits(0x3F808001u)), 0x3F81);
    ck_assert_uint_eq(synth_f32_to_bf16(f32_bits(0x3F807FFFu)), 0x3F80);
    ck_assert_uint_eq(synth_f32_to_bf16(f32_bits(0x7F7FFFFFu)), 0x7F80); /* rounds to inf */
}
END_TEST

/* ---- tensor sets: parameter totals stated in TINY_CONFIGS.md ---- */

START_TEST(parameter_totals)
{
    static const struct { const char *cfg; int64_t params; } want[] = {
        {"tiny", 2482768},           /* stored total incl. MTP copies */
        {"tiny-noq", 2451568},
        {"mini", 371522784},
        {"lite", 15202645056LL + 1012673088LL}, /* main + MTP with copies */
        {"tiny-v2", 1668512 - 32},   /* tiny-noq main model without the two biases */
        {"tiny-v2lite", 1668512 - 32},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char *p = config_path(want[i].cfg), err[512] = "";
        synth_info bf, f8;
        ck_assert_msg(synth_plan(p, "bf16", &bf, err, sizeof err) == 0, "%s: %s", want[i].cfg, err);
        ck_assert_msg(synth_plan(p, "fp8", &f8, err, sizeof err) == 0, "%s: %s", want[i].cfg, err);
        ck_assert_msg(bf.n_params == want[i].params, "%s: %lld parameters, want %lld", want[i].cfg,
                      (long long)bf.n_params, (long long)want[i].params);
        ck_assert_int_eq(f8.n_params, bf.n_params); /* scales are not parameters */
        ck_assert_int_gt(f8.n_tensors, bf.n_tensors);
        ck_assert_uint_lt(f8.n_bytes, bf.n_bytes);
        free(p);
    }
}
END_TEST

/* ---- the committed vector sets ---- */

typedef struct meta {
    char config[64], variant[16];
    uint64_t seed, hash;
    int64_t files, n_tensors, n_params;
} meta;

static uint64_t hex(const dsv3_json *n)
{
    const char *s = dsv3__json_string(n);
    ck_assert_ptr_nonnull(s);
    char *end = NULL;
    uint64_t v = strtoull(s, &end, 16);
    ck_assert(end && *end == '\0' && end != s);
    return v;
}

static void copy_str(char *dst, size_t cap, const dsv3_json *n)
{
    const char *s = dsv3__json_string(n);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_lt(strlen(s), cap);
    strcpy(dst, s);
}

static void read_meta(const char *path, meta *m)
{
    size_t len = 0;
    char *text = tu_read_file(path, &len);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    dsv3__alloc a;
    dsv3__alloc_init(&a, NULL);
    dsv3_json_doc doc;
    dsv3__err e;
    ck_assert_msg(dsv3__json_parse(&a, text, len, &doc, &e) == DSV3_OK, "%s: %s", path, e.msg);
    const dsv3_json *r = doc.root;
    copy_str(m->config, sizeof m->config, dsv3__json_get(r, "config"));
    copy_str(m->variant, sizeof m->variant, dsv3__json_get(r, "variant"));
    m->seed = hex(dsv3__json_get(r, "seed"));
    m->hash = hex(dsv3__json_get(r, "weights_hash"));
    ck_assert(dsv3__json_int64(dsv3__json_get(r, "files_in_checkpoint"), &m->files));
    ck_assert(dsv3__json_int64(dsv3__json_get(r, "n_tensors"), &m->n_tensors));
    ck_assert(dsv3__json_int64(dsv3__json_get(r, "n_params"), &m->n_params));
    dsv3__json_free(&doc);
    free(text);
}

static int exists(const char *dir, const char *name)
{
    char *p = tu_path(dir, name);
    struct stat st;
    int ok = stat(p, &st) == 0;
    free(p);
    return ok;
}

static void check_case(const char *vdir, const char *name)
{
    char *mp = NULL;
    ck_assert_int_ge(asprintf(&mp, "%s/%s/meta.json", vdir, name), 0);
    meta m;
    read_meta(mp, &m);
    char *cfg = config_path(m.config), *out = tu_mkdtemp("synth"), err[512] = "";
    ck_assert_ptr_nonnull(out);
    synth_info info;
    int rc = synth_write(cfg, m.variant, m.seed, out, (int)m.files, &info, err, sizeof err);
    ck_assert_msg(rc == 0, "%s: %s", name, err);
    ck_assert_msg(info.hash == m.hash, "%s: weights hash %016llx, reference %016llx", name,
                  (unsigned long long)info.hash, (unsigned long long)m.hash);
    ck_assert_int_eq(info.n_tensors, m.n_tensors);
    ck_assert_int_eq(info.n_params, m.n_params);
    /* the files on disk hash the same, read back independently */
    uint64_t h = 0;
    int64_t nt = 0;
    ck_assert_msg(synth_hash_dir(out, &h, &nt, err, sizeof err) == 0, "%s: %s", name, err);
    ck_assert_uint_eq(h, m.hash);
    ck_assert_int_eq(nt, m.n_tensors);
    ck_assert(exists(out, "config.json"));
    if (m.files > 1) {
        ck_assert(exists(out, "model.safetensors.index.json"));
        ck_assert(exists(out, "model-00001-of-00003.safetensors") || m.files != 3);
        ck_assert(!exists(out, "model.safetensors"));
    } else {
        ck_assert(exists(out, "model.safetensors"));
    }
    tu_rmtree(out);
    free(out);
    free(cfg);
    free(mp);
}

START_TEST(regenerates_reference_weights)
{
    char *vdir = NULL;
    ck_assert_int_ge(asprintf(&vdir, "%s/tests/reference/vectors", tu_source_dir()), 0);
    DIR *d = opendir(vdir);
    ck_assert_msg(d != NULL, "no %s", vdir);
    int n = 0, fp8 = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char *sub = tu_path(vdir, de->d_name);
        int is_case = de->d_name[0] != '.' && exists(sub, "meta.json");
        free(sub);
        if (!is_case)
            continue;
        check_case(vdir, de->d_name);
        fp8 += strstr(de->d_name, "fp8") != NULL;
        n++;
    }
    closedir(d);
    ck_assert_int_ge(n, 5);
    ck_assert_int_ge(fp8, 1);
    free(vdir);
}
END_TEST

START_TEST(seed_and_variant_change_weights)
{
    char *cfg = config_path("tiny"), err[512] = "";
    char *a = tu_mkdtemp("synth"), *b = tu_mkdtemp("synth"), *c = tu_mkdtemp("synth");
    synth_info ia, ib, ic;
    uint64_t h;
    ck_assert_int_eq(synth_write(cfg, "bf16", 0, a, 1, &ia, err, sizeof err), 0);
    ck_assert_int_eq(synth_write(cfg, "bf16", 1, b, 2, &ib, err, sizeof err), 0);
    ck_assert_uint_ne(ia.hash, ib.hash);
    ck_assert_int_eq(synth_hash_dir(b, &h, NULL, err, sizeof err), 0); /* two shards */
    ck_assert_uint_eq(h, ib.hash);
    ck_assert_int_eq(synth_write(cfg, "fp8", 0, c, 1, &ic, err, sizeof err), 0);
    ck_assert_uint_ne(ia.hash, ic.hash);
    ck_assert_int_eq(synth_hash_dir(c, &h, NULL, err, sizeof err), 0); /* one fp8 file */
    ck_assert_uint_eq(h, ic.hash);
    /* config.json of the fp8 variant announces the quantization */
    char *cp = tu_path(c, "config.json");
    char *text = tu_read_file(cp, NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(strstr(text, "\"quant_method\": \"fp8\""));
    ck_assert_ptr_nonnull(strstr(text, "\"weight_block_size\": [128, 128]"));
    free(text);
    free(cp);
    tu_rmtree(a);
    tu_rmtree(b);
    tu_rmtree(c);
    free(a);
    free(b);
    free(c);
    free(cfg);
}
END_TEST

/* ---- bad input ---- */

START_TEST(bad_input_is_an_error)
{
    char *dir = tu_mkdtemp("synth"), *cfg = config_path("tiny"), err[512];
    synth_info info;
    err[0] = '\0';
    ck_assert_int_eq(synth_write("/nonexistent/config.json", "bf16", 0, dir, 0, &info, err,
                                 sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "cannot read"));
    ck_assert_int_eq(synth_write(cfg, "f16", 0, dir, 0, &info, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "variant"));
    ck_assert_int_eq(synth_write(cfg, "bf16", 0, "/nonexistent/dir", 0, &info, err, sizeof err),
                     -1);
    ck_assert_int_eq(synth_write(cfg, "bf16", 0, dir, 100000, &info, err, sizeof err), -1);
    ck_assert_int_eq(synth_write(cfg, "bf16", 0, NULL, 0, &info, err, sizeof err), -1);

    static const char *bad[] = {
        "{\"vocab_size\": 16}",
        "[1, 2]",
        "{\"vocab_size\": 16, \"hidden_size\": 8, \"num_hidden_layers\": 1,"
        " \"num_attention_heads\": 1, \"kv_lora_rank\": 4, \"qk_nope_head_dim\": 2,"
        " \"qk_rope_head_dim\": 2, \"v_head_dim\": 2, \"intermediate_size\": 8,"
        " \"first_k_dense_replace\": 0, \"n_routed_experts\": 6, \"n_group\": 4,"
        " \"moe_intermediate_size\": 4}",
        "{\"vocab_size\": -3}",
        "{\"vocab_size\": 1.5}",
        "not json",
    };
    char *p = tu_path(dir, "bad.json");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(tu_write_file(p, bad[i], strlen(bad[i])), 0);
        err[0] = '\0';
        ck_assert_msg(synth_plan(p, "bf16", &info, err, sizeof err) == -1, "accepted %s", bad[i]);
        ck_assert_msg(err[0] != '\0', "no message for %s", bad[i]);
    }
    /* a truncated or garbled checkpoint is an error for the hash reader */
    uint64_t h;
    ck_assert_int_eq(synth_hash_dir(dir, &h, NULL, err, sizeof err), -1);
    char *st = tu_path(dir, "model.safetensors");
    ck_assert_int_eq(tu_write_file(st, "\x10\0\0\0\0\0\0\0{}", 10), 0);
    ck_assert_int_eq(synth_hash_dir(dir, &h, NULL, err, sizeof err), -1);
    static const char hdr[] = "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
    char buf[128];
    size_t hl = sizeof hdr - 1;
    for (int i = 0; i < 8; i++)
        buf[i] = (char)((hl >> (8 * i)) & 0xff);
    memcpy(buf + 8, hdr, hl);
    ck_assert_int_eq(tu_write_file(st, buf, 8 + hl + 8), 0); /* data cut short */
    ck_assert_int_eq(synth_hash_dir(dir, &h, NULL, err, sizeof err), -1);
    ck_assert_int_eq(tu_write_file(st, buf, 8 + hl + 16), 0);
    ck_assert_int_eq(synth_hash_dir(dir, &h, NULL, err, sizeof err), 0);
    free(st);
    free(p);
    tu_rmtree(dir);
    free(dir);
    free(cfg);
}
END_TEST

static Suite *synth_suite(void)
{
    Suite *s = suite_create("synth");
    TCase *tc = tcase_create("primitives");
    tcase_add_test(tc, splitmix64_known_values);
    tcase_add_test(tc, fnv1a64_known_values);
    tcase_add_test(tc, bf16_round_to_nearest_even);
    suite_add_tcase(s, tc);
    tc = tcase_create("tensor_set");
    tcase_add_test(tc, parameter_totals);
    suite_add_tcase(s, tc);
    tc = tcase_create("reference_weights");
    tcase_set_timeout(tc, 100);
    tcase_add_test(tc, regenerates_reference_weights);
    tcase_add_test(tc, seed_and_variant_change_weights);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, bad_input_is_an_error);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(synth_suite());
}
