/*
 * tokenizer.h - byte-level BPE with DeepSeek-V3's pre-tokenizer, special
 * tokens, and the chat templates.
 *
 * The converter turns Hugging Face tokenizer.json (+ tokenizer_config.json)
 * into an opaque blob stored in the model manifest; the loader builds the
 * tokenizer from that blob.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_TOKENIZER_H
#define DSV3_TOKENIZER_H

#include "../core/core.h"

typedef struct dsv3_tokenizer dsv3_tokenizer;

/*
 * Digest Hugging Face tokenizer files into the manifest blob.
 * cfg_json may be NULL. On success *blob is allocated with `a` (free with
 * dsv3__free) and *chat_kind is set (enum dsv3_chat_kind in model.h: 0 none).
 * Errors: DSV3_E_FORMAT (malformed or unsupported tokenizer), DSV3_E_NOMEM.
 */
int dsv3__tokenizer_blob_from_hf(const dsv3__alloc *a, const char *tok_json, size_t tok_len,
                                 const char *cfg_json, size_t cfg_len, void **blob,
                                 size_t *blob_len, int32_t *chat_kind, dsv3__err *err);

/* Build a tokenizer from a manifest blob (validated; DSV3_E_FORMAT if bad). */
int dsv3__tokenizer_new(const dsv3__alloc *a, const void *blob, size_t blob_len,
                        dsv3_tokenizer **out, dsv3__err *err);
void dsv3__tokenizer_free(dsv3_tokenizer *t);

#endif /* DSV3_TOKENIZER_H */
