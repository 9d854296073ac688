/*
 * tok.c - build a tokenizer from its blob (validating every field), token
 * facts, decoding, and the UTF-8 helpers.
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "tok_priv.h"

/* ---- UTF-8 ----------------------------------------------------------------------- */

/* Length of the valid sequence at s[0 .. n), 0 if invalid or incomplete;
 * *incomplete tells whether it is a valid but cut-off prefix. */
static size_t utf8_seq(const unsigned char *s, size_t n, bool *incomplete)
{
    unsigned c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* range of the second byte */
    *incomplete = false;
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0) {
        len = 2;
    } else if (c < 0xF0) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c < 0xF5) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if (i >= n) {
            *incomplete = true;
            return 0;
        }
        unsigned d = s[i];
        if (i == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF))
            return 0;
    }
    return len;
}

bool dsv3__utf8_check(const char *s, size_t n, size_t *bad_off)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, 8 bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, u + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        bool inc;
        size_t l = utf8_seq(u + i, n - i, &inc);
        if (!l) {
            if (bad_off)
                *bad_off = i;
            return false;
        }
        i += l;
    }
    return true;
}

size_t dsv3__utf8_complete(const char *s, size_t n, bool final)
{
    if (final || n == 0)
        return n;
    /* only the last 3 bytes can start an incomplete sequence */
    size_t from = n > 3 ? n - 3 : 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = from; i < n; i++) {
        if (u[i] < 0xC2 || u[i] > 0xF4)
            continue;
        bool inc;
        if (!utf8_seq(u + i, n - i, &inc) && inc)
            return i;
    }
    return n;
}

/* ---- building --------------------------------------------------------------------- */

void dsv3__tokenizer_free(dsv3_tokenizer *t)
{
    if (!t)
        return;
    dsv3__alloc a = t->alloc;
    dsv3__free(&a, t->off);
    dsv3__free(&a, t->attr);
    dsv3__free(&a, t->pool);
    dsv3__free(&a, t->merges);
    dsv3__free(&a, t->added_ht);
    dsv3__free(&a, t->added_lens);
    dsv3__free(&a, t);
}

typedef struct blob_view {
    const unsigned char *b;
    uint32_t n, n_merges, n_added, pool;
    size_t o_off, o_attr, o_byte, o_merge, o_added, o_pool, o_sum;
} blob_view;

static int bad(dsv3__err *err, const char *what)
{
    return dsv3__seterr(err, DSV3_E_FORMAT, "tokenizer blob: %s", what);
}

static int check_header(blob_view *v, size_t len, dsv3_tokenizer *t, dsv3__err *err)
{
    const unsigned char *b = v->b;
    if (len < TOKB_HEADER + 8 || memcmp(b, TOKB_MAGIC, 8))
        return bad(err, "not a tokenizer blob (bad magic or too short)");
    if (len % 8)
        return bad(err, "truncated (size is not a multiple of 8)");
    uint64_t sum = (uint64_t)tok_rd32(b + len - 8) | (uint64_t)tok_rd32(b + len - 4) << 32;
    if (dsv3__xxh64(b, len - 8, 0) != sum)
        return bad(err, "checksum mismatch (corrupt or truncated)");
    if (tok_rd32(b + 8) != TOKB_VERSION)
        return dsv3__seterr(err, DSV3_E_VERSION, "tokenizer blob: version %u is not supported "
                            "(this library reads version %u)", tok_rd32(b + 8), TOKB_VERSION);
    if (tok_rd32(b + 12) != TOKB_HEADER || tok_rd32(b + 52) || tok_rd32(b + 56) ||
        tok_rd32(b + 60))
        return bad(err, "bad header");
    v->n = tok_rd32(b + 16);
    v->n_merges = tok_rd32(b + 20);
    v->n_added = tok_rd32(b + 24);
    v->pool = tok_rd32(b + 28);
    if (v->n < 256 || v->n > TOKB_MAX_TOKENS || v->n_added > v->n)
        return bad(err, "bad token count");
    if (tok_rd32(b + 32) != TOKB_PRETOK_DEEPSEEK_V3)
        return bad(err, "unknown pre-tokenizer");
    t->n_tokens = (int32_t)v->n;
    t->bos = (int32_t)tok_rd32(b + 36);
    t->eos = (int32_t)tok_rd32(b + 40);
    t->flags = tok_rd32(b + 44);
    t->chat_kind = (int32_t)tok_rd32(b + 48);
    if (t->bos < -1 || t->bos >= t->n_tokens || t->eos < -1 || t->eos >= t->n_tokens)
        return bad(err, "BOS/EOS id out of range");
    if (t->flags & ~(uint32_t)(TOKB_FLAG_ADD_BOS | TOKB_FLAG_ADD_EOS))
        return bad(err, "unknown flags");
    if (t->chat_kind < DSV3__CHAT_KIND_NONE || t->chat_kind > DSV3__CHAT_KIND_V2)
        return bad(err, "unknown chat-template kind");
    /* section offsets in 64-bit arithmetic: counts are bounded above */
    uint64_t o = TOKB_HEADER;
    v->o_off = (size_t)o;
    o += 4ull * ((uint64_t)v->n + 1);
    v->o_attr = (size_t)o;
    o += ((uint64_t)v->n + 3) & ~3ull;
    v->o_byte = (size_t)o;
    o += 4ull * 256;
    v->o_merge = (size_t)o;
    o += 12ull * v->n_merges;
    v->o_added = (size_t)o;
    o += 4ull * v->n_added;
    v->o_pool = (size_t)o;
    o = (o + v->pool + 7) & ~7ull;
    v->o_sum = (size_t)o;
    if (o + 8 != (uint64_t)len)
        return bad(err, "section sizes do not add up to the blob size");
    return DSV3_OK;
}

static const unsigned char *tok_span(const dsv3_tokenizer *t, uint32_t id, size_t *len)
{
    *len = t->off[id + 1] - t->off[id];
    return (const unsigned char *)t->pool + t->off[id];
}

static int load_tokens(const blob_view *v, dsv3_tokenizer *t, dsv3__err *err)
{
    uint32_t n = v->n;
    t->off = dsv3__malloc(&t->alloc, 4 * ((size_t)n + 1));
    t->attr = dsv3__malloc(&t->alloc, n);
    t->pool = dsv3__malloc(&t->alloc, v->pool ? v->pool : 1);
    if (!t->off || !t->attr || !t->pool)
        return dsv3__seterr(err, DSV3_E_NOMEM, "out of memory loading the tokenizer");
    memcpy(t->attr, v->b + v->o_attr, n);
    memcpy(t->pool, v->b + v->o_pool, v->pool);
    uint32_t prev = 0;
    for (uint32_t i = 0; i <= n; i++) {
        uint32_t o = tok_rd32(v->b + v->o_off + 4 * (size_t)i);
        if (o < prev || (i == 0 && o != 0) || o > v->pool)
            return bad(err, "token offsets out of order");
        t->off[i] = prev = o;
    }
    if (prev != v->pool)
        return bad(err, "token offsets do not cover the pool");
    for (size_t i = n; i < ((size_t)n + 3) / 4 * 4; i++)
        if (v->b[v->o_attr + i])
            return bad(err, "non-zero padding");
    for (uint32_t i = 0; i < n; i++) {
        uint8_t a = t->attr[i];
        size_t len = t->off[i + 1] - t->off[i];
        if ((a & ~TOKB_ATTR_KNOWN) || (!(a & DSV3__TOK_PRESENT) && (a || len)) ||
            ((a & DSV3__TOK_PRESENT) && !len) ||
            ((a & (DSV3__TOK_SPECIAL | DSV3__TOK_NORMALIZED)) && !(a & DSV3__TOK_ADDED)))
            return bad(err, "inconsistent token attributes");
    }
    if ((t->bos >= 0 && !(t->attr[t->bos] & DSV3__TOK_PRESENT)) ||
        (t->eos >= 0 && !(t->attr[t->eos] & DSV3__TOK_PRESENT)))
        return bad(err, "BOS/EOS is not a token");
    for (int b = 0; b < 256; b++) {
        uint32_t id = tok_rd32(v->b + v->o_byte + 4 * (size_t)b);
        size_t len;
        if (id >= n)
            return bad(err, "byte token out of range");
        const unsigned char *s = tok_span(t, id, &len);
        if (len != 1 || s[0] != b || (t->attr[id] & DSV3__TOK_ADDED))
            return bad(err, "byte token does not stand for its byte");
        t->byte_tok[b] = (int32_t)id;
    }
    return DSV3_OK;
}

static int load_merges(const blob_view *v, dsv3_tokenizer *t, dsv3__err *err)
{
    size_t slots = 16;
    while (slots < 2 * (size_t)v->n_merges)
        slots <<= 1;
    t->merges = dsv3__calloc(&t->alloc, slots, sizeof *t->merges);
    if (!t->merges)
        return dsv3__seterr(err, DSV3_E_NOMEM, "out of memory loading the tokenizer");
    t->merge_mask = slots - 1;
    const unsigned char *m = v->b + v->o_merge;
    for (uint32_t r = 0; r < v->n_merges; r++, m += 12) {
        uint32_t l = tok_rd32(m), rr = tok_rd32(m + 4), res = tok_rd32(m + 8);
        if (l >= v->n || rr >= v->n || res >= v->n)
            return bad(err, "merge id out of range");
        size_t ll, rl, sl;
        const unsigned char *ls = tok_span(t, l, &ll), *rs = tok_span(t, rr, &rl);
        const unsigned char *ss = tok_span(t, res, &sl);
        if (!ll || !rl || sl != ll + rl || memcmp(ss, ls, ll) || memcmp(ss + ll, rs, rl))
            return bad(err, "a merge's result is not its two parts joined");
        /* a pair listed twice keeps its later rank, as Hugging Face's map does */
        uint64_t key = tok_merge_key((int32_t)l, (int32_t)rr);
        size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & t->merge_mask;
        while (t->merges[i].key && t->merges[i].key != key)
            i = (i + 1) & t->merge_mask;
        t->merges[i].key = key;
        t->merges[i].rank = r;
        t->merges[i].result = (int32_t)res;
    }
    return DSV3_OK;
}

int32_t dsv3__tok_added_find(const dsv3_tokenizer *t, const char *s, size_t n)
{
    size_t i = (size_t)tok_hash_bytes(s, n) & t->added_mask;
    for (;; i = (i + 1) & t->added_mask) {
        int32_t id = t->added_ht[i];
        if (id < 0)
            return -1;
        size_t len;
        const unsigned char *p = tok_span(t, (uint32_t)id, &len);
        if (len == n && !memcmp(p, s, n))
            return id;
    }
}

static int add_length(dsv3_tokenizer *t, uint32_t len)
{
    uint32_t k = 0;
    while (k < t->n_added_lens && t->added_lens[k] > len)
        k++;
    if (k < t->n_added_lens && t->added_lens[k] == len)
        return DSV3_OK;
    memmove(t->added_lens + k + 1, t->added_lens + k, (t->n_added_lens - k) * sizeof(uint32_t));
    t->added_lens[k] = len;
    t->n_added_lens++;
    return DSV3_OK;
}

static int load_added(const blob_view *v, dsv3_tokenizer *t, dsv3__err *err)
{
    size_t slots = 8;
    while (slots < 2 * (size_t)v->n_added)
        slots <<= 1;
    t->added_ht = dsv3__malloc(&t->alloc, slots * sizeof *t->added_ht);
    t->added_lens = dsv3__malloc(&t->alloc, ((size_t)v->n_added + 1) * sizeof(uint32_t));
    if (!t->added_ht || !t->added_lens)
        return dsv3__seterr(err, DSV3_E_NOMEM, "out of memory loading the tokenizer");
    memset(t->added_ht, 0xff, slots * sizeof *t->added_ht);
    t->added_mask = slots - 1;
    size_t n_flagged = 0;
    for (uint32_t i = 0; i < v->n; i++)
        n_flagged += (t->attr[i] & DSV3__TOK_ADDED) != 0;
    if (n_flagged != v->n_added)
        return bad(err, "added-token list does not match the attributes");
    for (uint32_t k = 0; k < v->n_added; k++) {
        uint32_t id = tok_rd32(v->b + v->o_added + 4 * (size_t)k);
        if (id >= v->n || !(t->attr[id] & DSV3__TOK_ADDED))
            return bad(err, "added-token id is not flagged added");
        size_t len;
        const unsigned char *s = tok_span(t, id, &len);
        if (!dsv3__utf8_check((const char *)s, len, NULL))
            return bad(err, "added token is not valid UTF-8");
        if (dsv3__tok_added_find(t, (const char *)s, len) >= 0)
            return bad(err, "added token listed twice");
        size_t i = (size_t)tok_hash_bytes(s, len) & t->added_mask;
        while (t->added_ht[i] >= 0)
            i = (i + 1) & t->added_mask;
        t->added_ht[i] = (int32_t)id;
        add_length(t, (uint32_t)len);
        t->added_first[s[0]] |= (t->attr[id] & DSV3__TOK_NORMALIZED) ? 2 : 1;
    }
    t->has_added = v->n_added > 0;
    return DSV3_OK;
}

int dsv3__tokenizer_new(const dsv3__alloc *a, const void *blob, size_t blob_len,
                        dsv3_tokenizer **out, dsv3__err *err)
{
    if (!out)
        return dsv3__seterr(err, DSV3_E_INVAL, "tokenizer_new: NULL argument");
    *out = NULL;
    if (!a || !blob)
        return dsv3__seterr(err, DSV3_E_INVAL, "tokenizer_new: NULL argument");
    dsv3_tokenizer *t = dsv3__calloc(a, 1, sizeof *t);
    if (!t)
        return dsv3__seterr(err, DSV3_E_NOMEM, "out of memory loading the tokenizer");
    t->alloc = *a;
    blob_view v;
    memset(&v, 0, sizeof v);
    v.b = blob;
    int rc = check_header(&v, blob_len, t, err);
    for (size_t i = v.o_pool + v.pool; !rc && i < v.o_sum; i++)
        if (v.b[i])
            rc = bad(err, "non-zero padding");
    if (!rc)
        rc = load_tokens(&v, t, err);
    if (!rc)
        rc = load_merges(&v, t, err);
    if (!rc)
        rc = load_added(&v, t, err);
    if (rc) {
        dsv3__tokenizer_free(t);
        return rc;
    }
    *out = t;
    return DSV3_OK;
}

/* ---- facts and decoding ------------------------------------------------------------ */

int32_t dsv3__tokenizer_n_tokens(const dsv3_tokenizer *t)
{
    return t->n_tokens;
}

uint32_t dsv3__tokenizer_attr(const dsv3_tokenizer *t, int32_t id)
{
    if (id < 0 || id >= t->n_tokens)
        return 0;
    return t->attr[id];
}

int32_t dsv3__tokenizer_bos(const dsv3_tokenizer *t)
{
    return t->bos;
}

int32_t dsv3__tokenizer_eos(const dsv3_tokenizer *t)
{
    return t->eos;
}

bool dsv3__tokenizer_add_bos(const dsv3_tokenizer *t)
{
    return (t->flags & TOKB_FLAG_ADD_BOS) != 0;
}

int32_t dsv3__tokenizer_chat_kind(const dsv3_tokenizer *t)
{
    return t->chat_kind;
}

int dsv3__tokenizer_token_bytes(const dsv3_tokenizer *t, int32_t id, const char **bytes,
                                size_t *len)
{
    if (id < 0 || id >= t->n_tokens || !(t->attr[id] & DSV3__TOK_PRESENT))
        return DSV3_E_RANGE;
    *bytes = (const char *)tok_span(t, (uint32_t)id, len);
    return DSV3_OK;
}

int dsv3__tokenizer_decode(const dsv3_tokenizer *t, const int32_t *ids, size_t n,
                           uint32_t flags, char *text, size_t cap, size_t *len,
                           dsv3__err *err)
{
    if (!len || (n && !ids) || (cap && !text))
        return dsv3__seterr(err, DSV3_E_INVAL, "detokenize: NULL argument");
    if (flags & ~(uint32_t)DSV3_DETOKENIZE_SKIP_SPECIAL)
        return dsv3__seterr(err, DSV3_E_INVAL, "detokenize: unknown flags 0x%x", flags);
    bool skip = flags & DSV3_DETOKENIZE_SKIP_SPECIAL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_tokens || !(t->attr[id] & DSV3__TOK_PRESENT))
            return dsv3__seterr(err, DSV3_E_RANGE, "detokenize: token %zu (id %d) is not in the "
                                "vocabulary (0 .. %d)", i, (int)id, (int)t->n_tokens - 1);
        if (skip && (t->attr[id] & DSV3__TOK_SPECIAL))
            continue;
        size_t l;
        const unsigned char *s = tok_span(t, (uint32_t)id, &l);
        if (total + l <= cap)
            memcpy(text + total, s, l);
        total += l;
    }
    *len = total;
    if (total > cap)
        return dsv3__seterr(err, DSV3_E_NOSPC, "detokenize: the text needs %zu bytes", total + 1);
    if (total < cap)
        text[total] = '\0';
    return DSV3_OK;
}
