/*
 * check_tokenizer.c - DeepSeek-V3's tokenizer through the public API:
 * exact ids against Hugging Face's tokenizers (tests/data/tokenizer/cases.json,
 * written by make_cases.js), decoding, buffers, invalid UTF-8, streaming of
 * tokens that split characters, misuse, long inputs, allocation failures.
 * SPDX-License-Identifier: MIT
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tok_fixture.h"

static dsv3_json_doc g_cases;
static const dsv3_json *g_list;
static int32_t g_bos, g_eos;
static dsv3_model *M;

static void setup(void)
{
    M = tf_model_new(tf_v3_tokenizer(), DSV3_CHAT_DEEPSEEK_V3);
}

static void teardown(void)
{
    tf_model_free(M);
    M = NULL;
}

/* ids of a case field as an int32 array (malloc'ed). */
static int32_t *ids_of(const dsv3_json *arr, size_t *n)
{
    ck_assert_ptr_nonnull(arr);
    *n = arr->n_children;
    int32_t *v = malloc((*n + 1) * sizeof *v);
    for (size_t i = 0; i < *n; i++) {
        int64_t x;
        ck_assert(dsv3__json_int64(&arr->children[i], &x));
        v[i] = (int32_t)x;
    }
    return v;
}

static void show_case(char *buf, size_t cap, const dsv3_json *c)
{
    const dsv3_json *t = dsv3__json_get(c, "text");
    snprintf(buf, cap, "'%.60s' (%zu bytes)", t->str, t->str_len);
}

/* Tokenize text with flags and compare with want[0 .. nw). */
static void expect_ids(const dsv3_json *c, uint32_t flags, const int32_t *want, size_t nw)
{
    const dsv3_json *t = dsv3__json_get(c, "text");
    size_t cap = t->str_len + 8, n = 0;
    int32_t *got = malloc(cap * sizeof *got);
    int rc = dsv3_tokenize(M, t->str, t->str_len, flags, got, cap, &n);
    char what[128];
    show_case(what, sizeof what, c);
    ck_assert_msg(rc == DSV3_OK, "%s: %s", what, dsv3_model_errmsg(M));
    size_t i = 0;
    while (i < n && i < nw && got[i] == want[i])
        i++;
    ck_assert_msg(n == nw && i == n, "%s flags %u: first difference at token %zu of %zu/%zu "
                  "(got %d, want %d)", what, flags, i, n, nw, i < n ? got[i] : -1,
                  i < nw ? want[i] : -1);
    free(got);
}

START_TEST(exact_ids)
{
    for (size_t k = 0; k < g_list->n_children; k++) {
        const dsv3_json *c = &g_list->children[k];
        size_t n;
        int32_t *ids = ids_of(dsv3__json_get(c, "ids"), &n);
        expect_ids(c, 0, ids, n);
        free(ids);
    }
}
END_TEST

START_TEST(exact_ids_no_special)
{
    size_t differing = 0;
    for (size_t k = 0; k < g_list->n_children; k++) {
        const dsv3_json *c = &g_list->children[k];
        const dsv3_json *f = dsv3__json_get(c, "ids_nospecial");
        differing += f != NULL;
        size_t n;
        int32_t *ids = ids_of(f ? f : dsv3__json_get(c, "ids"), &n);
        expect_ids(c, DSV3_TOKENIZE_NO_SPECIAL, ids, n);
        free(ids);
    }
    ck_assert_uint_gt(differing, 10); /* the file does exercise added tokens */
}
END_TEST

START_TEST(bos_flag)
{
    ck_assert_int_eq(dsv3__tokenizer_bos(M->tok), g_bos);
    ck_assert_int_eq(dsv3__tokenizer_eos(M->tok), g_eos);
    ck_assert(dsv3__tokenizer_add_bos(M->tok));
    for (size_t k = 0; k < g_list->n_children; k += 7) {
        const dsv3_json *c = &g_list->children[k];
        size_t n;
        int32_t *ids = ids_of(dsv3__json_get(c, "ids"), &n);
        int32_t *with = malloc((n + 1) * sizeof *with);
        with[0] = g_bos;
        memcpy(with + 1, ids, n * sizeof *ids);
        expect_ids(c, DSV3_TOKENIZE_ADD_BOS, with, n + 1);
        free(with);
        free(ids);
    }
}
END_TEST

START_TEST(decode_round_trip)
{
    for (size_t k = 0; k < g_list->n_children; k++) {
        const dsv3_json *c = &g_list->children[k];
        const dsv3_json *t = dsv3__json_get(c, "text");
        size_t n;
        int32_t *ids = ids_of(dsv3__json_get(c, "ids"), &n);
        char *out = malloc(t->str_len + 1);
        size_t len = 0;
        ck_assert_int_eq(dsv3_detokenize(M, ids, n, 0, out, t->str_len + 1, &len), DSV3_OK);
        ck_assert_uint_eq(len, t->str_len);
        ck_assert_msg(!memcmp(out, t->str, len) && out[len] == '\0', "case %zu", k);
        /* skipping special tokens: what the reference's decode(ids, true) gives */
        const dsv3_json *sk = dsv3__json_get(c, "decoded_skip_special");
        if (!sk)
            sk = t;
        ck_assert_int_eq(dsv3_detokenize(M, ids, n, DSV3_DETOKENIZE_SKIP_SPECIAL, out,
                                         t->str_len + 1, &len), DSV3_OK);
        ck_assert_msg(len == sk->str_len && !memcmp(out, sk->str, len), "case %zu skip", k);
        free(out);
        free(ids);
    }
}
END_TEST

START_TEST(special_flags)
{
    /* BOS, EOS, pad and <|EOT|> are special; role markers are plain added tokens */
    const int32_t special[] = {0, 1, 2, 128000, 128799, 128805};
    const int32_t plain[] = {3, 100, 127999, 128800, 128803, 128804, 128814};
    for (size_t i = 0; i < DSV3__ARRAY_LEN(special); i++)
        ck_assert_uint_eq(dsv3__tokenizer_attr(M->tok, special[i]) &
                              (DSV3__TOK_SPECIAL | DSV3__TOK_ADDED),
                          DSV3__TOK_SPECIAL | DSV3__TOK_ADDED);
    for (size_t i = 0; i < DSV3__ARRAY_LEN(plain); i++)
        ck_assert(!(dsv3__tokenizer_attr(M->tok, plain[i]) & DSV3__TOK_SPECIAL));
    ck_assert_int_eq(dsv3__tokenizer_n_tokens(M->tok), 128815);
    ck_assert_uint_eq(dsv3__tokenizer_attr(M->tok, 128815), 0);
}
END_TEST

/* ---- buffers -------------------------------------------------------------------- */

START_TEST(tokenize_nospc)
{
    const char *s = "Hello world! It's 12345 tokens.";
    size_t n = 0, n2 = 0;
    ck_assert_int_eq(dsv3_tokenize(M, s, strlen(s), 0, NULL, 0, &n), DSV3_E_NOSPC);
    ck_assert_uint_eq(n, 10);
    int32_t ids[16];
    ck_assert_int_eq(dsv3_tokenize(M, s, strlen(s), 0, ids, n - 1, &n2), DSV3_E_NOSPC);
    ck_assert_uint_eq(n2, n);
    ck_assert_ptr_nonnull(strstr(dsv3_model_errmsg(M), "do not fit"));
    ck_assert_int_eq(dsv3_tokenize(M, s, strlen(s), 0, ids, n, &n2), DSV3_OK);
    ck_assert_uint_eq(n2, n);
    ck_assert_int_eq(ids[0], 19923); /* "Hello" */
    ck_assert_int_eq(dsv3_tokenize(M, "", 0, 0, NULL, 0, &n), DSV3_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(dsv3_tokenize(M, NULL, 0, DSV3_TOKENIZE_ADD_BOS, ids, 1, &n), DSV3_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(ids[0], 0);
}
END_TEST

START_TEST(detokenize_nospc)
{
    const int32_t ids[] = {19923, 2058}; /* "Hello world" */
    char buf[32];
    size_t len = 0;
    ck_assert_int_eq(dsv3_detokenize(M, ids, 2, 0, NULL, 0, &len), DSV3_E_NOSPC);
    ck_assert_uint_eq(len, 11);
    memset(buf, 'x', sizeof buf);
    ck_assert_int_eq(dsv3_detokenize(M, ids, 2, 0, buf, 10, &len), DSV3_E_NOSPC);
    ck_assert_uint_eq(len, 11);
    memset(buf, 'x', sizeof buf);
    ck_assert_int_eq(dsv3_detokenize(M, ids, 2, 0, buf, 11, &len), DSV3_OK); /* no room for NUL */
    ck_assert(!memcmp(buf, "Hello world", 11) && buf[11] == 'x');
    ck_assert_int_eq(dsv3_detokenize(M, ids, 2, 0, buf, 12, &len), DSV3_OK);
    ck_assert_str_eq(buf, "Hello world");
    ck_assert_int_eq(dsv3_detokenize(M, NULL, 0, 0, buf, 1, &len), DSV3_OK);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(token_bytes)
{
    const char *b;
    size_t n;
    ck_assert_int_eq(dsv3_token_bytes(M, 2058, &b, &n), DSV3_OK);
    ck_assert(n == 6 && !memcmp(b, " world", 6));
    ck_assert_int_eq(dsv3_token_bytes(M, 128803, &b, &n), DSV3_OK);
    ck_assert(n == strlen("<｜User｜>") && !memcmp(b, "<｜User｜>", n));
    ck_assert_int_eq(dsv3_token_bytes(M, -1, &b, &n), DSV3_E_RANGE);
    ck_assert_int_eq(dsv3_token_bytes(M, 128815, &b, &n), DSV3_E_RANGE);
    ck_assert_int_eq(dsv3_token_bytes(M, 129279, &b, &n), DSV3_E_RANGE);
    ck_assert_int_eq(dsv3_token_bytes(M, 0, NULL, &n), DSV3_E_INVAL);
    /* every byte value has a single-byte token (BPE's start symbols) */
    int singles = 0;
    for (int32_t id = 0; id < 128815; id++)
        if (dsv3_token_bytes(M, id, &b, &n) == DSV3_OK && n == 1)
            singles++;
    ck_assert_int_eq(singles, 256);
}
END_TEST

/* ---- UTF-8 -------------------------------------------------------------------- */

START_TEST(invalid_utf8)
{
    static const struct {
        const char *s;
        size_t off;
    } bad[] = {
        {"\x80", 0}, {"a\xc3", 1}, {"ab\xc3(", 2}, {"\xe0\x80\x80", 0}, {"x\xed\xa0\x80", 1},
        {"\xf4\x90\x80\x80", 0}, {"\xf5\x80\x80\x80", 0}, {"\xff", 0}, {"abc\xc0\xaf", 3},
        {"\xe4\xbd", 0}, {"hello world \xf0\x9f\x98", 12}, {"\xc1\xbf", 0},
        {"ok \xe2\x82\xac \xed\xbf\xbf", 7}, {"<｜User｜>\xfe", 12},
    };
    for (size_t i = 0; i < DSV3__ARRAY_LEN(bad); i++) {
        int32_t ids[64];
        size_t n = 99;
        int rc = dsv3_tokenize(M, bad[i].s, strlen(bad[i].s), 0, ids, 64, &n);
        ck_assert_msg(rc == DSV3_E_UTF8, "case %zu: %s", i, dsv3_err_name(rc));
        char want[64];
        snprintf(want, sizeof want, "byte offset %zu", bad[i].off);
        ck_assert_msg(strstr(dsv3_model_errmsg(M), want), "case %zu: '%s' lacks '%s'", i,
                      dsv3_model_errmsg(M), want);
        ck_assert_uint_eq(n, 0);
    }
    /* a NUL byte is an ordinary character */
    int32_t ids[8];
    size_t n;
    ck_assert_int_eq(dsv3_tokenize(M, "a\0b", 3, 0, ids, 8, &n), DSV3_OK);
    char out[8];
    size_t len;
    ck_assert_int_eq(dsv3_detokenize(M, ids, n, 0, out, sizeof out, &len), DSV3_OK);
    ck_assert(len == 3 && !memcmp(out, "a\0b", 3));
}
END_TEST

START_TEST(utf8_complete)
{
    static const struct {
        const char *s;
        size_t shown;
    } v[] = {
        {"", 0}, {"abc", 3}, {"\xc3", 0}, {"a\xc3", 1}, {"a\xc3\xa9", 3}, {"\xe4\xbd", 0},
        {"\xe4\xbd\xa0", 3}, {"\xf0\x9f\x98", 0}, {"x\xf0\x9f", 1}, {"\xf0\x9f\x98\x80", 4},
        {"\xff", 1}, {"\xc3(", 2}, {"\x80", 1}, {"\xe0\x80", 2}, {"\xed\xa0", 2},
        {"\xf4\x90", 2}, {"a\xe4", 1}, {"\xe4\xbd\xa0\xe5", 3},
    };
    for (size_t i = 0; i < DSV3__ARRAY_LEN(v); i++) {
        size_t n = strlen(v[i].s);
        ck_assert_msg(dsv3__utf8_complete(v[i].s, n, false) == v[i].shown, "case %zu", i);
        ck_assert_uint_eq(dsv3__utf8_complete(v[i].s, n, true), n);
    }
}
END_TEST

/* Stream the tokens of a text one at a time as a generator would: every
 * piece shown is valid UTF-8, and the pieces add up to the text. */
START_TEST(streaming_split_characters)
{
    const char *texts[] = {"😀 🛜x 👨‍👩‍👧‍👦 ok", "你好，世界。こんにちは", "𠀀𠀁 ꦗꦮ ᚠᚢ", "emoji at end 🚀"};
    int held = 0;
    for (size_t k = 0; k < DSV3__ARRAY_LEN(texts); k++) {
        const char *s = texts[k];
        int32_t ids[256];
        size_t n;
        ck_assert_int_eq(dsv3_tokenize(M, s, strlen(s), 0, ids, 256, &n), DSV3_OK);
        char pend[64], shown[512];
        size_t np = 0, ns = 0;
        for (size_t i = 0; i <= n; i++) {
            if (i < n) {
                const char *b;
                size_t bl;
                ck_assert_int_eq(dsv3_token_bytes(M, ids[i], &b, &bl), DSV3_OK);
                memcpy(pend + np, b, bl);
                np += bl;
            }
            size_t ok = dsv3__utf8_complete(pend, np, i == n);
            held += ok < np;
            ck_assert(dsv3__utf8_check(pend, ok, NULL));
            memcpy(shown + ns, pend, ok);
            ns += ok;
            memmove(pend, pend + ok, np - ok);
            np -= ok;
        }
        ck_assert_uint_eq(np, 0);
        ck_assert(ns == strlen(s) && !memcmp(shown, s, ns));
    }
    ck_assert_int_gt(held, 3); /* some tokens did end inside a character */
}
END_TEST

/* ---- misuse ---------------------------------------------------------------------- */

START_TEST(misuse)
{
    int32_t ids[8];
    size_t n;
    char buf[8];
    const char *b;
    ck_assert_int_eq(dsv3_tokenize(NULL, "a", 1, 0, ids, 8, &n), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_detokenize(NULL, ids, 0, 0, buf, 8, &n), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_token_bytes(NULL, 0, &b, &n), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_tokenize(M, NULL, 3, 0, ids, 8, &n), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_tokenize(M, "a", 1, 0, NULL, 8, &n), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_tokenize(M, "a", 1, 0, ids, 8, NULL), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_tokenize(M, "a", 1, 1u << 7, ids, 8, &n), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_detokenize(M, ids, 1, 1u << 5, buf, 8, &n), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_detokenize(M, NULL, 1, 0, buf, 8, &n), DSV3_E_INVAL);
    const int32_t bad_ids[] = {5, 128815};
    ck_assert_int_eq(dsv3_detokenize(M, bad_ids, 2, 0, buf, 8, &n), DSV3_E_RANGE);
    ck_assert_ptr_nonnull(strstr(dsv3_model_errmsg(M), "token 1 (id 128815)"));
    const int32_t neg[] = {-3};
    ck_assert_int_eq(dsv3_detokenize(M, neg, 1, 0, buf, 8, &n), DSV3_E_RANGE);
    /* a model without a tokenizer, a failed handle */
    dsv3_model *bare = tf_model_new(NULL, DSV3_CHAT_NONE);
    ck_assert_int_eq(dsv3_tokenize(bare, "a", 1, 0, ids, 8, &n), DSV3_E_UNSUPPORTED);
    ck_assert_int_eq(dsv3_detokenize(bare, ids, 0, 0, buf, 8, &n), DSV3_E_UNSUPPORTED);
    ck_assert_int_eq(dsv3_token_bytes(bare, 0, &b, &n), DSV3_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(dsv3_model_errmsg(bare), "no tokenizer"));
    bare->magic = DSV3__MAGIC_FAILED;
    ck_assert_int_eq(dsv3_tokenize(bare, "a", 1, 0, ids, 8, &n), DSV3_E_MISUSE);
    tf_model_free(bare);
}
END_TEST

/* ---- long and pathological inputs ------------------------------------------------- */

static void round_trip_big(const char *unit, size_t reps)
{
    size_t ul = strlen(unit), len = ul * reps;
    char *s = malloc(len);
    for (size_t i = 0; i < reps; i++)
        memcpy(s + i * ul, unit, ul);
    size_t n = 0;
    ck_assert_int_eq(dsv3_tokenize(M, s, len, 0, NULL, 0, &n), DSV3_E_NOSPC);
    int32_t *ids = malloc(n * sizeof *ids);
    ck_assert_int_eq(dsv3_tokenize(M, s, len, 0, ids, n, &n), DSV3_OK);
    char *out = malloc(len);
    size_t ol;
    ck_assert_int_eq(dsv3_detokenize(M, ids, n, 0, out, len, &ol), DSV3_OK);
    ck_assert(ol == len && !memcmp(out, s, len));
    free(out);
    free(ids);
    free(s);
}

START_TEST(long_inputs)
{
    /* one piece of 256 Ki symbols each: quadratic merging would not finish */
    round_trip_big("a", 1u << 18);
    round_trip_big(" ", 1u << 18);
    round_trip_big("\n", 1u << 18);
    round_trip_big("9", 1u << 18);
    round_trip_big("ab", 1u << 17);
    round_trip_big("\xe2\x80\x83", 1u << 16); /* em space */
    round_trip_big("!", 1u << 18);
    round_trip_big("\xcc\x81", 1u << 17);     /* combining acute */
}
END_TEST

START_TEST(oom_during_encode)
{
    /* a long piece needs scratch memory from the tokenizer's allocator */
    tu_alloc ta;
    tu_alloc_init(&ta, 0);
    dsv3__alloc a;
    ck_assert_int_eq(dsv3__alloc_init(&a, &ta.a), DSV3_OK);
    size_t bl;
    const void *blob = tf_v3_blob(&bl);
    dsv3_tokenizer *t = NULL;
    dsv3__err err;
    ck_assert_int_eq(dsv3__tokenizer_new(&a, blob, bl, &t, &err), DSV3_OK);
    char s[4096];
    memset(s, 'q', sizeof s);
    int32_t ids[4096];
    size_t n;
    ta.fail_at = ta.n_alloc + 1;
    ck_assert_int_eq(dsv3__tokenizer_encode(t, s, sizeof s, 0, ids, 4096, &n, &err),
                     DSV3_E_NOMEM);
    ta.fail_at = 0;
    ck_assert_int_eq(dsv3__tokenizer_encode(t, s, sizeof s, 0, ids, 4096, &n, &err), DSV3_OK);
    dsv3__tokenizer_free(t);
    ck_assert_int_eq(ta.live, 0);
}
END_TEST

/* ---- threads ---------------------------------------------------------------- */

/* One tokenizer shared by several threads: every thread encodes all cases
 * and compares with the reference ids. */
static void *encode_all(void *arg)
{
    size_t start = (size_t)(uintptr_t)arg, bad = 0;
    for (size_t j = 0; j < g_list->n_children; j++) {
        const dsv3_json *c = &g_list->children[(start + j) % g_list->n_children];
        const dsv3_json *t = dsv3__json_get(c, "text"), *want = dsv3__json_get(c, "ids");
        size_t cap = t->str_len + 8, n = 0;
        int32_t *got = malloc(cap * sizeof *got);
        if (dsv3_tokenize(M, t->str, t->str_len, 0, got, cap, &n) != DSV3_OK ||
            n != want->n_children)
            bad++;
        for (size_t i = 0; i < n && i < want->n_children; i++)
            bad += got[i] != (int32_t)want->children[i].num;
        free(got);
    }
    return (void *)(uintptr_t)bad;
}

START_TEST(shared_by_threads)
{
    pthread_t th[4];
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, encode_all, (void *)(uintptr_t)(i * 101)), 0);
    for (size_t i = 0; i < 4; i++) {
        void *bad;
        ck_assert_int_eq(pthread_join(th[i], &bad), 0);
        ck_assert_uint_eq((uintptr_t)bad, 0);
    }
}
END_TEST

static Suite *tokenizer_suite(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("reference");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, exact_ids);
    tcase_add_test(tc, exact_ids_no_special);
    tcase_add_test(tc, bos_flag);
    tcase_add_test(tc, decode_round_trip);
    tcase_add_test(tc, special_flags);
    suite_add_tcase(s, tc);
    tc = tcase_create("buffers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, tokenize_nospc);
    tcase_add_test(tc, detokenize_nospc);
    tcase_add_test(tc, token_bytes);
    suite_add_tcase(s, tc);
    tc = tcase_create("utf8");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, invalid_utf8);
    tcase_add_test(tc, utf8_complete);
    tcase_add_test(tc, streaming_split_characters);
    suite_add_tcase(s, tc);
    tc = tcase_create("misuse");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, misuse);
    suite_add_tcase(s, tc);
    tc = tcase_create("threads");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, shared_by_threads);
    suite_add_tcase(s, tc);
    tc = tcase_create("long");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, long_inputs);
    tcase_add_test(tc, oom_during_encode);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* built once here, so that forked tests inherit it */
    size_t bl;
    if (!tf_v3_blob(&bl) || tf_json_load("tests/data/tokenizer/cases.json", &g_cases))
        return 1;
    g_list = dsv3__json_get(g_cases.root, "cases");
    int64_t b, e;
    if (!g_list || !dsv3__json_int64(dsv3__json_get(g_cases.root, "bos"), &b) ||
        !dsv3__json_int64(dsv3__json_get(g_cases.root, "eos"), &e)) {
        fprintf(stderr, "cases.json: unexpected layout\n");
        return 1;
    }
    g_bos = (int32_t)b;
    g_eos = (int32_t)e;
    int rc = tu_run_suite(tokenizer_suite());
    dsv3__json_free(&g_cases);
    return rc;
}
