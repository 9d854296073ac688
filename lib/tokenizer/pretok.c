/*
 * pretok.c - DeepSeek-V3's pre-tokenizer: three "Isolated" Split rules
 * applied in sequence, each inside the pieces of the previous one.
 *
 *  1. \p{N}{1,3}
 *  2. [U+4E00-U+9FA5 U+3040-U+309F U+30A0-U+30FF]+
 *  3. [ASCII punct][A-Za-z]+ | [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
 *     | ' '?[\p{P}\p{S}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
 *
 * Rules 1 and 2 together cut the text into runs of digits (chunks of at most
 * three), runs of the CJK/kana ranges, and the rest; rule 3 is matched by
 * hand at each position, alternatives in order, with the backtracking
 * outcome of each worked out (see match3). Matches and the text between them
 * become pieces, each BPE-encoded on its own. Character classes come from
 * utf8proc's Unicode database; \s is Unicode White_Space.
 * SPDX-License-Identifier: MIT
 */
#include <utf8proc.h>

#include "tok_priv.h"

enum {
    C_L = 1 << 0,     /* \p{L} */
    C_M = 1 << 1,     /* \p{M} */
    C_N = 1 << 2,     /* \p{N} */
    C_P = 1 << 3,     /* \p{P} */
    C_S = 1 << 4,     /* \p{S} */
    C_WS = 1 << 5,    /* \s */
    C_CRLF = 1 << 6,  /* \r or \n */
    C_CJK = 1 << 7,   /* the ranges of rule 2 */
    C_APUNCT = 1 << 8,/* the 32 ASCII punctuation characters */
    C_AALPHA = 1 << 9,/* A-Z a-z */
    C_SPACE = 1 << 10 /* U+0020 */
};

#define PU (C_P | C_APUNCT)
#define SY (C_S | C_APUNCT)
#define AL (C_L | C_AALPHA)
#define DG C_N
#define WS C_WS
#define NL (C_WS | C_CRLF)
#define SP (C_WS | C_SPACE)

static const uint16_t ascii_cls[128] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  WS, NL, WS, WS, NL, 0,  0,  /* 0x00 */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
    SP, PU, PU, PU, SY, PU, PU, PU, PU, PU, PU, SY, PU, PU, PU, PU, /*  !"#$%&'()*+,-./ */
    DG, DG, DG, DG, DG, DG, DG, DG, DG, DG, PU, PU, SY, SY, SY, PU, /* 0-9 :;<=>? */
    PU, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, /* @A-O */
    AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, PU, PU, PU, SY, PU, /* P-Z [\]^_ */
    SY, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, /* `a-o */
    AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, PU, SY, PU, SY, 0,  /* p-z {|}~ DEL */
};

static uint32_t cp_cls(uint32_t cp)
{
    uint32_t c = 0;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        c = C_L;
        break;
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
        c = C_M;
        break;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        c = C_N;
        break;
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        c = C_P;
        break;
    case UTF8PROC_CATEGORY_SM: case UTF8PROC_CATEGORY_SC: case UTF8PROC_CATEGORY_SK:
    case UTF8PROC_CATEGORY_SO:
        c = C_S;
        break;
    default:
        break;
    }
    /* White_Space beyond ASCII */
    if (cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
        cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000)
        c |= C_WS;
    if ((cp >= 0x4E00 && cp <= 0x9FA5) || (cp >= 0x3040 && cp <= 0x30FF))
        c |= C_CJK;
    return c;
}

/* Class and length of the (valid UTF-8) character at s. */
static inline uint32_t cls_at(const unsigned char *s, size_t *len)
{
    unsigned b = s[0];
    if (b < 0x80) {
        *len = 1;
        return ascii_cls[b];
    }
    uint32_t cp;
    if (b < 0xE0) {
        cp = (uint32_t)(b & 0x1F) << 6 | (s[1] & 0x3F);
        *len = 2;
    } else if (b < 0xF0) {
        cp = (uint32_t)(b & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        *len = 3;
    } else {
        cp = (uint32_t)(b & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
             (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
        *len = 4;
    }
    return cp_cls(cp);
}

/* End of the run of characters in class mask starting at p (before e). */
static inline size_t run_of(const unsigned char *s, size_t p, size_t e, uint32_t mask)
{
    while (p < e) {
        size_t l;
        if (s[p] < 0x80) {
            if (!(ascii_cls[s[p]] & mask))
                break;
            p++;
            continue;
        }
        if (!(cls_at(s + p, &l) & mask))
            break;
        p += l;
    }
    return p;
}

/*
 * Length of rule 3's match at p within [p, e), 0 if none. Alternatives:
 * (a) punct + ASCII letters; (b) the optional character X (not CR/LF/L/P/S)
 * is taken when a letter or mark follows it, otherwise the run must start
 * at p itself; (c) likewise for the optional space before punctuation;
 * (d) \s*[\r\n]+ backtracks to the last CR/LF of the whitespace run;
 * (e) \s+(?!\S) takes the whole run at the end of the piece, else all but
 * its last character (needs two); (f) the whole run.
 */
static size_t match3(const unsigned char *s, size_t p, size_t e)
{
    size_t l0, l1 = 0;
    uint32_t c0 = cls_at(s + p, &l0), c1 = 0;
    size_t q = p + l0;
    if (q < e)
        c1 = cls_at(s + q, &l1);
    if ((c0 & C_APUNCT) && (c1 & C_AALPHA))
        return run_of(s, q, e, C_AALPHA) - p;
    if (!(c0 & (C_CRLF | C_L | C_P | C_S)) && (c1 & (C_L | C_M)))
        return run_of(s, q, e, C_L | C_M) - p;
    if (c0 & (C_L | C_M))
        return run_of(s, p, e, C_L | C_M) - p;
    if ((c0 & C_SPACE) && (c1 & (C_P | C_S)))
        return run_of(s, run_of(s, q, e, C_P | C_S), e, C_CRLF) - p;
    if (c0 & (C_P | C_S))
        return run_of(s, run_of(s, p, e, C_P | C_S), e, C_CRLF) - p;
    if (!(c0 & C_WS))
        return 0;
    size_t w = p, last = p, crlf_end = 0, nchars = 0;
    while (w < e) {
        size_t l;
        uint32_t c = cls_at(s + w, &l);
        if (!(c & C_WS))
            break;
        if (c & C_CRLF)
            crlf_end = w + l;
        last = w;
        w += l;
        nchars++;
    }
    if (crlf_end)
        return crlf_end - p;
    if (w == e)
        return w - p;
    if (nchars >= 2)
        return last - p;
    return w - p;
}

/* Rule 3 inside one piece of rules 1-2. */
static int split3(const dsv3_tokenizer *t, const unsigned char *s, size_t b, size_t e,
                  tok_sink *o)
{
    size_t gap = b, p = b;
    int rc;
    while (p < e) {
        size_t m = match3(s, p, e);
        if (!m) {
            size_t l;
            cls_at(s + p, &l);
            p += l;
            continue;
        }
        if (gap < p && (rc = dsv3__tok_bpe(t, s + gap, p - gap, o)))
            return rc;
        if ((rc = dsv3__tok_bpe(t, s + p, m, o)))
            return rc;
        p += m;
        gap = p;
    }
    if (gap < e)
        return dsv3__tok_bpe(t, s + gap, e - gap, o);
    return DSV3_OK;
}

int dsv3__tok_encode_text(const dsv3_tokenizer *t, const unsigned char *s, size_t len,
                          tok_sink *o)
{
    size_t p = 0;
    int rc;
    while (p < len) {
        size_t l;
        uint32_t c = cls_at(s + p, &l);
        size_t q = p + l;
        if (c & C_N) { /* up to three digits: rule 3 never splits them */
            for (int k = 1; k < 3 && q < len; k++) {
                size_t l2;
                if (!(cls_at(s + q, &l2) & C_N))
                    break;
                q += l2;
            }
            rc = dsv3__tok_bpe(t, s + p, q - p, o);
        } else if (c & C_CJK) {
            q = run_of(s, q, len, C_CJK);
            rc = split3(t, s, p, q, o);
        } else {
            while (q < len) {
                size_t l2;
                if (cls_at(s + q, &l2) & (C_N | C_CJK))
                    break;
                q += l2;
            }
            rc = split3(t, s, p, q, o);
        }
        if (rc)
            return rc;
        p = q;
    }
    return DSV3_OK;
}
