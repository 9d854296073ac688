/*
 * text.c - public tokenizer and chat-template entry points on a model.
 * SPDX-License-Identifier: MIT
 */
#include "../tokenizer/tokenizer.h"
#include "model.h"

_Static_assert((int)DSV3__CHAT_KIND_NONE == (int)DSV3_CHAT_NONE &&
                   (int)DSV3__CHAT_KIND_V3 == (int)DSV3_CHAT_DEEPSEEK_V3 &&
                   (int)DSV3__CHAT_KIND_V2 == (int)DSV3_CHAT_DEEPSEEK_V2,
               "tokenizer.h and model.h disagree on chat kinds");

/* Check the handle and that it carries a tokenizer. */
static int get_tok(const dsv3_model *m, const char *fn)
{
    int rc = dsv3__model_check(m);
    if (rc)
        return rc;
    if (!m->tok)
        return dsv3__model_seterr(m, DSV3_E_UNSUPPORTED, "%s: the model has no tokenizer", fn);
    return DSV3_OK;
}

/* Copy a tokenizer-level message onto the model. */
static int report(const dsv3_model *m, int rc, const dsv3__err *e)
{
    if (rc)
        dsv3__model_seterr(m, rc, "%s", e->msg);
    return rc;
}

int dsv3_tokenize(const dsv3_model *model, const char *text, size_t len, uint32_t flags,
                  int32_t *tokens, size_t cap, size_t *n_tokens)
{
    int rc = get_tok(model, "tokenize");
    if (rc)
        return rc;
    dsv3__err e = {{0}};
    rc = dsv3__tokenizer_encode(model->tok, text, len, flags, tokens, cap, n_tokens, &e);
    return report(model, rc, &e);
}

int dsv3_detokenize(const dsv3_model *model, const int32_t *tokens, size_t n_tokens,
                    uint32_t flags, char *text, size_t cap, size_t *len)
{
    int rc = get_tok(model, "detokenize");
    if (rc)
        return rc;
    dsv3__err e = {{0}};
    rc = dsv3__tokenizer_decode(model->tok, tokens, n_tokens, flags, text, cap, len, &e);
    return report(model, rc, &e);
}

int dsv3_token_bytes(const dsv3_model *model, int32_t token, const char **bytes, size_t *len)
{
    int rc = get_tok(model, "token_bytes");
    if (rc)
        return rc;
    if (!bytes || !len)
        return dsv3__model_seterr(model, DSV3_E_INVAL, "token_bytes: NULL argument");
    rc = dsv3__tokenizer_token_bytes(model->tok, token, bytes, len);
    if (rc)
        return dsv3__model_seterr(model, rc, "token_bytes: id %d is not in the vocabulary",
                                  (int)token);
    return DSV3_OK;
}

int dsv3_chat_apply(const dsv3_model *model, const dsv3_chat_message *msgs, size_t n_msgs,
                    uint32_t flags, char *text, size_t cap, size_t *len)
{
    int rc = dsv3__model_check(model);
    if (rc)
        return rc;
    dsv3__err e = {{0}};
    rc = dsv3__chat_render(model->tok, model->chat_kind, msgs, n_msgs, flags, text, cap, len,
                           &e);
    return report(model, rc, &e);
}
