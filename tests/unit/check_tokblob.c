/*
 * check_tokblob.c - building the tokenizer blob from Hugging Face files and
 * loading it back: a small hand-made tokenizer.json (BPE rules and
 * added-token passes with hand-derived results), every refusal of
 * unsupported or malformed files, corrupt/truncated/tampered blobs
 * (always DSV3_E_FORMAT, never a crash), allocation-failure injection.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tok_fixture.h"
#include "tokenizer/tok_priv.h"
#include "zst_file.h"

static dsv3__alloc A;

/* ---- a small tokenizer.json ------------------------------------------------------ */

typedef struct tiny_opts {
    const char *model_type;   /* default "BPE" */
    const char *regex3;       /* default DeepSeek-V3's third rule (JSON-escaped) */
    const char *extra_vocab;  /* appended to the vocabulary object */
    const char *merges;       /* the merges array's contents */
    const char *added;        /* the added_tokens array's contents */
    const char *normalizer;   /* default null */
    const char *decoder;      /* default ByteLevel */
    int skip_byte;            /* leave this byte's token out (-1: none) */
} tiny_opts;

static const char default_regex3[] =
    "[!\\\"#$%&'()*+,\\\\-./:;<=>?@\\\\[\\\\\\\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\\\p{L}\\\\p{P}"
    "\\\\p{S}]?[\\\\p{L}\\\\p{M}]+| ?[\\\\p{P}\\\\p{S}]+[\\r\\n]*|\\\\s*[\\r\\n]+|\\\\s+(?!\\\\S)|"
    "\\\\s+";

static const char default_merges[] =
    "\"h e\", \"l l\", \"he ll\", \"hell o\", \"\xc4\xa0 w\", \"o r\", \"b c\", \"a b\", \"a a\"";
static const char default_vocab[] =
    "\"he\": 256, \"ll\": 257, \"hell\": 258, \"hello\": 259, \"\xc4\xa0w\": 260, \"or\": 261, "
    "\"bc\": 262, \"ab\": 263, \"aa\": 264";
static const char default_added[] =
    "{\"id\": 300, \"content\": \"<q>\", \"special\": true, \"normalized\": false},"
    "{\"id\": 301, \"content\": \"ab<\", \"special\": false, \"normalized\": true},"
    "{\"id\": 302, \"content\": \"<|eot|>\", \"special\": true, \"normalized\": false}";

static char *tiny_json(const tiny_opts *o)
{
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap);
#define OUT(...) (n += (size_t)snprintf(s + n, cap - n, __VA_ARGS__))
    OUT("{\"version\": \"1.0\", \"added_tokens\": [%s], \"normalizer\": %s,",
        o->added ? o->added : default_added, o->normalizer ? o->normalizer : "null");
    OUT("\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": ["
        "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\p{N}{1,3}\"}, \"behavior\": "
        "\"Isolated\", \"invert\": false},"
        "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"[一-龥぀-ゟ゠-ヿ]+\"}, \"behavior\": "
        "\"Isolated\", \"invert\": false},"
        "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"%s\"}, \"behavior\": \"Isolated\", "
        "\"invert\": false},"
        "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, "
        "\"use_regex\": false}]},",
        o->regex3 ? o->regex3 : default_regex3);
    OUT("\"post_processor\": null, \"decoder\": %s,",
        o->decoder ? o->decoder : "{\"type\": \"ByteLevel\"}");
    OUT("\"model\": {\"type\": \"%s\", \"dropout\": null, \"unk_token\": null, "
        "\"byte_fallback\": false, \"vocab\": {",
        o->model_type ? o->model_type : "BPE");
    for (int b = 0; b < 256; b++) {
        if (b == o->skip_byte)
            continue;
        uint32_t cp = dsv3__tok_byte_char((uint8_t)b);
        char ch[4];
        if (cp == '"' || cp == '\\')
            snprintf(ch, sizeof ch, "\\%c", (char)cp);
        else if (cp < 0x80)
            snprintf(ch, sizeof ch, "%c", (char)cp);
        else
            snprintf(ch, sizeof ch, "%c%c", (char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F)));
        OUT("\"%s\": %d, ", ch, b);
    }
    OUT("%s}, \"merges\": [%s]}}", o->extra_vocab ? o->extra_vocab : default_vocab,
        o->merges ? o->merges : default_merges);
#undef OUT
    ck_assert_uint_lt(n, cap);
    return s;
}

static int build_tiny(const tiny_opts *o, const char *cfg, dsv3_tokenizer **t, char *msg)
{
    char *js = tiny_json(o);
    void *blob = NULL;
    size_t bl;
    int32_t kind;
    dsv3__err err = {{0}};
    *t = NULL;
    int rc = dsv3__tokenizer_blob_from_hf(&A, js, strlen(js), cfg, cfg ? strlen(cfg) : 0, &blob,
                                          &bl, &kind, &err);
    if (!rc)
        rc = dsv3__tokenizer_new(&A, blob, bl, t, &err);
    dsv3__free(&A, blob);
    free(js);
    if (msg)
        strcpy(msg, err.msg);
    return rc;
}

static const tiny_opts defaults = {.skip_byte = -1};

static void expect(dsv3_tokenizer *t, const char *text, uint32_t flags, const int32_t *want,
                   size_t nw)
{
    int32_t got[64];
    size_t n;
    dsv3__err err;
    ck_assert_int_eq(dsv3__tokenizer_encode(t, text, strlen(text), flags, got, 64, &n, &err),
                     DSV3_OK);
    ck_assert_msg(n == nw && !memcmp(got, want, n * sizeof *got), "'%s': %zu ids, first %d", text,
                  n, n ? got[0] : -1);
}

#define EXPECT(t, text, flags, ...)                                     \
    do {                                                                \
        const int32_t w_[] = {__VA_ARGS__};                             \
        expect(t, text, flags, w_, sizeof w_ / sizeof w_[0]);           \
    } while (0)

START_TEST(tiny_bpe_rules)
{
    dsv3_tokenizer *t;
    char msg[DSV3__ERRMSG_CAP];
    ck_assert_msg(build_tiny(&defaults, NULL, &t, msg) == DSV3_OK, "%s", msg);
    /* lowest rank first: he, ll, hell, hello; " world": Ġw, or, then l d */
    EXPECT(t, "hello world", 0, 259, 260, 261, 'l', 'd');
    /* "b c" (rank 6) beats "a b" (rank 7) */
    EXPECT(t, "abc", 0, 'a', 262);
    /* equal ranks: the leftmost pair first */
    EXPECT(t, "aaa", 0, 264, 'a');
    EXPECT(t, "aaaa", 0, 264, 264);
    /* added tokens: non-normalized ones are found first, normalized ones in
     * the gaps, so "<q>" wins over the earlier-starting "ab<" */
    EXPECT(t, "ab<q>", 0, 263, 300);
    EXPECT(t, "ab<x", 0, 301, 'x');
    EXPECT(t, "zab<q>ab<", 0, 'z', 263, 300, 301);
    EXPECT(t, "x<|eot|>y", 0, 'x', 302, 'y');
    EXPECT(t, "<q>", DSV3_TOKENIZE_NO_SPECIAL, '<', 'q', '>');
    ck_assert_uint_eq(dsv3__tokenizer_attr(t, 300), DSV3__TOK_PRESENT | DSV3__TOK_ADDED |
                                                        DSV3__TOK_SPECIAL);
    ck_assert_uint_eq(dsv3__tokenizer_attr(t, 301), DSV3__TOK_PRESENT | DSV3__TOK_ADDED |
                                                        DSV3__TOK_NORMALIZED);
    ck_assert_uint_eq(dsv3__tokenizer_attr(t, 290), 0); /* a hole */
    const char *b;
    size_t bl;
    ck_assert_int_eq(dsv3__tokenizer_token_bytes(t, 290, &b, &bl), DSV3_E_RANGE);
    ck_assert_int_eq(dsv3__tokenizer_token_bytes(t, 260, &b, &bl), DSV3_OK);
    ck_assert(bl == 2 && !memcmp(b, " w", 2));
    ck_assert_int_eq(dsv3__tokenizer_n_tokens(t), 303);
    ck_assert_int_eq(dsv3__tokenizer_bos(t), -1);
    ck_assert_int_eq(dsv3__tokenizer_chat_kind(t), DSV3_CHAT_NONE);
    dsv3__err err;
    int32_t ids[4];
    size_t n;
    ck_assert_int_eq(dsv3__tokenizer_encode(t, "a", 1, DSV3_TOKENIZE_ADD_BOS, ids, 4, &n, &err),
                     DSV3_E_UNSUPPORTED);
    dsv3__tokenizer_free(t);
}
END_TEST

START_TEST(tiny_config)
{
    dsv3_tokenizer *t;
    char msg[DSV3__ERRMSG_CAP];
    const char *cfg = "{\"add_bos_token\": true, \"bos_token\": {\"content\": \"<q>\"}, "
                      "\"eos_token\": \"<|eot|>\", \"chat_template\": [{\"name\": \"default\", "
                      "\"template\": \"{{'<｜User｜>'}}{{'<｜Assistant｜>'}}\"}]}";
    ck_assert_msg(build_tiny(&defaults, cfg, &t, msg) == DSV3_OK, "%s", msg);
    ck_assert_int_eq(dsv3__tokenizer_bos(t), 300);
    ck_assert_int_eq(dsv3__tokenizer_eos(t), 302);
    ck_assert(dsv3__tokenizer_add_bos(t));
    ck_assert_int_eq(dsv3__tokenizer_chat_kind(t), DSV3_CHAT_DEEPSEEK_V3);
    EXPECT(t, "hello", DSV3_TOKENIZE_ADD_BOS, 300, 259);
    dsv3__tokenizer_free(t);
}
END_TEST

static void refused_with(int want, const tiny_opts *o, const char *cfg, const char *needle)
{
    dsv3_tokenizer *t;
    char msg[DSV3__ERRMSG_CAP];
    int rc = build_tiny(o, cfg, &t, msg);
    ck_assert_msg(rc == want, "expected %s mentioning '%s', got %s", dsv3_err_name(want), needle,
                  dsv3_err_name(rc));
    ck_assert_msg(strstr(msg, needle), "'%s' lacks '%s'", msg, needle);
    ck_assert_ptr_null(t);
}

/* malformed files */
static void refused(const tiny_opts *o, const char *cfg, const char *needle)
{
    refused_with(DSV3_E_FORMAT, o, cfg, needle);
}

/* well-formed files using what is not implemented */
static void unsupported(const tiny_opts *o, const char *needle)
{
    refused_with(DSV3_E_UNSUPPORTED, o, NULL, needle);
}

START_TEST(refusals)
{
    tiny_opts o = defaults;
    o.model_type = "WordPiece";
    unsupported(&o, "model type 'WordPiece'");
    o = defaults;
    o.regex3 = "\\\\s+";
    unsupported(&o, "pre_tokenizer is not DeepSeek-V3's");
    o = defaults;
    o.normalizer = "{\"type\": \"NFC\"}";
    unsupported(&o, "normalizers");
    o = defaults;
    o.decoder = "null";
    unsupported(&o, "decoder");
    o = defaults;
    o.skip_byte = 'q';
    unsupported(&o, "byte 0x71 has no token");
    o = defaults;
    o.merges = "\"h e\", \"x zz\"";
    refused(&o, NULL, "merge 2");
    o = defaults;
    o.merges = "\"h e l\"";
    refused(&o, NULL, "not two tokens");
    o = defaults;
    o.merges = "[\"h\", \"e\"], 7";
    refused(&o, NULL, "neither");
    o = defaults;
    o.added = "{\"id\": 300, \"content\": \"<q>\", \"lstrip\": true}";
    unsupported(&o, "lstrip");
    o = defaults;
    o.added = "{\"id\": 300, \"content\": \"<q>\"}, {\"id\": 301, \"content\": \"<q>\"}";
    refused(&o, NULL, "listed twice");
    o = defaults;
    o.added = "{\"id\": 300, \"content\": \"\xc4\xa0x\"}";
    unsupported(&o, "byte alphabet");
    o = defaults;
    o.added = "{\"id\": 300, \"content\": \"\"}";
    refused(&o, NULL, "no content");
    o = defaults;
    o.added = "{\"id\": 65, \"content\": \"<q>\"}";
    refused(&o, NULL, "differs from the vocabulary");
    o = defaults;
    o.added = "{\"id\": -4, \"content\": \"<q>\"}";
    refused(&o, NULL, "bad id");
    o = defaults;
    o.extra_vocab = "\"he\": 256, \"hx\": 256";
    refused(&o, NULL, "duplicate");
    refused(&defaults, "{\"bos_token\": \"<nope>\"}", "bos_token is not a token");
    refused(&defaults, "{\"eos_token\": 5}", "eos_token");
    refused(&defaults, "[1, 2]", "not an object");
    refused(&defaults, "{\"add_bos_token\": tru}", "tokenizer_config.json:");
    /* not JSON at all */
    void *blob;
    size_t bl;
    int32_t kind;
    dsv3__err err;
    ck_assert_int_eq(dsv3__tokenizer_blob_from_hf(&A, "{\"model\": [", 11, NULL, 0, &blob, &bl,
                                                  &kind, &err), DSV3_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "tokenizer.json:"));
    ck_assert_int_eq(dsv3__tokenizer_blob_from_hf(&A, "[]", 2, NULL, 0, &blob, &bl, &kind, &err),
                     DSV3_E_FORMAT);
    ck_assert_int_eq(dsv3__tokenizer_blob_from_hf(&A, NULL, 0, NULL, 0, &blob, &bl, &kind, &err),
                     DSV3_E_INVAL);
}
END_TEST

START_TEST(oom_blob_from_hf)
{
    char *js = tiny_json(&defaults);
    const char *cfg = "{\"bos_token\": \"<q>\", \"chat_template\": \"x\"}";
    for (long k = 1;; k++) {
        tu_alloc ta;
        tu_alloc_init(&ta, k);
        dsv3__alloc a;
        ck_assert_int_eq(dsv3__alloc_init(&a, &ta.a), DSV3_OK);
        void *blob = NULL;
        size_t bl;
        int32_t kind;
        dsv3__err err;
        int rc = dsv3__tokenizer_blob_from_hf(&a, js, strlen(js), cfg, strlen(cfg), &blob, &bl,
                                              &kind, &err);
        dsv3_tokenizer *t = NULL;
        if (rc == DSV3_OK) {
            rc = dsv3__tokenizer_new(&a, blob, bl, &t, &err);
            dsv3__tokenizer_free(t);
        }
        dsv3__free(&a, blob);
        ck_assert_int_eq(ta.live, 0);
        if (!ta.failed) {
            ck_assert_int_eq(rc, DSV3_OK);
            ck_assert_int_gt(k, 5);
            break;
        }
        ck_assert_msg(rc == DSV3_E_NOMEM, "k=%ld: %s", k, dsv3_err_name(rc));
    }
    free(js);
}
END_TEST

/* ---- the V3 blob: corruption, tampering, allocation failures ------------------------ */

static int load(const void *blob, size_t len, dsv3__err *err)
{
    dsv3_tokenizer *t = NULL;
    int rc = dsv3__tokenizer_new(&A, blob, len, &t, err);
    ck_assert(rc == DSV3_OK ? t != NULL : t == NULL);
    dsv3__tokenizer_free(t);
    return rc;
}

START_TEST(corrupt_and_truncated)
{
    size_t len;
    const unsigned char *blob = tf_v3_blob(&len);
    ck_assert_ptr_nonnull(blob);
    unsigned char *b = malloc(len);
    dsv3__err err;
    ck_assert_int_eq(load(blob, len, &err), DSV3_OK);
    /* a flipped bit anywhere: header bytes, then positions spread over the blob */
    for (size_t i = 0; i < 160; i++) {
        size_t pos = i < 72 ? i : (i - 72) * (len / 88) + 13;
        memcpy(b, blob, len);
        b[pos % len] ^= (unsigned char)(1u << (i % 8));
        ck_assert_msg(load(b, len, &err) == DSV3_E_FORMAT, "flip at %zu", pos % len);
    }
    const size_t cuts[] = {0, 1, 8, 63, 64, 71, 72, 4096, len / 2, len - 9, len - 8, len - 1};
    for (size_t i = 0; i < DSV3__ARRAY_LEN(cuts); i++)
        ck_assert_int_eq(load(blob, cuts[i], &err), DSV3_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "tokenizer blob"));
    ck_assert_int_eq(dsv3__tokenizer_new(&A, NULL, len, NULL, &err), DSV3_E_INVAL);
    free(b);
}
END_TEST

/* Write a 32-bit field and recompute the checksum, so that the structural
 * checks behind it are reached. */
static void poke(unsigned char *b, size_t len, size_t off, uint32_t v)
{
    tok_wr32(b + off, v);
    uint64_t sum = dsv3__xxh64(b, len - 8, 0);
    tok_wr32(b + len - 8, (uint32_t)sum);
    tok_wr32(b + len - 4, (uint32_t)(sum >> 32));
}

START_TEST(tampered_fields)
{
    size_t len;
    const unsigned char *blob = tf_v3_blob(&len);
    ck_assert_ptr_nonnull(blob);
    unsigned char *b = malloc(len);
    uint32_t n = tok_rd32(blob + 16), nm = tok_rd32(blob + 20);
    size_t o_off = TOKB_HEADER, o_attr = o_off + 4 * ((size_t)n + 1);
    size_t o_byte = o_attr + ((n + 3) & ~3u), o_merge = o_byte + 1024;
    size_t o_added = o_merge + 12 * (size_t)nm;
    ck_assert_uint_eq(tok_rd32(blob + 8), 1); /* the version this layout describes */
    ck_assert_uint_eq(n, 128815);
    struct {
        size_t off;
        uint32_t val;
        int rc;
        const char *needle;
    } cases[] = {
        {8, 2, DSV3_E_VERSION, "version 2"},
        {12, 72, DSV3_E_FORMAT, "bad header"},
        {16, 5, DSV3_E_FORMAT, "token count"},
        {16, n + 8, DSV3_E_FORMAT, "add up"},
        {20, nm - 1, DSV3_E_FORMAT, "add up"},
        {32, 2, DSV3_E_FORMAT, "pre-tokenizer"},
        {36, n, DSV3_E_FORMAT, "BOS/EOS"},
        {40, (uint32_t)-7, DSV3_E_FORMAT, "BOS/EOS"},
        {44, 4, DSV3_E_FORMAT, "flags"},
        {48, 3, DSV3_E_FORMAT, "chat-template"},
        {56, 1, DSV3_E_FORMAT, "bad header"},
        {o_off + 4 * 100, tok_rd32(blob + o_off + 4 * 99), DSV3_E_FORMAT, "token"},
        {o_off + 4 * 100, 0xFFFFFFF0u, DSV3_E_FORMAT, "offsets"},
        {o_attr + 100 - 100 % 4, 0x80808080u, DSV3_E_FORMAT, "attributes"},
        {o_attr + 50000, 0x03030303u, DSV3_E_FORMAT, "added-token list"},
        {o_byte + 4 * 'A', 3 /* '!' */, DSV3_E_FORMAT, "byte token"},
        {o_byte + 4 * 'A', n + 3, DSV3_E_FORMAT, "byte token"},
        {o_merge + 8, 0, DSV3_E_FORMAT, "joined"},
        {o_merge + 12 * 1000, n, DSV3_E_FORMAT, "out of range"},
        {o_added + 4 * 3, 5, DSV3_E_FORMAT, "not flagged added"},
        {o_added + 4 * 3, tok_rd32(blob + o_added + 4 * 4), DSV3_E_FORMAT, "twice"},
    };
    for (size_t i = 0; i < DSV3__ARRAY_LEN(cases); i++) {
        memcpy(b, blob, len);
        poke(b, len, cases[i].off, cases[i].val);
        dsv3__err err = {{0}};
        int rc = load(b, len, &err);
        ck_assert_msg(rc == cases[i].rc && strstr(err.msg, cases[i].needle),
                      "case %zu: %s '%s'", i, dsv3_err_name(rc), err.msg);
    }
    free(b);
}
END_TEST

/* Random resealed rewrites: whatever loads must also encode without harm. */
START_TEST(random_tampering)
{
    size_t len;
    const unsigned char *blob = tf_v3_blob(&len);
    ck_assert_ptr_nonnull(blob);
    unsigned char *b = malloc(len);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    int loaded = 0;
    for (int i = 0; i < 60; i++) {
        memcpy(b, blob, len);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t off = (size_t)(x % ((len - 8) / 4)) * 4;
        poke(b, len, off, (uint32_t)(x >> 32) % (i % 2 ? 200000u : 0xFFFFFFFFu));
        dsv3_tokenizer *t = NULL;
        dsv3__err err;
        int rc = dsv3__tokenizer_new(&A, b, len, &t, &err);
        ck_assert(rc == DSV3_OK || rc == DSV3_E_FORMAT || rc == DSV3_E_VERSION);
        if (rc == DSV3_OK) {
            loaded++;
            const char *s = "Hello <｜User｜> world 12345 你好 😀";
            int32_t ids[64];
            size_t n;
            ck_assert_int_eq(dsv3__tokenizer_encode(t, s, strlen(s), 0, ids, 64, &n, &err),
                             DSV3_OK);
            char out[128];
            size_t ol;
            ck_assert_int_eq(dsv3__tokenizer_decode(t, ids, n, 0, out, sizeof out, &ol, &err),
                             DSV3_OK);
        }
        dsv3__tokenizer_free(t);
    }
    (void)loaded;
    free(b);
}
END_TEST

START_TEST(oom_tokenizer_new)
{
    size_t len;
    const void *blob = tf_v3_blob(&len);
    ck_assert_ptr_nonnull(blob);
    for (long k = 1;; k++) {
        tu_alloc ta;
        tu_alloc_init(&ta, k);
        dsv3__alloc a;
        ck_assert_int_eq(dsv3__alloc_init(&a, &ta.a), DSV3_OK);
        dsv3_tokenizer *t = NULL;
        dsv3__err err;
        int rc = dsv3__tokenizer_new(&a, blob, len, &t, &err);
        dsv3__tokenizer_free(t);
        ck_assert_int_eq(ta.live, 0);
        if (!ta.failed) {
            ck_assert_int_eq(rc, DSV3_OK);
            break;
        }
        ck_assert_int_eq(rc, DSV3_E_NOMEM);
        ck_assert_ptr_null(t);
    }
}
END_TEST

START_TEST(deterministic)
{
    size_t len;
    const void *blob = tf_v3_blob(&len);
    ck_assert_ptr_nonnull(blob);
    char *tj = NULL, *cj = NULL;
    size_t tl, cl;
    ck_assert_int_eq(zf_read_v3_tokenizer(tu_source_dir(), &tj, &tl, &cj, &cl), 0);
    void *again;
    size_t al;
    int32_t kind;
    dsv3__err err;
    ck_assert_int_eq(dsv3__tokenizer_blob_from_hf(&A, tj, tl, cj, cl, &again, &al, &kind, &err),
                     DSV3_OK);
    ck_assert(al == len && !memcmp(again, blob, len));
    dsv3__free(&A, again);
    free(tj);
    free(cj);
}
END_TEST

static Suite *tokblob_suite(void)
{
    Suite *s = suite_create("tokblob");
    TCase *tc = tcase_create("from_hf");
    tcase_add_test(tc, tiny_bpe_rules);
    tcase_add_test(tc, tiny_config);
    tcase_add_test(tc, refusals);
    tcase_add_test(tc, oom_blob_from_hf);
    suite_add_tcase(s, tc);
    tc = tcase_create("validation");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, corrupt_and_truncated);
    tcase_add_test(tc, tampered_fields);
    tcase_add_test(tc, random_tampering);
    tcase_add_test(tc, oom_tokenizer_new);
    tcase_add_test(tc, deterministic);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    dsv3__alloc_init(&A, NULL);
    size_t bl;
    if (!tf_v3_blob(&bl))
        return 1;
    return tu_run_suite(tokblob_suite());
}
