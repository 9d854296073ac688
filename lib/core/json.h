/*
 * json.h - a small strict JSON parser (RFC 8259) producing a read-only tree,
 * for config.json, safetensors headers and tokenizer.json.
 *
 * Limits: nesting depth 128; input up to SIZE_MAX. Strings are decoded to
 * UTF-8 (\u escapes, surrogate pairs); invalid UTF-8 or lone surrogates are
 * errors. Numbers keep their text and a double value.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_JSON_H
#define DSV3_JSON_H

#include "core.h"

enum dsv3_json_type {
    DSV3_JSON_NULL = 0,
    DSV3_JSON_FALSE,
    DSV3_JSON_TRUE,
    DSV3_JSON_NUMBER,
    DSV3_JSON_STRING,
    DSV3_JSON_ARRAY,
    DSV3_JSON_OBJECT
};

typedef struct dsv3_json dsv3_json;

struct dsv3_json {
    int32_t type;        /* enum dsv3_json_type */
    uint32_t reserved;
    const char *key;     /* member name when inside an object, else NULL */
    size_t key_len;
    /* STRING: decoded bytes (NUL-terminated, may contain NUL); NUMBER: the
     * number's source text (NUL-terminated) */
    const char *str;
    size_t str_len;
    double num;          /* NUMBER */
    size_t n_children;   /* ARRAY / OBJECT */
    dsv3_json *children; /* contiguous array of n_children nodes */
};

/* The parsed document; every node and string lives in one arena. */
typedef struct dsv3_json_doc {
    dsv3_json *root;
    void *arena;
    dsv3__alloc alloc;
} dsv3_json_doc;

/*
 * Parse text[0 .. len). On failure returns DSV3_E_FORMAT (message with the
 * byte offset in err) or DSV3_E_NOMEM; doc is then empty (free is harmless).
 */
int dsv3__json_parse(const dsv3__alloc *a, const char *text, size_t len, dsv3_json_doc *doc,
                     dsv3__err *err);
void dsv3__json_free(dsv3_json_doc *doc);

/* Member of an object by name (NULL if absent or not an object). */
const dsv3_json *dsv3__json_get(const dsv3_json *obj, const char *key);
/* Element of an array (NULL if out of range or not an array). */
const dsv3_json *dsv3__json_at(const dsv3_json *arr, size_t i);

/* Typed accessors: return false when the node is NULL or of another type or
 * (for integers) not an exact integer in range. */
bool dsv3__json_int64(const dsv3_json *n, int64_t *out);
bool dsv3__json_double(const dsv3_json *n, double *out);
bool dsv3__json_bool(const dsv3_json *n, bool *out);
/* String contents (NUL-terminated); NULL unless n is a string. */
const char *dsv3__json_string(const dsv3_json *n);
/* n is a string equal to s. */
bool dsv3__json_streq(const dsv3_json *n, const char *s);

#endif /* DSV3_JSON_H */
