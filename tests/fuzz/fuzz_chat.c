/*
 * fuzz_chat.c - libFuzzer target: chat templates on arbitrary messages.
 *
 * Input: byte 0 picks the template (V3, V2 or none) and the generation
 * prompt; the rest is split at 0 bytes into messages whose first byte picks a
 * role (system, user, assistant, tool, or an unknown one) and whose remaining
 * bytes are the content. Checks: the call succeeds or fails with a documented
 * code; the size query agrees with the rendering; an exact-size buffer works;
 * a rendered V3 prompt tokenizes. Deterministic, no I/O after the first call.
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

#define MAX_MSGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const roles[] = {"system", "user", "assistant", "tool", "narrator"};
    if (size < 1 || size > 16384)
        return 0;
    dsv3_tokenizer *t = tok();
    int32_t kind = data[0] % 3; /* none, V3, V2 */
    uint32_t flags = (data[0] & 4) ? DSV3_CHAT_ADD_GENERATION_PROMPT : 0;
    char *buf = malloc(size); /* NUL-terminated copies of the contents */
    CHECK(buf);
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    dsv3_chat_message msgs[MAX_MSGS];
    size_t n = 0;
    for (size_t i = 0; i + 1 < size && n < MAX_MSGS;) {
        size_t end = i + strlen(buf + i);
        msgs[n].role = roles[(unsigned char)buf[i] % 5];
        msgs[n].content = buf + (i < end ? i + 1 : i);
        n++;
        i = end + 1;
    }
    dsv3__err err;
    size_t len = 0, len2 = 0;
    int rc = dsv3__chat_render(t, kind, msgs, n, flags, NULL, 0, &len, &err);
    CHECK(rc == DSV3_OK || rc == DSV3_E_NOSPC || rc == DSV3_E_INVAL || rc == DSV3_E_UTF8 ||
          rc == DSV3_E_UNSUPPORTED);
    if (rc == DSV3_OK || rc == DSV3_E_NOSPC) {
        char *text = malloc(len + 1);
        CHECK(text);
        CHECK(dsv3__chat_render(t, kind, msgs, n, flags, text, len, &len2, &err) == DSV3_OK);
        CHECK(len2 == len);
        CHECK(dsv3__utf8_check(text, len, NULL));
        size_t nt = 0;
        rc = dsv3__tokenizer_encode(t, text, len, 0, NULL, 0, &nt, &err);
        CHECK(rc == DSV3_E_NOSPC || (rc == DSV3_OK && len == 0));
        free(text);
    }
    free(buf);
    return 0;
}
