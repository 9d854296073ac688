/*
 * tokenizer.h - byte-level BPE with DeepSeek-V3's pre-tokenizer, special
 * tokens, and the chat templates.
 *
 * The converter turns Hugging Face tokenizer.json (+ tokenizer_config.json)
 * into an opaque blob stored in the model manifest; the loader builds the
 * tokenizer from that blob. A tokenizer is immutable once built: every
 * function below may be called from any number of threads at once.
 *
 * Token ids run from 0 to dsv3__tokenizer_n_tokens() - 1; ids inside that
 * range that the files do not define ("holes") are refused like ids outside
 * it (DSV3_E_RANGE).
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_TOKENIZER_H
#define DSV3_TOKENIZER_H

#include "../core/core.h"

typedef struct dsv3_tokenizer dsv3_tokenizer;

/* Chat-template kinds; the same values as enum dsv3_chat_kind in model.h. */
enum {
    DSV3__CHAT_KIND_NONE = 0,
    DSV3__CHAT_KIND_V3 = 1,
    DSV3__CHAT_KIND_V2 = 2
};

/* ---- building ------------------------------------------------------------ */

/*
 * Digest Hugging Face tokenizer files into the manifest blob.
 * cfg_json may be NULL. On success *blob is allocated with `a` (free with
 * dsv3__free) and *chat_kind is set (enum dsv3_chat_kind in model.h: 0 none).
 * Supported: a BPE model over the GPT-2 byte alphabet with DeepSeek-V3's
 * pre-tokenizer (three Split rules + ByteLevel), no normalizer, a ByteLevel
 * decoder, added tokens without lstrip/rstrip/single_word. Anything else is
 * refused with a message naming the field.
 * Errors: DSV3_E_UNSUPPORTED (well-formed files using something not
 * implemented, e.g. another pre-tokenizer: convert without a tokenizer),
 * DSV3_E_FORMAT (malformed files: bad JSON, ids, merges or config tokens),
 * DSV3_E_NOMEM, DSV3_E_INVAL (NULL arguments).
 */
int dsv3__tokenizer_blob_from_hf(const dsv3__alloc *a, const char *tok_json, size_t tok_len,
                                 const char *cfg_json, size_t cfg_len, void **blob,
                                 size_t *blob_len, int32_t *chat_kind, dsv3__err *err);

/*
 * Build a tokenizer from a manifest blob. The blob is validated completely
 * (checksum, sizes, ids, merges) and copied: the caller may free it after the
 * call. Errors: DSV3_E_FORMAT (corrupt, truncated or inconsistent blob),
 * DSV3_E_VERSION (a well-formed blob of a newer version), DSV3_E_NOMEM,
 * DSV3_E_INVAL (NULL arguments).
 */
int dsv3__tokenizer_new(const dsv3__alloc *a, const void *blob, size_t blob_len,
                        dsv3_tokenizer **out, dsv3__err *err);
/* Release a tokenizer; NULL is a no-op. */
void dsv3__tokenizer_free(dsv3_tokenizer *t);

/* ---- facts --------------------------------------------------------------- */

/* Attribute bits of one token id. */
enum {
    DSV3__TOK_PRESENT = 1u << 0,   /* the id is defined */
    DSV3__TOK_ADDED = 1u << 1,     /* an added token (matched in text before BPE) */
    DSV3__TOK_SPECIAL = 1u << 2,   /* flagged special: dropped by skip-special decoding */
    DSV3__TOK_NORMALIZED = 1u << 3 /* added token matched after normalization (HF flag) */
};

/* Number of ids (one more than the largest defined id). */
int32_t dsv3__tokenizer_n_tokens(const dsv3_tokenizer *t);
/* DSV3__TOK_* bits of an id; 0 for holes and ids out of range. */
uint32_t dsv3__tokenizer_attr(const dsv3_tokenizer *t, int32_t id);
/* BOS / EOS ids from tokenizer_config.json; -1 when unknown. */
int32_t dsv3__tokenizer_bos(const dsv3_tokenizer *t);
int32_t dsv3__tokenizer_eos(const dsv3_tokenizer *t);
/* tokenizer_config.json's add_bos_token (what HF's Python tokenizer does on
 * a plain encode); informational: encoding adds BOS only when asked. */
bool dsv3__tokenizer_add_bos(const dsv3_tokenizer *t);
/* The chat-template kind recorded in the blob (enum dsv3_chat_kind). */
int32_t dsv3__tokenizer_chat_kind(const dsv3_tokenizer *t);

/* ---- encoding and decoding ----------------------------------------------- */

/*
 * Encode UTF-8 text like Hugging Face's tokenizer pipeline: added tokens are
 * matched first (leftmost-longest; non-normalized ones before normalized
 * ones), the rest is pre-tokenized and BPE-merged. flags are
 * DSV3_TOKENIZE_ADD_BOS / DSV3_TOKENIZE_NO_SPECIAL (all added tokens are then
 * plain text). Ids are written to out[0 .. cap) and *n_out receives the total
 * count; when it exceeds cap the call fails with DSV3_E_NOSPC (out holds the
 * first cap ids). out may be NULL when cap is 0.
 * Errors: DSV3_E_INVAL (NULL text with len > 0, unknown flags),
 * DSV3_E_UTF8 (message gives the byte offset of the first invalid byte),
 * DSV3_E_UNSUPPORTED (ADD_BOS without a BOS token), DSV3_E_NOSPC,
 * DSV3_E_NOMEM.
 */
int dsv3__tokenizer_encode(const dsv3_tokenizer *t, const char *text, size_t len,
                           uint32_t flags, int32_t *out, size_t cap, size_t *n_out,
                           dsv3__err *err);

/* Raw bytes of one token (not NUL-terminated; owned by t). DSV3_E_RANGE for
 * holes and ids out of range. */
int dsv3__tokenizer_token_bytes(const dsv3_tokenizer *t, int32_t id, const char **bytes,
                                size_t *len);

/*
 * Concatenate the bytes of ids into text[0 .. cap): flags is
 * DSV3_DETOKENIZE_SKIP_SPECIAL or 0. *len receives the full length; the
 * text is NUL-terminated when len < cap. DSV3_E_NOSPC when len > cap,
 * DSV3_E_RANGE for an undefined id (message names its position),
 * DSV3_E_INVAL for unknown flags or NULL pointers.
 */
int dsv3__tokenizer_decode(const dsv3_tokenizer *t, const int32_t *ids, size_t n,
                           uint32_t flags, char *text, size_t cap, size_t *len,
                           dsv3__err *err);

/* ---- UTF-8 helpers ------------------------------------------------------- */

/* Strict UTF-8 check (no overlongs, surrogates or values above U+10FFFF).
 * Returns true when valid; otherwise *bad_off (may be NULL) receives the
 * offset of the first byte of the first invalid sequence. */
bool dsv3__utf8_check(const char *s, size_t n, size_t *bad_off);

/*
 * Streaming helper for generation. Given pending bytes s[0 .. n) (the bytes of
 * tokens produced so far and not yet shown), return how many leading bytes
 * may be shown now: a final incomplete but so-far-valid multi-byte sequence
 * (at most 3 bytes) is held back until the next token completes it; every
 * other byte, including invalid ones, is released. With final = true
 * nothing is held back (end of the stream).
 */
size_t dsv3__utf8_complete(const char *s, size_t n, bool final);

/* ---- chat templates ------------------------------------------------------ */

/*
 * Render chat messages with a template kind (enum dsv3_chat_kind) into
 * text[0 .. cap), using t's BOS/EOS strings (t may be NULL: no BOS/EOS).
 * Conventions of dsv3__tokenizer_decode for text/cap/len.
 * Roles: "system", "user", "assistant" for both kinds, and "tool" (a tool
 * result) for DeepSeek-V3, rendered as the shipped template does.
 * flags: DSV3_CHAT_ADD_GENERATION_PROMPT.
 * Errors: DSV3_E_INVAL (NULL pointers, unknown role or flags),
 * DSV3_E_UTF8 (a content that is not valid UTF-8), DSV3_E_UNSUPPORTED (kind
 * NONE or unknown), DSV3_E_NOSPC.
 */
int dsv3__chat_render(const dsv3_tokenizer *t, int32_t kind, const dsv3_chat_message *msgs,
                      size_t n_msgs, uint32_t flags, char *text, size_t cap, size_t *len,
                      dsv3__err *err);

/* Detect the template kind of a chat_template string (enum dsv3_chat_kind). */
int32_t dsv3__chat_detect(const char *tmpl, size_t len);

#endif /* DSV3_TOKENIZER_H */
