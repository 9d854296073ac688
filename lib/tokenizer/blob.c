/*
 * blob.c - digest Hugging Face tokenizer.json + tokenizer_config.json into
 * the versioned tokenizer blob of the model manifest (layout: tok_priv.h).
 *
 * Files that are well formed but use what this library does not implement
 * are refused with DSV3_E_UNSUPPORTED (the converter then goes on without a
 * tokenizer); malformed ones with DSV3_E_FORMAT.
 * What is checked: the model is byte-level BPE without dropout, byte
 * fallback, subword prefixes/suffixes or ignore_merges; no normalizer; the
 * pre-tokenizer is DeepSeek-V3's (three Split rules, then ByteLevel without
 * its own regex); the decoder is ByteLevel; every merge joins two vocabulary
 * entries into a third; every byte has a token.
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "../core/json.h"
#include "tok_priv.h"

/* ---- the GPT-2 byte alphabet ------------------------------------------------ */

/* Bytes 33-126, 161-172 and 174-255 stand for themselves; the other 68 bytes
 * (0-32, 127-160, 173), in order, are written as U+0100 onwards. */
uint32_t dsv3__tok_byte_char(uint8_t b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)
        return b;
    if (b <= 32)
        return 256u + b;
    if (b <= 160)
        return 256u + 33u + (uint32_t)(b - 127);
    return 256u + 67u; /* 173 */
}

int dsv3__tok_char_byte(uint32_t cp)
{
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255))
        return (int)cp;
    if (cp >= 256 && cp < 256 + 33)
        return (int)(cp - 256);
    if (cp >= 256 + 33 && cp < 256 + 67)
        return (int)(cp - 256 - 33 + 127);
    if (cp == 256 + 67)
        return 173;
    return -1;
}

/* Decode one character of valid UTF-8 (the JSON parser guarantees it). */
static size_t utf8_dec(const unsigned char *s, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] < 0xE0) {
        *cp = (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
        return 2;
    }
    if (s[0] < 0xF0) {
        *cp = (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        return 3;
    }
    *cp = (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
          (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
    return 4;
}

/* Bytes a vocabulary string stands for: the alphabet decoded when every
 * character belongs to it, else the string's own UTF-8 (what the ByteLevel
 * decoder does). Writes to out (NULL: only count); returns the length. */
static size_t vocab_bytes(const char *s, size_t n, unsigned char *out, bool *raw)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += utf8_dec(u + i, &cp);
        int b = dsv3__tok_char_byte(cp);
        if (b < 0) {
            if (out)
                memcpy(out, s, n);
            *raw = true;
            return n;
        }
        if (out)
            out[k] = (unsigned char)b;
        k++;
    }
    *raw = false;
    return k;
}

/* ---- conversion state ------------------------------------------------------- */

typedef struct conv {
    const dsv3__alloc *a;
    dsv3__err *err;
    dsv3_json_doc tok, cfg;
    const dsv3_json *vocab, *added, *merges;
    uint32_t n_tokens;
    const char **src;    /* [n_tokens] vocabulary string or added content */
    uint32_t *src_len;
    uint8_t *attr;
    int32_t *map;        /* vocabulary string -> member index (-1 empty) */
    size_t map_mask;
    uint32_t *merge3;    /* [n_merges][3] */
    size_t n_merges;
    uint32_t *added_ids;
    size_t n_added;
    int32_t byte_tok[256];
    int32_t bos, eos, chat_kind;
    uint32_t flags;
} conv;

static int fmt_err(conv *c, const char *fmt, ...) DSV3__PRINTF(2, 3);
static int fmt_err(conv *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dsv3__vseterr(c->err, DSV3_E_FORMAT, fmt, ap);
    va_end(ap);
    return DSV3_E_FORMAT;
}

/* A well-formed file that this library cannot reproduce exactly. */
static int unsup(conv *c, const char *fmt, ...) DSV3__PRINTF(2, 3);
static int unsup(conv *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dsv3__vseterr(c->err, DSV3_E_UNSUPPORTED, fmt, ap);
    va_end(ap);
    return DSV3_E_UNSUPPORTED;
}

static bool is_null_or_absent(const dsv3_json *n)
{
    return !n || n->type == DSV3_JSON_NULL;
}

static bool is_false_or_absent(const dsv3_json *n)
{
    return is_null_or_absent(n) || n->type == DSV3_JSON_FALSE;
}

static bool is_empty_str_or_absent(const dsv3_json *n)
{
    return is_null_or_absent(n) || (n->type == DSV3_JSON_STRING && n->str_len == 0);
}

static const char *const v3_regex[3] = {
    "\\p{N}{1,3}",
    "[一-龥぀-ゟ゠-ヿ]+",
    ("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
     "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"),
};

static bool split_is(const dsv3_json *p, const char *regex)
{
    const dsv3_json *pat = dsv3__json_get(p, "pattern");
    return dsv3__json_streq(dsv3__json_get(p, "type"), "Split") &&
           dsv3__json_streq(dsv3__json_get(pat, "Regex"), regex) &&
           dsv3__json_streq(dsv3__json_get(p, "behavior"), "Isolated") &&
           is_false_or_absent(dsv3__json_get(p, "invert"));
}

static int check_pipeline(conv *c, const dsv3_json *root)
{
    const dsv3_json *m = dsv3__json_get(root, "model");
    if (!m || m->type != DSV3_JSON_OBJECT)
        return fmt_err(c, "tokenizer.json: no %s object", "model");
    const dsv3_json *type = dsv3__json_get(m, "type");
    if (type && !dsv3__json_streq(type, "BPE"))
        return unsup(c, "tokenizer.json: model type '%s' is not supported (only BPE)",
                     dsv3__json_string(type) ? dsv3__json_string(type) : "?");
    if (!is_null_or_absent(dsv3__json_get(m, "dropout")) ||
        !is_false_or_absent(dsv3__json_get(m, "byte_fallback")) ||
        !is_false_or_absent(dsv3__json_get(m, "ignore_merges")) ||
        !is_empty_str_or_absent(dsv3__json_get(m, "continuing_subword_prefix")) ||
        !is_empty_str_or_absent(dsv3__json_get(m, "end_of_word_suffix")))
        return unsup(c, "tokenizer.json: %s", "unsupported BPE option (dropout, byte_fallback, "
                                              "ignore_merges or subword affixes)");
    const dsv3_json *norm = dsv3__json_get(root, "normalizer");
    if (!is_null_or_absent(norm) &&
        !(dsv3__json_streq(dsv3__json_get(norm, "type"), "Sequence") &&
          dsv3__json_get(norm, "normalizers") &&
          dsv3__json_get(norm, "normalizers")->type == DSV3_JSON_ARRAY &&
          dsv3__json_get(norm, "normalizers")->n_children == 0))
        return unsup(c, "tokenizer.json: %s", "normalizers are not supported");
    const dsv3_json *pre = dsv3__json_get(root, "pre_tokenizer");
    const dsv3_json *seq = dsv3__json_get(pre, "pretokenizers");
    bool ok = dsv3__json_streq(dsv3__json_get(pre, "type"), "Sequence") && seq &&
              seq->type == DSV3_JSON_ARRAY && seq->n_children == 4;
    for (size_t i = 0; ok && i < 3; i++)
        ok = split_is(&seq->children[i], v3_regex[i]);
    if (ok) {
        const dsv3_json *bl = &seq->children[3];
        ok = dsv3__json_streq(dsv3__json_get(bl, "type"), "ByteLevel") &&
             dsv3__json_get(bl, "add_prefix_space") &&
             dsv3__json_get(bl, "add_prefix_space")->type == DSV3_JSON_FALSE &&
             dsv3__json_get(bl, "use_regex") &&
             dsv3__json_get(bl, "use_regex")->type == DSV3_JSON_FALSE;
    }
    if (!ok)
        return unsup(c, "tokenizer.json: %s", "pre_tokenizer is not DeepSeek-V3's "
                                              "(other pre-tokenizers are not supported)");
    if (!dsv3__json_streq(dsv3__json_get(dsv3__json_get(root, "decoder"), "type"), "ByteLevel"))
        return unsup(c, "tokenizer.json: %s", "decoder must be ByteLevel");
    c->vocab = dsv3__json_get(m, "vocab");
    c->merges = dsv3__json_get(m, "merges");
    c->added = dsv3__json_get(root, "added_tokens");
    if (!c->vocab || c->vocab->type != DSV3_JSON_OBJECT || c->vocab->n_children < 256)
        return fmt_err(c, "tokenizer.json: %s", "model.vocab must be an object of >= 256 entries");
    if (!c->merges || c->merges->type != DSV3_JSON_ARRAY)
        return fmt_err(c, "tokenizer.json: %s", "model.merges must be an array");
    if (!is_null_or_absent(c->added) && c->added->type != DSV3_JSON_ARRAY)
        return fmt_err(c, "tokenizer.json: %s", "added_tokens must be an array");
    if (c->added && c->added->type != DSV3_JSON_ARRAY)
        c->added = NULL;
    return DSV3_OK;
}

/* ---- vocabulary --------------------------------------------------------------- */

static int32_t map_find(const conv *c, const char *s, size_t n)
{
    size_t i = (size_t)tok_hash_bytes(s, n) & c->map_mask;
    for (;; i = (i + 1) & c->map_mask) {
        int32_t k = c->map[i];
        if (k < 0)
            return -1;
        const dsv3_json *e = &c->vocab->children[k];
        if (e->key_len == n && !memcmp(e->key, s, n))
            return (int32_t)e->num;
    }
}

static bool read_id(const dsv3_json *n, uint32_t *id)
{
    int64_t v;
    if (!dsv3__json_int64(n, &v) || v < 0 || v >= (int64_t)TOKB_MAX_TOKENS)
        return false;
    *id = (uint32_t)v;
    return true;
}

/* Size the id space and build the string map. */
static int scan_ids(conv *c)
{
    uint32_t max_id = 0;
    const dsv3_json *v = c->vocab;
    for (size_t i = 0; i < v->n_children; i++) {
        uint32_t id;
        if (!read_id(&v->children[i], &id))
            return fmt_err(c, "tokenizer.json: vocabulary entry '%s' has a bad id",
                           v->children[i].key);
        max_id = DSV3__MAX(max_id, id);
    }
    for (size_t i = 0; c->added && i < c->added->n_children; i++) {
        uint32_t id;
        if (!read_id(dsv3__json_get(&c->added->children[i], "id"), &id))
            return fmt_err(c, "tokenizer.json: added token %s has a bad id", "entry");
        max_id = DSV3__MAX(max_id, id);
    }
    c->n_tokens = max_id + 1;
    size_t slots = 1;
    while (slots < 2 * v->n_children)
        slots <<= 1;
    c->map = dsv3__malloc(c->a, slots * sizeof *c->map);
    c->src = dsv3__calloc(c->a, c->n_tokens, sizeof *c->src);
    c->src_len = dsv3__calloc(c->a, c->n_tokens, sizeof *c->src_len);
    c->attr = dsv3__calloc(c->a, c->n_tokens, 1);
    if (!c->map || !c->src || !c->src_len || !c->attr)
        return dsv3__seterr(c->err, DSV3_E_NOMEM, "out of memory reading the vocabulary");
    memset(c->map, 0xff, slots * sizeof *c->map);
    c->map_mask = slots - 1;
    for (size_t i = 0; i < v->n_children; i++) {
        const dsv3_json *e = &v->children[i];
        uint32_t id = (uint32_t)e->num;
        if (c->attr[id] || map_find(c, e->key, e->key_len) >= 0)
            return fmt_err(c, "tokenizer.json: vocabulary entry '%s' is a duplicate", e->key);
        size_t h = (size_t)tok_hash_bytes(e->key, e->key_len) & c->map_mask;
        while (c->map[h] >= 0)
            h = (h + 1) & c->map_mask;
        c->map[h] = (int32_t)i;
        c->attr[id] = DSV3__TOK_PRESENT;
        c->src[id] = e->key;
        c->src_len[id] = (uint32_t)e->key_len;
    }
    return DSV3_OK;
}

static int read_added(conv *c)
{
    size_t n = c->added ? c->added->n_children : 0;
    c->added_ids = dsv3__calloc(c->a, n ? n : 1, sizeof *c->added_ids);
    if (!c->added_ids)
        return dsv3__seterr(c->err, DSV3_E_NOMEM, "out of memory reading added tokens");
    for (size_t i = 0; i < n; i++) {
        const dsv3_json *e = &c->added->children[i];
        const dsv3_json *content = dsv3__json_get(e, "content");
        uint32_t id = 0;
        read_id(dsv3__json_get(e, "id"), &id);
        if (!content || content->type != DSV3_JSON_STRING || content->str_len == 0)
            return fmt_err(c, "tokenizer.json: added token %s has no content", "entry");
        const char *s = content->str;
        if (!is_false_or_absent(dsv3__json_get(e, "lstrip")) ||
            !is_false_or_absent(dsv3__json_get(e, "rstrip")) ||
            !is_false_or_absent(dsv3__json_get(e, "single_word")))
            return unsup(c, "tokenizer.json: added token '%s' uses lstrip/rstrip/single_word"
                            " (not supported)", s);
        if (c->attr[id] & DSV3__TOK_ADDED)
            return fmt_err(c, "tokenizer.json: added token '%s' reuses an id", s);
        if (c->attr[id] && (c->src_len[id] != content->str_len ||
                            memcmp(c->src[id], s, content->str_len)))
            return fmt_err(c, "tokenizer.json: added token '%s' differs from the vocabulary"
                              " entry of its id", s);
        /* The decoder maps a token written wholly in the byte alphabet back to
         * bytes; only plain ASCII comes out as the text that is matched. */
        bool raw;
        vocab_bytes(s, content->str_len, NULL, &raw);
        for (size_t k = 0; !raw && k < content->str_len; k++)
            if ((unsigned char)s[k] >= 0x80)
                return unsup(c, "tokenizer.json: added token '%s' is written in the byte"
                                " alphabet (not supported)", s);
        for (size_t j = 0; j < i; j++) {
            uint32_t o = c->added_ids[j];
            if (c->src_len[o] == content->str_len && !memcmp(c->src[o], s, content->str_len))
                return fmt_err(c, "tokenizer.json: added token '%s' is listed twice", s);
        }
        bool special = false, normalized = false;
        dsv3__json_bool(dsv3__json_get(e, "special"), &special);
        dsv3__json_bool(dsv3__json_get(e, "normalized"), &normalized);
        c->attr[id] = (uint8_t)(DSV3__TOK_PRESENT | DSV3__TOK_ADDED |
                                (special ? DSV3__TOK_SPECIAL : 0) |
                                (normalized ? DSV3__TOK_NORMALIZED : 0));
        c->src[id] = s;
        c->src_len[id] = (uint32_t)content->str_len;
        c->added_ids[c->n_added++] = id;
    }
    return DSV3_OK;
}

/* ---- merges and byte tokens ---------------------------------------------------- */

static int merge_parts(conv *c, const dsv3_json *e, const char **l, size_t *ll, const char **r,
                       size_t *rl)
{
    if (e->type == DSV3_JSON_STRING) {
        const char *sp = memchr(e->str, ' ', e->str_len);
        if (!sp || memchr(sp + 1, ' ', e->str_len - (size_t)(sp - e->str) - 1))
            return fmt_err(c, "tokenizer.json: merge '%s' is not two tokens", e->str);
        *l = e->str;
        *ll = (size_t)(sp - e->str);
        *r = sp + 1;
        *rl = e->str_len - *ll - 1;
        return DSV3_OK;
    }
    if (e->type == DSV3_JSON_ARRAY && e->n_children == 2 &&
        e->children[0].type == DSV3_JSON_STRING && e->children[1].type == DSV3_JSON_STRING) {
        *l = e->children[0].str;
        *ll = e->children[0].str_len;
        *r = e->children[1].str;
        *rl = e->children[1].str_len;
        return DSV3_OK;
    }
    return fmt_err(c, "tokenizer.json: %s", "a merge is neither \"a b\" nor [\"a\", \"b\"]");
}

static int read_merges(conv *c)
{
    c->n_merges = c->merges->n_children;
    size_t words;
    if (!dsv3__mul_size(c->n_merges ? c->n_merges : 1, 3 * sizeof(uint32_t), &words))
        return dsv3__seterr(c->err, DSV3_E_NOMEM, "too many merges");
    c->merge3 = dsv3__malloc(c->a, words);
    dsv3__vec buf;
    dsv3__vec_init(&buf, 1);
    if (!c->merge3)
        return dsv3__seterr(c->err, DSV3_E_NOMEM, "out of memory reading merges");
    int rc = DSV3_OK;
    for (size_t i = 0; i < c->n_merges && rc == DSV3_OK; i++) {
        const char *l = NULL, *r = NULL;
        size_t ll = 0, rl = 0;
        rc = merge_parts(c, &c->merges->children[i], &l, &ll, &r, &rl);
        if (rc)
            break;
        int32_t li = map_find(c, l, ll), ri = map_find(c, r, rl);
        buf.len = 0;
        if (dsv3__vec_push(&buf, c->a, l, ll) || dsv3__vec_push(&buf, c->a, r, rl)) {
            rc = dsv3__seterr(c->err, DSV3_E_NOMEM, "out of memory reading merges");
            break;
        }
        int32_t res = map_find(c, buf.data, buf.len);
        if (li < 0 || ri < 0 || res < 0) {
            dsv3__seterr(c->err, DSV3_E_FORMAT,
                         "tokenizer.json: merge %zu ('%.*s' + '%.*s') is not in the vocabulary",
                         i + 1, (int)DSV3__MIN(ll, 64), l, (int)DSV3__MIN(rl, 64), r);
            rc = DSV3_E_FORMAT;
            break;
        }
        c->merge3[3 * i] = (uint32_t)li;
        c->merge3[3 * i + 1] = (uint32_t)ri;
        c->merge3[3 * i + 2] = (uint32_t)res;
    }
    dsv3__vec_free(&buf, c->a);
    return rc;
}

static int find_byte_tokens(conv *c)
{
    for (int b = 0; b < 256; b++) {
        uint32_t cp = dsv3__tok_byte_char((uint8_t)b);
        char s[2];
        size_t n = 1;
        if (cp < 0x80) {
            s[0] = (char)cp;
        } else {
            s[0] = (char)(0xC0 | (cp >> 6));
            s[1] = (char)(0x80 | (cp & 0x3F));
            n = 2;
        }
        c->byte_tok[b] = map_find(c, s, n);
        if (c->byte_tok[b] < 0) {
            return unsup(c, "tokenizer.json: byte 0x%02x has no token (byte-level BPE needs "
                            "all 256)", b);
        }
    }
    return DSV3_OK;
}

/* ---- tokenizer_config.json ------------------------------------------------------ */

static int config_token(conv *c, const dsv3_json *root, const char *field, int32_t *id)
{
    const dsv3_json *n = dsv3__json_get(root, field);
    *id = -1;
    if (is_null_or_absent(n))
        return DSV3_OK;
    if (n->type == DSV3_JSON_OBJECT)
        n = dsv3__json_get(n, "content");
    if (!n || n->type != DSV3_JSON_STRING)
        return fmt_err(c, "tokenizer_config.json: %s is neither a string nor a token", field);
    for (size_t i = 0; i < c->n_added; i++) {
        uint32_t a = c->added_ids[i];
        if (c->src_len[a] == n->str_len && !memcmp(c->src[a], n->str, n->str_len)) {
            *id = (int32_t)a;
            return DSV3_OK;
        }
    }
    *id = map_find(c, n->str, n->str_len);
    if (*id < 0)
        return fmt_err(c, "tokenizer_config.json: %s is not a token", field);
    return DSV3_OK;
}

static int read_config(conv *c, const char *cfg_json, size_t cfg_len)
{
    c->bos = c->eos = -1;
    if (!cfg_json)
        return DSV3_OK;
    int rc = dsv3__json_parse(c->a, cfg_json, cfg_len, &c->cfg, c->err);
    if (rc)
        return rc;
    const dsv3_json *root = c->cfg.root;
    if (root->type != DSV3_JSON_OBJECT)
        return fmt_err(c, "tokenizer_config.json: %s", "not an object");
    bool b = false;
    if (dsv3__json_bool(dsv3__json_get(root, "add_bos_token"), &b) && b)
        c->flags |= TOKB_FLAG_ADD_BOS;
    if (dsv3__json_bool(dsv3__json_get(root, "add_eos_token"), &b) && b)
        c->flags |= TOKB_FLAG_ADD_EOS;
    if ((rc = config_token(c, root, "bos_token", &c->bos)) ||
        (rc = config_token(c, root, "eos_token", &c->eos)))
        return rc;
    const dsv3_json *t = dsv3__json_get(root, "chat_template");
    if (t && t->type == DSV3_JSON_ARRAY) { /* [{name, template}, ...]: take "default" */
        const dsv3_json *pick = NULL;
        for (size_t i = 0; i < t->n_children; i++)
            if (dsv3__json_streq(dsv3__json_get(&t->children[i], "name"), "default"))
                pick = dsv3__json_get(&t->children[i], "template");
        t = pick;
    }
    if (t && t->type == DSV3_JSON_STRING)
        c->chat_kind = dsv3__chat_detect(t->str, t->str_len);
    return DSV3_OK;
}

/* ---- writing the blob ------------------------------------------------------------- */

static size_t token_bytes(const conv *c, uint32_t id, unsigned char *out)
{
    if (!c->src[id])
        return 0;
    if (c->attr[id] & DSV3__TOK_ADDED) {
        if (out)
            memcpy(out, c->src[id], c->src_len[id]);
        return c->src_len[id];
    }
    bool raw;
    return vocab_bytes(c->src[id], c->src_len[id], out, &raw);
}

static int write_blob(conv *c, void **blob, size_t *blob_len)
{
    uint64_t pool = 0;
    for (uint32_t i = 0; i < c->n_tokens; i++)
        pool += token_bytes(c, i, NULL);
    if (pool > UINT32_MAX || c->n_merges > UINT32_MAX / 16)
        return fmt_err(c, "tokenizer.json: %s", "the vocabulary is too large");
    size_t n = c->n_tokens;
    size_t o_off = TOKB_HEADER, o_attr = o_off + 4 * (n + 1);
    size_t o_byte = o_attr + ((n + 3) & ~(size_t)3);
    size_t o_merge = o_byte + 4 * 256, o_added = o_merge + 12 * c->n_merges;
    size_t o_pool = o_added + 4 * c->n_added;
    size_t o_sum = (o_pool + (size_t)pool + 7) & ~(size_t)7, total = o_sum + 8;
    unsigned char *b = dsv3__calloc(c->a, total, 1);
    if (!b)
        return dsv3__seterr(c->err, DSV3_E_NOMEM, "out of memory writing the tokenizer blob");
    memcpy(b, TOKB_MAGIC, 8);
    tok_wr32(b + 8, TOKB_VERSION);
    tok_wr32(b + 12, TOKB_HEADER);
    tok_wr32(b + 16, (uint32_t)n);
    tok_wr32(b + 20, (uint32_t)c->n_merges);
    tok_wr32(b + 24, (uint32_t)c->n_added);
    tok_wr32(b + 28, (uint32_t)pool);
    tok_wr32(b + 32, TOKB_PRETOK_DEEPSEEK_V3);
    tok_wr32(b + 36, (uint32_t)c->bos);
    tok_wr32(b + 40, (uint32_t)c->eos);
    tok_wr32(b + 44, c->flags);
    tok_wr32(b + 48, (uint32_t)c->chat_kind);
    uint32_t at = 0;
    for (uint32_t i = 0; i < n; i++) {
        tok_wr32(b + o_off + 4 * i, at);
        at += (uint32_t)token_bytes(c, i, b + o_pool + at);
        b[o_attr + i] = c->attr[i];
    }
    tok_wr32(b + o_off + 4 * n, at);
    for (int i = 0; i < 256; i++)
        tok_wr32(b + o_byte + 4 * (size_t)i, (uint32_t)c->byte_tok[i]);
    for (size_t i = 0; i < 3 * c->n_merges; i++)
        tok_wr32(b + o_merge + 4 * i, c->merge3[i]);
    for (size_t i = 0; i < c->n_added; i++)
        tok_wr32(b + o_added + 4 * i, c->added_ids[i]);
    uint64_t sum = dsv3__xxh64(b, o_sum, 0);
    tok_wr32(b + o_sum, (uint32_t)sum);
    tok_wr32(b + o_sum + 4, (uint32_t)(sum >> 32));
    *blob = b;
    *blob_len = total;
    return DSV3_OK;
}

/* Put "file: " in front of a message (the JSON parser's). */
static void prefix_err(dsv3__err *err, const char *file)
{
    if (!err)
        return;
    char msg[DSV3__ERRMSG_CAP];
    memcpy(msg, err->msg, sizeof msg);
    msg[sizeof msg - 1] = '\0';
    dsv3__seterr(err, DSV3_E_FORMAT, "%s: %s", file, msg);
}

int dsv3__tokenizer_blob_from_hf(const dsv3__alloc *a, const char *tok_json, size_t tok_len,
                                 const char *cfg_json, size_t cfg_len, void **blob,
                                 size_t *blob_len, int32_t *chat_kind, dsv3__err *err)
{
    if (!a || !tok_json || !blob || !blob_len || !chat_kind)
        return dsv3__seterr(err, DSV3_E_INVAL, "tokenizer_blob_from_hf: NULL argument");
    *blob = NULL;
    *blob_len = 0;
    *chat_kind = DSV3__CHAT_KIND_NONE;
    conv c;
    memset(&c, 0, sizeof c);
    c.a = a;
    c.err = err;
    int rc = dsv3__json_parse(a, tok_json, tok_len, &c.tok, err);
    if (rc == DSV3_E_FORMAT)
        prefix_err(err, "tokenizer.json");
    if (!rc && c.tok.root->type != DSV3_JSON_OBJECT)
        rc = fmt_err(&c, "tokenizer.json: %s", "not an object");
    if (!rc)
        rc = check_pipeline(&c, c.tok.root);
    if (!rc)
        rc = scan_ids(&c);
    if (!rc)
        rc = read_added(&c);
    if (!rc)
        rc = read_merges(&c);
    if (!rc)
        rc = find_byte_tokens(&c);
    if (!rc) {
        rc = read_config(&c, cfg_json, cfg_len);
        if (rc == DSV3_E_FORMAT && c.cfg.root == NULL)
            prefix_err(err, "tokenizer_config.json");
    }
    if (!rc)
        rc = write_blob(&c, blob, blob_len);
    if (!rc)
        *chat_kind = c.chat_kind;
    dsv3__free(a, c.src);
    dsv3__free(a, c.src_len);
    dsv3__free(a, c.attr);
    dsv3__free(a, c.map);
    dsv3__free(a, c.merge3);
    dsv3__free(a, c.added_ids);
    dsv3__json_free(&c.tok);
    dsv3__json_free(&c.cfg);
    return rc;
}
