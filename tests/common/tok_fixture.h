/*
 * tok_fixture.h - DeepSeek-V3's tokenizer for the tokenizer and chat suites:
 * built once from the committed files, plus a minimal model handle that
 * carries it so the public dsv3_tokenize/... functions can be called without
 * a model file.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_TOK_FIXTURE_H
#define DSV3_TOK_FIXTURE_H

#include "core/json.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

/* The blob built from tests/data/deepseek-v3 (malloc allocator; built on
 * first use, kept for the process); NULL (after a message) on failure. May
 * be called outside tests (main), so that forked tests inherit it. */
const void *tf_v3_blob(size_t *len);
/* A fresh tokenizer from that blob (free with dsv3__tokenizer_free). */
dsv3_tokenizer *tf_v3_tokenizer(void);

/* A model handle that only carries tok (may be NULL) and chat_kind. */
dsv3_model *tf_model_new(dsv3_tokenizer *tok, int32_t chat_kind);
/* Free the handle and its tokenizer. */
void tf_model_free(dsv3_model *m);

/* Parse a JSON file of the source tree (path relative to it); DSV3_OK or an
 * error after a message on stderr. Usable outside tests. */
int tf_json_load(const char *rel, dsv3_json_doc *doc);

#endif
