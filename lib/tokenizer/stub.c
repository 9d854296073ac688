/*
 * stub.c - placeholder tokenizer entry points for builds without the
 * tokenizer: every call reports DSV3_E_UNSUPPORTED. Replaced by the real
 * implementation of lib/tokenizer.
 * SPDX-License-Identifier: MIT
 */
#include "tokenizer.h"

int dsv3__tokenizer_blob_from_hf(const dsv3__alloc *a, const char *tok_json, size_t tok_len,
                                 const char *cfg_json, size_t cfg_len, void **blob,
                                 size_t *blob_len, int32_t *chat_kind, dsv3__err *err)
{
    (void)a, (void)tok_json, (void)tok_len, (void)cfg_json, (void)cfg_len;
    *blob = NULL;
    *blob_len = 0;
    *chat_kind = 0;
    return dsv3__seterr(err, DSV3_E_UNSUPPORTED, "this build has no tokenizer");
}

int dsv3__tokenizer_new(const dsv3__alloc *a, const void *blob, size_t blob_len,
                        dsv3_tokenizer **out, dsv3__err *err)
{
    (void)a, (void)blob, (void)blob_len;
    *out = NULL;
    return dsv3__seterr(err, DSV3_E_UNSUPPORTED, "this build has no tokenizer");
}

void dsv3__tokenizer_free(dsv3_tokenizer *t)
{
    (void)t;
}
