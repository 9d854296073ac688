/*
 * json.c - a small strict JSON parser (see json.h).
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define MAX_DEPTH 128
#define ARENA_BLOCK (256u * 1024u)

/* ---- arena -------------------------------------------------------------- */

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    unsigned char data[];
} arena_block;

static void *arena_alloc(dsv3_json_doc *doc, size_t n)
{
    n = (n + 15u) & ~(size_t)15u;
    arena_block *b = doc->arena;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        size_t total;
        if (!dsv3__add_size(sizeof(arena_block), cap, &total))
            return NULL;
        arena_block *nb = dsv3__malloc(&doc->alloc, total);
        if (!nb)
            return NULL;
        nb->used = 0;
        nb->cap = cap;
        if (b && n > ARENA_BLOCK) { /* keep filling the current block later */
            nb->next = b->next;
            b->next = nb;
            nb->used = n;
            return nb->data;
        }
        nb->next = b;
        doc->arena = nb;
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

void dsv3__json_free(dsv3_json_doc *doc)
{
    if (!doc)
        return;
    arena_block *b = doc->arena;
    while (b) {
        arena_block *n = b->next;
        dsv3__free(&doc->alloc, b);
        b = n;
    }
    doc->arena = NULL;
    doc->root = NULL;
}

/* ---- parser ------------------------------------------------------------- */

typedef struct parser {
    const unsigned char *s;
    size_t len, pos;
    dsv3_json_doc *doc;
    dsv3__err *err;
    int rc;
    dsv3__vec stack[MAX_DEPTH]; /* children being collected, per depth */
    dsv3__vec sbuf;             /* string decoding scratch */
} parser;

static int fail(parser *p, const char *what)
{
    if (p->rc == DSV3_OK)
        p->rc = dsv3__seterr(p->err, DSV3_E_FORMAT, "JSON: %s at byte %zu", what, p->pos);
    return p->rc;
}

static int nomem(parser *p)
{
    if (p->rc == DSV3_OK)
        p->rc = dsv3__seterr(p->err, DSV3_E_NOMEM, "JSON: out of memory");
    return p->rc;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

/* Length of a valid UTF-8 sequence at s (max n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

static int put_utf8(parser *p, uint32_t cp)
{
    unsigned char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xc0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xe0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xf0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return dsv3__vec_push(&p->sbuf, &p->doc->alloc, b, n) ? nomem(p) : DSV3_OK;
}

static int hex4(parser *p, uint32_t *out)
{
    if (p->len - p->pos < 4)
        return fail(p, "truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p->s[p->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return fail(p, "bad \\u escape");
    }
    *out = v;
    return DSV3_OK;
}

/* Parse a string at p->pos (on the opening quote) into the arena. */
static int parse_string(parser *p, const char **out, size_t *out_len)
{
    p->pos++; /* opening quote */
    p->sbuf.len = 0;
    for (;;) {
        if (p->pos >= p->len)
            return fail(p, "unterminated string");
        unsigned char c = p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20)
            return fail(p, "control character in string");
        if (c == '\\') {
            p->pos++;
            if (p->pos >= p->len)
                return fail(p, "unterminated escape");
            unsigned char e = p->s[p->pos++];
            uint32_t cp;
            switch (e) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (hex4(p, &cp))
                    return p->rc;
                if (cp >= 0xdc00 && cp <= 0xdfff)
                    return fail(p, "lone low surrogate");
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    uint32_t lo;
                    if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
                        return fail(p, "lone high surrogate");
                    p->pos += 2;
                    if (hex4(p, &lo))
                        return p->rc;
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return fail(p, "bad surrogate pair");
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                break;
            default:
                return fail(p, "unknown escape");
            }
            if (put_utf8(p, cp))
                return p->rc;
            continue;
        }
        /* copy a run of plain bytes, validating UTF-8 */
        size_t start = p->pos;
        while (p->pos < p->len) {
            c = p->s[p->pos];
            if (c == '"' || c == '\\' || c < 0x20)
                break;
            size_t n = utf8_seq(p->s + p->pos, p->len - p->pos);
            if (!n)
                return fail(p, "invalid UTF-8 in string");
            p->pos += n;
        }
        if (dsv3__vec_push(&p->sbuf, &p->doc->alloc, p->s + start, p->pos - start))
            return nomem(p);
    }
    char *dst = arena_alloc(p->doc, p->sbuf.len + 1);
    if (!dst)
        return nomem(p);
    if (p->sbuf.len)
        memcpy(dst, p->sbuf.data, p->sbuf.len);
    dst[p->sbuf.len] = '\0';
    *out = dst;
    *out_len = p->sbuf.len;
    return DSV3_OK;
}

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

static int parse_number(parser *p, dsv3_json *n)
{
    size_t start = p->pos;
    const unsigned char *s = p->s;
#define PEEK() (p->pos < p->len ? s[p->pos] : 0)
#define DIGIT(c) ((c) >= '0' && (c) <= '9')
    if (PEEK() == '-')
        p->pos++;
    if (PEEK() == '0') {
        p->pos++;
    } else if (DIGIT(PEEK())) {
        while (DIGIT(PEEK()))
            p->pos++;
    } else {
        return fail(p, "bad number");
    }
    if (PEEK() == '.') {
        p->pos++;
        if (!DIGIT(PEEK()))
            return fail(p, "bad number fraction");
        while (DIGIT(PEEK()))
            p->pos++;
    }
    if (PEEK() == 'e' || PEEK() == 'E') {
        p->pos++;
        if (PEEK() == '+' || PEEK() == '-')
            p->pos++;
        if (!DIGIT(PEEK()))
            return fail(p, "bad number exponent");
        while (DIGIT(PEEK()))
            p->pos++;
    }
#undef PEEK
#undef DIGIT
    size_t len = p->pos - start;
    char *txt = arena_alloc(p->doc, len + 1);
    if (!txt)
        return nomem(p);
    memcpy(txt, s + start, len);
    txt[len] = '\0';
    pthread_once(&c_locale_once, make_c_locale);
    n->num = c_locale ? strtod_l(txt, NULL, c_locale) : strtod(txt, NULL);
    n->type = DSV3_JSON_NUMBER;
    n->str = txt;
    n->str_len = len;
    return DSV3_OK;
}

static int parse_value(parser *p, dsv3_json *n, int depth);

static int literal(parser *p, const char *word, int32_t type, dsv3_json *n)
{
    size_t l = strlen(word);
    if (p->len - p->pos < l || memcmp(p->s + p->pos, word, l))
        return fail(p, "unexpected token");
    p->pos += l;
    n->type = type;
    return DSV3_OK;
}

/* Parse an array or object at depth; children collected in stack[depth]. */
static int parse_container(parser *p, dsv3_json *n, int depth, int is_obj)
{
    if (depth >= MAX_DEPTH)
        return fail(p, "nesting too deep");
    dsv3__vec *v = &p->stack[depth];
    v->len = 0;
    unsigned char close = is_obj ? '}' : ']';
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
    } else {
        for (;;) {
            dsv3_json child;
            memset(&child, 0, sizeof child);
            if (is_obj) {
                skip_ws(p);
                if (p->pos >= p->len || p->s[p->pos] != '"')
                    return fail(p, "expected member name");
                if (parse_string(p, &child.key, &child.key_len))
                    return p->rc;
                skip_ws(p);
                if (p->pos >= p->len || p->s[p->pos] != ':')
                    return fail(p, "expected ':'");
                p->pos++;
            }
            if (parse_value(p, &child, depth + 1))
                return p->rc;
            /* stack[depth] may have been used by nested containers? No: they
             * use depth + 1 and deeper, so v is intact. */
            if (dsv3__vec_push(v, &p->doc->alloc, &child, 1))
                return nomem(p);
            skip_ws(p);
            if (p->pos >= p->len)
                return fail(p, is_obj ? "unterminated object" : "unterminated array");
            unsigned char c = p->s[p->pos++];
            if (c == close)
                break;
            if (c != ',')
                return fail(p, "expected ',' or end of container");
        }
    }
    n->type = is_obj ? DSV3_JSON_OBJECT : DSV3_JSON_ARRAY;
    n->n_children = v->len;
    if (v->len) {
        size_t bytes;
        if (!dsv3__mul_size(v->len, sizeof(dsv3_json), &bytes))
            return nomem(p);
        n->children = arena_alloc(p->doc, bytes);
        if (!n->children)
            return nomem(p);
        memcpy(n->children, v->data, bytes);
    }
    return DSV3_OK;
}

static int parse_value(parser *p, dsv3_json *n, int depth)
{
    skip_ws(p);
    if (p->pos >= p->len)
        return fail(p, "unexpected end of input");
    switch (p->s[p->pos]) {
    case '{':
        return parse_container(p, n, depth, 1);
    case '[':
        return parse_container(p, n, depth, 0);
    case '"':
        n->type = DSV3_JSON_STRING;
        return parse_string(p, &n->str, &n->str_len);
    case 't':
        return literal(p, "true", DSV3_JSON_TRUE, n);
    case 'f':
        return literal(p, "false", DSV3_JSON_FALSE, n);
    case 'n':
        return literal(p, "null", DSV3_JSON_NULL, n);
    default:
        return parse_number(p, n);
    }
}

int dsv3__json_parse(const dsv3__alloc *a, const char *text, size_t len, dsv3_json_doc *doc,
                     dsv3__err *err)
{
    memset(doc, 0, sizeof *doc);
    doc->alloc = *a;
    if (!text)
        return dsv3__seterr(err, DSV3_E_INVAL, "JSON: no input");
    parser *p = dsv3__calloc(a, 1, sizeof *p);
    if (!p)
        return dsv3__seterr(err, DSV3_E_NOMEM, "JSON: out of memory");
    p->s = (const unsigned char *)text;
    p->len = len;
    p->doc = doc;
    p->err = err;
    for (int i = 0; i < MAX_DEPTH; i++)
        dsv3__vec_init(&p->stack[i], sizeof(dsv3_json));
    dsv3__vec_init(&p->sbuf, 1);

    dsv3_json *root = arena_alloc(doc, sizeof *root);
    if (!root) {
        nomem(p);
    } else {
        memset(root, 0, sizeof *root);
        if (parse_value(p, root, 0) == DSV3_OK) {
            skip_ws(p);
            if (p->pos != p->len)
                fail(p, "trailing characters after the document");
        }
    }
    int rc = p->rc;
    for (int i = 0; i < MAX_DEPTH; i++)
        dsv3__vec_free(&p->stack[i], a);
    dsv3__vec_free(&p->sbuf, a);
    dsv3__free(a, p);
    if (rc) {
        dsv3__json_free(doc);
        return rc;
    }
    doc->root = root;
    return DSV3_OK;
}

/* ---- accessors ------------------------------------------------------------ */

const dsv3_json *dsv3__json_get(const dsv3_json *obj, const char *key)
{
    if (!obj || obj->type != DSV3_JSON_OBJECT)
        return NULL;
    size_t kl = strlen(key);
    /* last one wins, like most parsers, for duplicate names */
    for (size_t i = obj->n_children; i-- > 0;) {
        const dsv3_json *c = &obj->children[i];
        if (c->key_len == kl && !memcmp(c->key, key, kl))
            return c;
    }
    return NULL;
}

const dsv3_json *dsv3__json_at(const dsv3_json *arr, size_t i)
{
    if (!arr || arr->type != DSV3_JSON_ARRAY || i >= arr->n_children)
        return NULL;
    return &arr->children[i];
}

bool dsv3__json_int64(const dsv3_json *n, int64_t *out)
{
    if (!n || n->type != DSV3_JSON_NUMBER)
        return false;
    const char *s = n->str;
    bool neg = *s == '-';
    if (neg)
        s++;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (*s) { /* fraction or exponent: accept only exact integers */
        double d = n->num;
        if (!isfinite(d) || d != floor(d) || d < -9.2e18 || d > 9.2e18)
            return false;
        *out = (int64_t)d;
        return true;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return false;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)v;
    }
    return true;
}

bool dsv3__json_double(const dsv3_json *n, double *out)
{
    if (!n || n->type != DSV3_JSON_NUMBER)
        return false;
    *out = n->num;
    return true;
}

bool dsv3__json_bool(const dsv3_json *n, bool *out)
{
    if (!n || (n->type != DSV3_JSON_TRUE && n->type != DSV3_JSON_FALSE))
        return false;
    *out = n->type == DSV3_JSON_TRUE;
    return true;
}

const char *dsv3__json_string(const dsv3_json *n)
{
    return n && n->type == DSV3_JSON_STRING ? n->str : NULL;
}

bool dsv3__json_streq(const dsv3_json *n, const char *s)
{
    return n && n->type == DSV3_JSON_STRING && n->str_len == strlen(s) &&
           !memcmp(n->str, s, n->str_len);
}
