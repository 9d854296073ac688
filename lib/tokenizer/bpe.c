/*
 * bpe.c - byte-level BPE merging and the encoder's outer loop (added tokens
 * first, then pre-tokenizer pieces).
 *
 * Merging follows Hugging Face's rule: repeatedly merge the adjacent pair of
 * lowest rank, the leftmost one on ties. Short pieces use a flat array (a
 * scan per merge is cheapest there); long ones a binary heap of candidate
 * pairs over a linked list, O(n log n), checking on pop that the pair is
 * still current (its rank is recomputed and compared).
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "tok_priv.h"

#define BPE_SMALL 64
#define NO_RANK UINT32_MAX

static inline uint32_t pair_rank(const dsv3_tokenizer *t, int32_t l, int32_t r, int32_t *res)
{
    const tok_merge *m = tok_merge_find(t, l, r);
    if (!m)
        return NO_RANK;
    *res = m->result;
    return m->rank;
}

static void bpe_small(const dsv3_tokenizer *t, const unsigned char *s, size_t n, tok_sink *o)
{
    int32_t ids[BPE_SMALL], res[BPE_SMALL];
    uint32_t rank[BPE_SMALL];
    size_t m = n;
    for (size_t i = 0; i < n; i++)
        ids[i] = t->byte_tok[s[i]];
    for (size_t i = 0; i + 1 < m; i++)
        rank[i] = pair_rank(t, ids[i], ids[i + 1], &res[i]);
    while (m > 1) {
        uint32_t best = NO_RANK;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < m; i++)
            if (rank[i] < best) {
                best = rank[i];
                bi = i;
            }
        if (best == NO_RANK)
            break;
        ids[bi] = res[bi];
        size_t tail = m - bi - 2; /* elements after the removed one */
        memmove(ids + bi + 1, ids + bi + 2, tail * sizeof *ids);
        if (tail) {
            memmove(rank + bi + 1, rank + bi + 2, (tail - 1) * sizeof *rank);
            memmove(res + bi + 1, res + bi + 2, (tail - 1) * sizeof *res);
        }
        m--;
        if (bi > 0)
            rank[bi - 1] = pair_rank(t, ids[bi - 1], ids[bi], &res[bi - 1]);
        if (bi + 1 < m)
            rank[bi] = pair_rank(t, ids[bi], ids[bi + 1], &res[bi]);
    }
    for (size_t i = 0; i < m; i++)
        tok_emit(o, ids[i]);
}

/* ---- heap-based merging for long pieces ------------------------------------------ */

typedef struct heap_ent {
    uint32_t rank;
    uint32_t pos;
} heap_ent;

static inline bool ent_less(heap_ent a, heap_ent b)
{
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(heap_ent *h, size_t *n, heap_ent e)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ent_less(e, h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static heap_ent heap_pop(heap_ent *h, size_t *n)
{
    heap_ent top = h[0], e = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && ent_less(h[c + 1], h[c]))
            c++;
        if (!ent_less(h[c], e))
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n)
        h[i] = e;
    return top;
}

static int bpe_heap(const dsv3_tokenizer *t, const unsigned char *s, size_t n, tok_sink *o)
{
    /* per symbol: id, prev, next (-1 none); the heap holds at most 3n entries */
    size_t bytes;
    if (n > INT32_MAX || !dsv3__mul_size(n, 3 * sizeof(int32_t) + 3 * sizeof(heap_ent), &bytes))
        return DSV3_E_NOMEM;
    int32_t *id = dsv3__malloc(&t->alloc, bytes);
    if (!id)
        return DSV3_E_NOMEM;
    int32_t *prev = id + n, *next = prev + n;
    heap_ent *h = (heap_ent *)(next + n);
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        id[i] = t->byte_tok[s[i]];
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    int32_t r = -1;
    for (size_t i = 0; i + 1 < n; i++) {
        uint32_t k = pair_rank(t, id[i], id[i + 1], &r);
        if (k != NO_RANK)
            heap_push(h, &hn, (heap_ent){k, (uint32_t)i});
    }
    while (hn) {
        heap_ent e = heap_pop(h, &hn);
        int32_t p = (int32_t)e.pos, q = next[p];
        if (id[p] < 0 || q < 0 || pair_rank(t, id[p], id[q], &r) != e.rank)
            continue; /* stale: the pair changed since it was queued */
        id[p] = r;
        id[q] = -1; /* removed */
        next[p] = next[q];
        if (next[q] >= 0)
            prev[next[q]] = p;
        uint32_t k;
        if (prev[p] >= 0 && (k = pair_rank(t, id[prev[p]], id[p], &r)) != NO_RANK)
            heap_push(h, &hn, (heap_ent){k, (uint32_t)prev[p]});
        if (next[p] >= 0 && (k = pair_rank(t, id[p], id[next[p]], &r)) != NO_RANK)
            heap_push(h, &hn, (heap_ent){k, (uint32_t)p});
    }
    for (int32_t i = 0; i >= 0; i = next[i])
        tok_emit(o, id[i]);
    dsv3__free(&t->alloc, id);
    return DSV3_OK;
}

int dsv3__tok_bpe(const dsv3_tokenizer *t, const unsigned char *s, size_t n, tok_sink *o)
{
    if (n == 1) {
        tok_emit(o, t->byte_tok[s[0]]);
        return DSV3_OK;
    }
    if (n <= BPE_SMALL) {
        bpe_small(t, s, n, o);
        return DSV3_OK;
    }
    return bpe_heap(t, s, n, o);
}

/* ---- added tokens and the whole text ---------------------------------------------- */

/* Leftmost-longest added token of the given kind (1: not normalized,
 * 2: normalized) in s[from .. to). */
static bool find_added(const dsv3_tokenizer *t, const unsigned char *s, size_t from, size_t to,
                       unsigned kind, size_t *at, size_t *len, int32_t *id)
{
    for (size_t i = from; i < to; i++) {
        if (!(t->added_first[s[i]] & kind))
            continue;
        for (uint32_t k = 0; k < t->n_added_lens; k++) {
            size_t l = t->added_lens[k];
            if (l > to - i)
                continue;
            int32_t x = dsv3__tok_added_find(t, (const char *)s + i, l);
            if (x < 0 || ((t->attr[x] & DSV3__TOK_NORMALIZED) ? 2u : 1u) != kind)
                continue;
            *at = i;
            *len = l;
            *id = x;
            return true;
        }
    }
    return false;
}

static int encode_pass(const dsv3_tokenizer *t, const unsigned char *s, size_t from, size_t to,
                       unsigned kind, tok_sink *o)
{
    size_t at, len;
    int32_t id;
    int rc;
    while (find_added(t, s, from, to, kind, &at, &len, &id)) {
        if (at > from) {
            rc = kind == 1 ? encode_pass(t, s, from, at, 2, o)
                           : dsv3__tok_encode_text(t, s + from, at - from, o);
            if (rc)
                return rc;
        }
        tok_emit(o, id);
        from = at + len;
    }
    if (from >= to)
        return DSV3_OK;
    return kind == 1 ? encode_pass(t, s, from, to, 2, o)
                     : dsv3__tok_encode_text(t, s + from, to - from, o);
}

int dsv3__tokenizer_encode(const dsv3_tokenizer *t, const char *text, size_t len,
                           uint32_t flags, int32_t *out, size_t cap, size_t *n_out,
                           dsv3__err *err)
{
    if (!t || !n_out || (len && !text) || (cap && !out))
        return dsv3__seterr(err, DSV3_E_INVAL, "tokenize: NULL argument");
    *n_out = 0;
    if (flags & ~(uint32_t)(DSV3_TOKENIZE_ADD_BOS | DSV3_TOKENIZE_NO_SPECIAL))
        return dsv3__seterr(err, DSV3_E_INVAL, "tokenize: unknown flags 0x%x", flags);
    size_t bad_off;
    if (!dsv3__utf8_check(text, len, &bad_off))
        return dsv3__seterr(err, DSV3_E_UTF8, "tokenize: invalid UTF-8 at byte offset %zu",
                            bad_off);
    tok_sink o = {out, cap, 0};
    if (flags & DSV3_TOKENIZE_ADD_BOS) {
        if (t->bos < 0)
            return dsv3__seterr(err, DSV3_E_UNSUPPORTED, "tokenize: the model has no BOS token");
        tok_emit(&o, t->bos);
    }
    const unsigned char *s = (const unsigned char *)text;
    int rc = DSV3_OK;
    if (len)
        rc = (flags & DSV3_TOKENIZE_NO_SPECIAL) || !t->has_added
                 ? dsv3__tok_encode_text(t, s, len, &o)
                 : encode_pass(t, s, 0, len, 1, &o);
    if (rc)
        return dsv3__seterr(err, rc, "tokenize: out of memory");
    *n_out = o.n;
    if (o.n > cap)
        return dsv3__seterr(err, DSV3_E_NOSPC, "tokenize: %zu tokens do not fit in %zu", o.n,
                            cap);
    return DSV3_OK;
}
