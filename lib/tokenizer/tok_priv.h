/*
 * tok_priv.h - private to lib/tokenizer: the blob layout and the in-memory
 * tokenizer. Other subsystems use tokenizer.h only.
 *
 * Blob, version 1 (all integers little-endian, sections 4-byte aligned):
 *   header (64 bytes)
 *     0  magic "dsv3tok" + 0x1a           32 pretokenizer kind (1 = DeepSeek-V3)
 *     8  u32 version (1)                  36 i32 BOS id (-1: none)
 *    12  u32 header size (64)             40 i32 EOS id (-1: none)
 *    16  u32 n_tokens (ids 0..n-1)        44 u32 flags (bit 0 add_bos, bit 1 add_eos)
 *    20  u32 n_merges                     48 i32 chat-template kind
 *    24  u32 n_added                      52 three u32, zero
 *    28  u32 pool size (bytes)
 *   u32 offsets[n_tokens + 1]    token i = pool[off[i] .. off[i+1]), off[n] = pool size
 *   u8  attr[n_tokens]           DSV3__TOK_* bits, then zero padding to 4 bytes
 *   u32 byte_token[256]          the token of each single byte (BPE start symbols)
 *   u32 merges[n_merges][3]      left, right, result; rank = index
 *   u32 added[n_added]           ids of the added tokens
 *   u8  pool[pool size]          token bytes, then zero padding to 8 bytes
 *   u64 xxh64(everything before it, seed 0)
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_TOK_PRIV_H
#define DSV3_TOK_PRIV_H

#include "tokenizer.h"

#define TOKB_MAGIC "dsv3tok\x1a"
#define TOKB_VERSION 1u
#define TOKB_HEADER 64u
#define TOKB_PRETOK_DEEPSEEK_V3 1u
#define TOKB_FLAG_ADD_BOS 1u
#define TOKB_FLAG_ADD_EOS 2u
#define TOKB_ATTR_KNOWN (DSV3__TOK_PRESENT | DSV3__TOK_ADDED | DSV3__TOK_SPECIAL | DSV3__TOK_NORMALIZED)
#define TOKB_MAX_TOKENS (1u << 24)

/* One BPE merge in the open-addressing table; key is the id pair plus one
 * (tok_merge_key), so 0 marks an empty slot. */
typedef struct tok_merge {
    uint64_t key;    /* (left << 32 | right) + 1 */
    uint32_t rank;
    int32_t result;
} tok_merge;

struct dsv3_tokenizer {
    dsv3__alloc alloc;
    int32_t n_tokens;
    int32_t bos, eos;
    int32_t chat_kind;
    uint32_t flags;
    uint32_t *off;         /* [n_tokens + 1] */
    uint8_t *attr;         /* [n_tokens] */
    char *pool;            /* token bytes */
    int32_t byte_tok[256];
    tok_merge *merges;     /* hash table, mask + 1 slots */
    size_t merge_mask;
    int32_t *added_ht;     /* hash table of added-token ids (-1 empty), mask + 1 slots */
    size_t added_mask;
    uint32_t *added_lens;  /* distinct added-token lengths, longest first */
    uint32_t n_added_lens;
    uint8_t added_first[256]; /* bit 0: a non-normalized, bit 1: a normalized token starts here */
    bool has_added;
};

static inline uint64_t tok_merge_key(int32_t l, int32_t r)
{
    return (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1u;
}

static inline const tok_merge *tok_merge_find(const dsv3_tokenizer *t, int32_t l, int32_t r)
{
    uint64_t key = tok_merge_key(l, r);
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & t->merge_mask;
    for (;;) {
        const tok_merge *m = &t->merges[i];
        if (m->key == key)
            return m;
        if (!m->key)
            return NULL;
        i = (i + 1) & t->merge_mask;
    }
}

/* FNV-1a over bytes, for the added-token table. */
static inline uint64_t tok_hash_bytes(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

/* Added token id whose bytes are s[0 .. n), or -1. */
int32_t dsv3__tok_added_find(const dsv3_tokenizer *t, const char *s, size_t n);

/* GPT-2 byte-level alphabet: the character each byte is written as. */
uint32_t dsv3__tok_byte_char(uint8_t b);
/* The byte a character stands for, or -1 when it is not in the alphabet. */
int dsv3__tok_char_byte(uint32_t cp);

/* Little-endian field access. */
static inline uint32_t tok_rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void tok_wr32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* Where encoded ids go: out[0 .. cap) is filled as far as it goes, n counts
 * every id. */
typedef struct tok_sink {
    int32_t *out;
    size_t cap;
    size_t n;
} tok_sink;

static inline void tok_emit(tok_sink *o, int32_t id)
{
    if (o->n < o->cap)
        o->out[o->n] = id;
    o->n++;
}

/* Pre-tokenize and BPE-encode s[0 .. len) (valid UTF-8, no added-token
 * matching) into o. DSV3_OK or DSV3_E_NOMEM. */
int dsv3__tok_encode_text(const dsv3_tokenizer *t, const unsigned char *s, size_t len,
                          tok_sink *o);
/* BPE-merge one pre-tokenized piece. */
int dsv3__tok_bpe(const dsv3_tokenizer *t, const unsigned char *s, size_t n, tok_sink *o);

#endif /* DSV3_TOK_PRIV_H */
