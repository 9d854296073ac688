/*
 * text.c - public tokenizer and chat-template entry points on a model.
 * SPDX-License-Identifier: MIT
 */
#include "model.h"

static int no_tokenizer(const dsv3_model *m)
{
    int rc = dsv3__model_check(m);
    if (rc)
        return rc;
    return dsv3__model_seterr(m, DSV3_E_UNSUPPORTED, "this build has no tokenizer");
}

int dsv3_tokenize(const dsv3_model *model, const char *text, size_t len, uint32_t flags,
                  int32_t *tokens, size_t cap, size_t *n_tokens)
{
    (void)text, (void)len, (void)flags, (void)tokens, (void)cap, (void)n_tokens;
    return no_tokenizer(model);
}

int dsv3_detokenize(const dsv3_model *model, const int32_t *tokens, size_t n_tokens,
                    uint32_t flags, char *text, size_t cap, size_t *len)
{
    (void)tokens, (void)n_tokens, (void)flags, (void)text, (void)cap, (void)len;
    return no_tokenizer(model);
}

int dsv3_token_bytes(const dsv3_model *model, int32_t token, const char **bytes, size_t *len)
{
    (void)token, (void)bytes, (void)len;
    return no_tokenizer(model);
}

int dsv3_chat_apply(const dsv3_model *model, const dsv3_chat_message *msgs, size_t n_msgs,
                    uint32_t flags, char *text, size_t cap, size_t *len)
{
    (void)msgs, (void)n_msgs, (void)flags, (void)text, (void)cap, (void)len;
    return no_tokenizer(model);
}
