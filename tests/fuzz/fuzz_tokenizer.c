/*
 * fuzz_tokenizer.c - libFuzzer target: DeepSeek-V3's tokenizer (built once from
 * tests/data/deepseek-v3) on arbitrary bytes.
 *
 * Input: one flags byte, then the text. Checks: invalid UTF-8 is refused with
 * DSV3_E_UTF8 and nothing else; valid text encodes, the counting call agrees
 * with the filling one, and decoding gives the text back byte for byte. The
 * same bytes are also decoded as a list of ids (undefined ids must give
 * DSV3_E_RANGE) and streamed through the UTF-8 completeness helper.
 * Deterministic, no I/O after the first call; input capped at 64 KiB.
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"
#include "zst_file.h"

#ifndef DSV3_SOURCE_DIR
#define DSV3_SOURCE_DIR "."
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                          \
        }                                                                     \
    } while (0)

static dsv3_tokenizer *tok(void)
{
    static dsv3_tokenizer *t;
    if (t)
        return t;
    const char *src = getenv("DSV3_SOURCE_DIR");
    char *tj, *cj;
    size_t tl, cl;
    CHECK(zf_read_v3_tokenizer(src ? src : DSV3_SOURCE_DIR, &tj, &tl, &cj, &cl) == 0);
    dsv3__alloc a;
    dsv3__alloc_init(&a, NULL);
    dsv3__err err;
    void *blob;
    size_t bl;
    int32_t kind;
    CHECK(dsv3__tokenizer_blob_from_hf(&a, tj, tl, cj, cl, &blob, &bl, &kind, &err) == DSV3_OK);
    CHECK(dsv3__tokenizer_new(&a, blob, bl, &t, &err) == DSV3_OK);
    dsv3__free(&a, blob);
    free(tj);
    free(cj);
    return t;
}

static void ids_as_input(dsv3_tokenizer *t, const uint8_t *data, size_t size)
{
    size_t n = size / 4;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    CHECK(ids);
    memcpy(ids, data, n * 4);
    for (size_t i = 0; i < n; i++) /* mostly small ids, some wild ones */
        if (ids[i] >= 0 && (ids[i] & 0x40000000))
            ids[i] %= 130000;
    dsv3__err err;
    size_t len = 0;
    int rc = dsv3__tokenizer_decode(t, ids, n, 0, NULL, 0, &len, &err);
    CHECK(rc == DSV3_OK || rc == DSV3_E_NOSPC || rc == DSV3_E_RANGE);
    if (rc != DSV3_E_RANGE) {
        char *text = malloc(len + 1);
        CHECK(text);
        CHECK(dsv3__tokenizer_decode(t, ids, n, DSV3_DETOKENIZE_SKIP_SPECIAL, text, len + 1,
                                     &len, &err) == DSV3_OK);
        free(text);
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    dsv3_tokenizer *t = tok();
    uint32_t flags = data[0] & (DSV3_TOKENIZE_ADD_BOS | DSV3_TOKENIZE_NO_SPECIAL);
    const char *text = (const char *)data + 1;
    size_t len = size - 1, n = 0, n2 = 0;
    dsv3__err err;
    bool valid = dsv3__utf8_check(text, len, NULL);
    int rc = dsv3__tokenizer_encode(t, text, len, flags, NULL, 0, &n, &err);
    if (!valid) {
        CHECK(rc == DSV3_E_UTF8);
    } else {
        CHECK(rc == (len || (flags & DSV3_TOKENIZE_ADD_BOS) ? DSV3_E_NOSPC : DSV3_OK));
        CHECK(n <= len + 1);
        int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
        CHECK(ids);
        CHECK(dsv3__tokenizer_encode(t, text, len, flags, ids, n, &n2, &err) == DSV3_OK);
        CHECK(n2 == n);
        size_t skip = (flags & DSV3_TOKENIZE_ADD_BOS) ? 1 : 0, out_len = 0;
        char *out = malloc(len + 1);
        CHECK(out);
        CHECK(dsv3__tokenizer_decode(t, ids + skip, n - skip, 0, out, len + 1, &out_len, &err) ==
              DSV3_OK);
        CHECK(out_len == len && !memcmp(out, text, len));
        free(out);
        free(ids);
    }
    /* streaming: released prefixes never cut a valid character */
    size_t shown = dsv3__utf8_complete(text, len, false);
    CHECK(shown <= len && len - shown <= 3);
    if (valid)
        CHECK(dsv3__utf8_check(text, shown, NULL));
    ids_as_input(t, data, size);
    return 0;
}
