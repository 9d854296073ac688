/*
 * tok_fixture.c - see tok_fixture.h.
 * SPDX-License-Identifier: MIT
 */
#include "tok_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "zst_file.h"

static void *g_blob;
static size_t g_blob_len;

const void *tf_v3_blob(size_t *len)
{
    if (!g_blob) {
        const char *src = getenv("DSV3_SOURCE_DIR");
        char *tj, *cj;
        size_t tl, cl;
        if (!src || zf_read_v3_tokenizer(src, &tj, &tl, &cj, &cl)) {
            fprintf(stderr, "# cannot read tests/data/deepseek-v3 (DSV3_SOURCE_DIR=%s)\n",
                    src ? src : "(unset)");
            return NULL;
        }
        dsv3__alloc a;
        dsv3__alloc_init(&a, NULL);
        dsv3__err err = {{0}};
        int32_t kind;
        int rc = dsv3__tokenizer_blob_from_hf(&a, tj, tl, cj, cl, &g_blob, &g_blob_len, &kind,
                                              &err);
        free(tj);
        free(cj);
        if (rc || kind != DSV3_CHAT_DEEPSEEK_V3) {
            fprintf(stderr, "# blob_from_hf: %s (kind %d)\n", err.msg, (int)kind);
            return NULL;
        }
    }
    *len = g_blob_len;
    return g_blob;
}

dsv3_tokenizer *tf_v3_tokenizer(void)
{
    size_t len;
    const void *blob = tf_v3_blob(&len);
    ck_assert_ptr_nonnull(blob);
    dsv3__alloc a;
    dsv3__alloc_init(&a, NULL);
    dsv3__err err = {{0}};
    dsv3_tokenizer *t = NULL;
    int rc = dsv3__tokenizer_new(&a, blob, len, &t, &err);
    ck_assert_msg(rc == DSV3_OK, "tokenizer_new: %s", err.msg);
    return t;
}

dsv3_model *tf_model_new(dsv3_tokenizer *tok, int32_t chat_kind)
{
    dsv3_model *m = calloc(1, sizeof *m);
    ck_assert_ptr_nonnull(m);
    m->magic = DSV3__MAGIC_MODEL;
    atomic_init(&m->refs, 1);
    dsv3__alloc_init(&m->alloc, NULL);
    pthread_mutex_init(&m->err_lock, NULL);
    m->tok = tok;
    m->chat_kind = chat_kind;
    return m;
}

void tf_model_free(dsv3_model *m)
{
    if (!m)
        return;
    dsv3__tokenizer_free(m->tok);
    pthread_mutex_destroy(&m->err_lock);
    m->magic = DSV3__MAGIC_DEAD;
    free(m);
}

int tf_json_load(const char *rel, dsv3_json_doc *doc)
{
    const char *src = getenv("DSV3_SOURCE_DIR");
    char *path = tu_path(src ? src : ".", rel);
    size_t len;
    char *text = tu_read_file(path, &len);
    int rc = DSV3_E_IO;
    if (text) {
        dsv3__alloc a;
        dsv3__alloc_init(&a, NULL);
        dsv3__err err = {{0}};
        rc = dsv3__json_parse(&a, text, len, doc, &err);
        if (rc)
            fprintf(stderr, "# %s: %s\n", path, err.msg);
    } else {
        fprintf(stderr, "# cannot read %s\n", path);
    }
    free(text);
    free(path);
    return rc;
}
