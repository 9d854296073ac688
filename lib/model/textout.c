/*
 * textout.c - the text of a generation as it streams: token bytes in,
 * complete UTF-8 text out, stop strings held back and cut off.
 *
 * Bytes not delivered yet wait in `pend`. After each token:
 *  1. the earliest complete stop string in pend ends the text: what comes
 *     before it is delivered, nothing of it or after it ever is;
 *  2. otherwise the longest end of pend that is a proper prefix of some stop
 *     string is held back (it may still become a stop string), and so is an
 *     incomplete UTF-8 character at the end;
 *  3. the rest is delivered, with each invalid byte sequence (the maximal
 *     subparts of the Unicode standard, chapter 3) replaced by U+FFFD, so
 *     that events always carry valid UTF-8.
 * At the end of a generation (final) everything held back is delivered; an
 * incomplete character then becomes U+FFFD.
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "model.h"

static const char REPLACEMENT[3] = {(char)0xef, (char)0xbf, (char)0xbd}; /* U+FFFD */

int dsv3__utf8_unit(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    int need;
    unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0)
            lo = 0xa0; /* no overlong forms */
        else if (c == 0xed)
            hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f; /* nothing above U+10FFFF */
    } else {
        return -1;
    }
    for (int i = 1; i < need; i++) {
        if ((size_t)i >= n)
            return 0;
        unsigned b = s[i];
        if (b < lo || b > hi)
            return -i;
        lo = 0x80;
        hi = 0xbf;
    }
    return need;
}

bool dsv3__utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        int k = dsv3__utf8_unit(u + i, n - i);
        if (k <= 0)
            return false;
        i += (size_t)k;
    }
    return true;
}

static int reserve(const dsv3__alloc *a, char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return DSV3_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    char *p = dsv3__realloc(a, *buf, c);
    if (!p)
        return DSV3_E_NOMEM;
    *buf = p;
    *cap = c;
    return DSV3_OK;
}

int dsv3__textout_init(dsv3__textout *t, const dsv3__alloc *a, const char *const *stop,
                       uint32_t n_stop, bool show_special, dsv3__err *err)
{
    memset(t, 0, sizeof *t);
    t->a = a;
    t->show_special = show_special;
    if (n_stop == 0)
        return DSV3_OK;
    if (!stop)
        return dsv3__seterr(err, DSV3_E_INVAL, "generate: n_stop is %u but stop is NULL",
                            (unsigned)n_stop);
    for (uint32_t i = 0; i < n_stop; i++) {
        if (!stop[i] || !stop[i][0])
            return dsv3__seterr(err, DSV3_E_INVAL, "generate: stop string %u is %s",
                                (unsigned)i, stop[i] ? "empty" : "NULL");
        if (!dsv3__utf8_valid(stop[i], strlen(stop[i])))
            return dsv3__seterr(err, DSV3_E_INVAL, "generate: stop string %u is not valid "
                                "UTF-8", (unsigned)i);
    }
    t->stop_len = dsv3__calloc(a, n_stop, sizeof *t->stop_len);
    if (!t->stop_len)
        return dsv3__seterr(err, DSV3_E_NOMEM, "generate: out of memory");
    for (uint32_t i = 0; i < n_stop; i++)
        t->stop_len[i] = strlen(stop[i]);
    t->stop = stop;
    t->n_stop = n_stop;
    return DSV3_OK;
}

void dsv3__textout_free(dsv3__textout *t)
{
    dsv3__free(t->a, t->stop_len);
    dsv3__free(t->a, t->pend);
    dsv3__free(t->a, t->out);
    memset(t, 0, sizeof *t);
}

/* Start of the earliest complete stop string in pend, or pend_len. */
static size_t find_stop(const dsv3__textout *t)
{
    size_t best = t->pend_len;
    for (uint32_t s = 0; s < t->n_stop; s++) {
        size_t l = t->stop_len[s];
        for (size_t i = 0; i + l <= t->pend_len && i < best; i++)
            if (!memcmp(t->pend + i, t->stop[s], l)) {
                best = i;
                break;
            }
    }
    return best;
}

/* Length of the longest end of pend that is a proper prefix of a stop string. */
static size_t held_prefix(const dsv3__textout *t)
{
    size_t hold = 0;
    for (uint32_t s = 0; s < t->n_stop; s++) {
        size_t l = t->stop_len[s] - 1;
        if (l > t->pend_len)
            l = t->pend_len;
        for (; l > hold; l--)
            if (!memcmp(t->pend + t->pend_len - l, t->stop[s], l)) {
                hold = l;
                break;
            }
    }
    return hold;
}

/* Convert pend[0, n) into t->out (length *out_len); returns how many bytes
 * were consumed: all of them when final, else up to an incomplete character. */
static size_t emit(dsv3__textout *t, size_t n, bool final, size_t *out_len)
{
    const unsigned char *s = (const unsigned char *)t->pend;
    size_t i = 0, o = 0;
    while (i < n) {
        int k = dsv3__utf8_unit(s + i, n - i);
        if (k > 0) {
            memcpy(t->out + o, s + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
            continue;
        }
        if (k == 0 && !final)
            break;
        memcpy(t->out + o, REPLACEMENT, sizeof REPLACEMENT);
        o += sizeof REPLACEMENT;
        i += k < 0 ? (size_t)-k : n - i;
    }
    *out_len = o;
    return i;
}

int dsv3__textout_push(dsv3__textout *t, const char *bytes, size_t n, bool special, bool final,
                       const char **text, size_t *len, bool *stopped)
{
    *text = "";
    *len = 0;
    *stopped = t->stopped;
    if (t->stopped)
        return DSV3_OK;
    if (special && !t->show_special)
        n = 0;
    size_t need, out_need;
    if (!dsv3__add_size(t->pend_len, n, &need) || !dsv3__mul_size(need, 3, &out_need) ||
        !dsv3__add_size(out_need, 1, &out_need) || /* NUL */
        reserve(t->a, &t->pend, &t->pend_cap, need) ||
        reserve(t->a, &t->out, &t->out_cap, out_need))
        return DSV3_E_NOMEM;
    if (n)
        memcpy(t->pend + t->pend_len, bytes, n);
    t->pend_len = need;
    size_t cut = find_stop(t), used;
    if (cut < t->pend_len) {
        emit(t, cut, true, len);
        t->stopped = true;
        *stopped = true;
        t->pend_len = 0;
    } else {
        size_t limit = final ? t->pend_len : t->pend_len - held_prefix(t);
        used = emit(t, limit, final, len);
        if (used)
            memmove(t->pend, t->pend + used, t->pend_len - used);
        t->pend_len -= used;
    }
    t->out[*len] = '\0';
    *text = t->out;
    return DSV3_OK;
}
