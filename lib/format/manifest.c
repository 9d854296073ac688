/*
 * manifest.c - parsing and validation of model.dsv3 and shard headers.
 * SPDX-License-Identifier: MIT
 */
#include <stdlib.h>
#include <string.h>

#include "format.h"

const unsigned char dsv3__fmt_manifest_magic[8] = {'D', 'S', 'V', '3', 'M', 'O', 'D', 'L'};
const unsigned char dsv3__fmt_shard_magic[8] = {'D', 'S', 'V', '3', 'S', 'H', 'R', 'D'};

#define MAX_SECTIONS 64u
#define SEC_ENTRY 32u

/* ---- little-endian cursor ------------------------------------------------ */

typedef struct cur {
    const unsigned char *p, *end;
    bool bad; /* ran past the end */
} cur;

static uint64_t rd_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get(cur *c, int n)
{
    if (c->bad || (size_t)(c->end - c->p) < (size_t)n) {
        c->bad = true;
        return 0;
    }
    uint64_t v = rd_le(c->p, n);
    c->p += n;
    return v;
}

static const unsigned char *take(cur *c, size_t n)
{
    if (c->bad || (size_t)(c->end - c->p) < n) {
        c->bad = true;
        return NULL;
    }
    const unsigned char *r = c->p;
    c->p += n;
    return r;
}

static size_t left(const cur *c)
{
    return c->bad ? 0 : (size_t)(c->end - c->p);
}

/* ---- storage ---------------------------------------------------------- */

static const char *keep_str(dsv3__manifest *m, const unsigned char *s, size_t n)
{
    /* the pool is sized to hold every string of the file plus NULs */
    if (n + 1 > m->strings_cap - m->strings_used)
        return NULL;
    char *d = m->strings + m->strings_used;
    memcpy(d, s, n);
    d[n] = '\0';
    m->strings_used += n + 1;
    return d;
}

void dsv3__manifest_free(dsv3__manifest *m)
{
    if (!m || !m->alloc.free)
        return;
    const dsv3__alloc *a = &m->alloc;
    dsv3__free(a, m->hparams.items);
    dsv3__free(a, m->meta.items);
    dsv3__free(a, m->shards);
    dsv3__free(a, m->tensors);
    dsv3__free(a, m->by_name);
    dsv3__free(a, m->copy);
    dsv3__free(a, m->strings);
    dsv3__free(a, m->chunk_store);
    dsv3__alloc keep = m->alloc;
    memset(m, 0, sizeof *m);
    m->alloc = keep;
}

/* ---- key-value sections ------------------------------------------------- */

static bool key_ok(const unsigned char *k, size_t n)
{
    if (n == 0 || n > DSV3__FMT_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = k[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.'))
            return false;
    }
    return true;
}

static int parse_kv(dsv3__manifest *m, const unsigned char *p, size_t n, dsv3__kvlist *out,
                    const char *what, dsv3__err *err)
{
    cur c = {p, p + n, false};
    uint64_t count = get(&c, 4);
    if (c.bad || count > left(&c) / 4) /* each entry takes at least 4 bytes */
        return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: bad %s section (count)", what);
    out->items = dsv3__calloc(&m->alloc, count ? count : 1, sizeof *out->items);
    if (!out->items)
        return DSV3_E_NOMEM;
    for (uint64_t i = 0; i < count; i++) {
        dsv3__kv *kv = &out->items[i];
        size_t kl = (size_t)get(&c, 2);
        const unsigned char *k = take(&c, kl);
        kv->type = (int32_t)get(&c, 1);
        if (c.bad || !key_ok(k, kl))
            return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: bad key #%llu in %s section",
                                (unsigned long long)i, what);
        kv->key = keep_str(m, k, kl);
        switch (kv->type) {
        case DSV3__KV_I64:
            kv->i = (int64_t)get(&c, 8);
            break;
        case DSV3__KV_F64: {
            uint64_t u = get(&c, 8);
            memcpy(&kv->f, &u, sizeof u);
            break;
        }
        case DSV3__KV_BOOL:
            kv->i = (int64_t)get(&c, 1);
            if (kv->i > 1)
                c.bad = true;
            break;
        case DSV3__KV_STR: {
            size_t sl = (size_t)get(&c, 4);
            const unsigned char *s = take(&c, sl);
            if (s) {
                kv->s = keep_str(m, s, sl);
                kv->s_len = sl;
            }
            break;
        }
        default:
            c.bad = true;
        }
        if (c.bad || !kv->key || (kv->type == DSV3__KV_STR && !kv->s))
            return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: bad value of '%s' in %s section",
                                kv->key ? kv->key : "?", what);
        for (uint64_t j = 0; j < i; j++)
            if (!strcmp(out->items[j].key, kv->key))
                return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: key '%s' repeated in %s",
                                    kv->key, what);
        out->n = (size_t)i + 1;
    }
    if (left(&c))
        return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: trailing bytes in %s section", what);
    return DSV3_OK;
}

const dsv3__kv *dsv3__kv_find(const dsv3__kvlist *l, const char *key)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->items[i].key, key))
            return &l->items[i];
    return NULL;
}

/* ---- shard table -------------------------------------------------------- */

static bool shard_name_ok(const unsigned char *s, size_t n)
{
    size_t ext = sizeof DSV3__FMT_SHARD_EXT - 1;
    if (n <= ext || n > DSV3__FMT_MAX_NAME || s[0] == '.' ||
        memcmp(s + n - ext, DSV3__FMT_SHARD_EXT, ext))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return false;
    }
    return true;
}

static int parse_shards(dsv3__manifest *m, const unsigned char *p, size_t n, dsv3__err *err)
{
    cur c = {p, p + n, false};
    uint64_t count = get(&c, 4);
    if (c.bad || count == 0 || count > left(&c) / 10)
        return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: bad shard table (count)");
    m->shards = dsv3__calloc(&m->alloc, count, sizeof *m->shards);
    if (!m->shards)
        return DSV3_E_NOMEM;
    for (uint64_t i = 0; i < count; i++) {
        size_t nl = (size_t)get(&c, 2);
        const unsigned char *s = take(&c, nl);
        uint64_t size = get(&c, 8);
        if (c.bad || !shard_name_ok(s, nl) || size < DSV3__FMT_HEADER_SIZE || size > INT64_MAX)
            return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: bad shard entry #%llu",
                                (unsigned long long)i);
        m->shards[i].name = keep_str(m, s, nl);
        m->shards[i].size = size;
        for (uint64_t j = 0; j < i; j++)
            if (!strcmp(m->shards[j].name, m->shards[i].name))
                return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: shard '%s' listed twice",
                                    m->shards[i].name);
    }
    m->n_shards = (uint32_t)count;
    if (left(&c))
        return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: trailing bytes in shard table");
    return DSV3_OK;
}

/* ---- tensor index ------------------------------------------------------- */

uint32_t dsv3__fmt_dtype_unit(int32_t dtype)
{
    switch (dtype) {
    case DSV3_DTYPE_F32:
        return 4;
    case DSV3_DTYPE_F16:
    case DSV3_DTYPE_BF16:
        return 2;
    case DSV3_DTYPE_FP8_E4M3:
        return 1;
    case DSV3_DTYPE_Q8_0:
        return 34;
    case DSV3_DTYPE_Q4:
        return 18;
    default:
        return 0;
    }
}

bool dsv3__fmt_tensor_bytes(int32_t dtype, int32_t n_dims, const int64_t *ne, uint64_t *out)
{
    if (n_dims < 1 || n_dims > DSV3__FMT_MAX_DIMS || !dsv3__fmt_dtype_unit(dtype))
        return false;
    uint64_t rows = 1;
    for (int i = 0; i < n_dims; i++) {
        if (ne[i] < 1 || ne[i] > ((int64_t)1 << 40))
            return false;
        if (i < n_dims - 1) {
            if (rows > (UINT64_MAX >> 1) / (uint64_t)ne[i])
                return false;
            rows *= (uint64_t)ne[i];
        }
    }
    int64_t inner = ne[n_dims - 1];
    uint64_t row;
    if (dtype == DSV3_DTYPE_Q8_0 || dtype == DSV3_DTYPE_Q4) {
        if (inner % 32)
            return false;
        row = (uint64_t)(inner / 32) * dsv3__fmt_dtype_unit(dtype);
    } else {
        row = (uint64_t)inner * dsv3__fmt_dtype_unit(dtype);
    }
    if (row && rows > (UINT64_MAX >> 2) / row)
        return false;
    *out = rows * row;
    return true;
}

/* Bytes a zstd frame of n raw bytes may take at most (generous). */
static uint64_t frame_bound(uint64_t n)
{
    return n + (n >> 7) + 1024;
}

static int tensor_err(dsv3__err *err, uint64_t i, const char *name, const char *what)
{
    return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: tensor #%llu%s%s%s: %s",
                        (unsigned long long)i, name ? " '" : "", name ? name : "",
                        name ? "'" : "", what);
}

/* The storage part of one entry (after the shape). */
static int parse_storage(dsv3__manifest *m, cur *c, dsv3__fmt_tensor *t, uint64_t i,
                         size_t *chunks_used, size_t chunks_cap, dsv3__err *err)
{
    t->shard = (uint32_t)get(c, 4);
    t->offset = get(c, 8);
    uint64_t raw = get(c, 8);
    t->chunk_size = get(c, 8);
    uint64_t nch = get(c, 4);
    uint32_t unit = dsv3__fmt_dtype_unit(t->dtype);
    if (c->bad)
        return tensor_err(err, i, t->name, "entry cut short");
    if (raw != t->raw_size)
        return tensor_err(err, i, t->name, "raw size does not match dtype and shape");
    if (t->shard >= m->n_shards)
        return tensor_err(err, i, t->name, "shard index out of range");
    if (t->offset % DSV3__FMT_ALIGN || t->offset < DSV3__FMT_HEADER_SIZE)
        return tensor_err(err, i, t->name, "offset not 64-byte aligned or inside the header");
    if (t->chunk_size < unit || t->chunk_size % unit || t->chunk_size > DSV3__FMT_MAX_CHUNK)
        return tensor_err(err, i, t->name, "bad chunk size");
    if (nch != (raw + t->chunk_size - 1) / t->chunk_size)
        return tensor_err(err, i, t->name, "chunk count does not match the sizes");
    if (nch > left(c) / 16 || nch > chunks_cap - *chunks_used)
        return tensor_err(err, i, t->name, "chunk table cut short");
    t->n_chunks = (uint32_t)nch;
    t->chunks = m->chunk_store + *chunks_used;
    *chunks_used += nch;
    uint64_t pos = t->offset, raw_off = 0, limit = m->shards[t->shard].size;
    for (uint64_t k = 0; k < nch; k++) {
        dsv3__fmt_chunk *ch = &t->chunks[k];
        ch->stored = get(c, 8);
        ch->hash = get(c, 8);
        ch->raw_off = raw_off;
        ch->raw = DSV3__MIN(t->chunk_size, raw - raw_off);
        ch->offset = pos;
        if (t->codec == DSV3__CODEC_RAW ? ch->stored != ch->raw
                                        : (ch->stored == 0 || ch->stored > frame_bound(ch->raw)))
            return tensor_err(err, i, t->name, "bad stored chunk size");
        if (ch->stored > limit || pos > limit - ch->stored)
            return tensor_err(err, i, t->name, "data extends past the end of its shard");
        pos += ch->stored;
        raw_off += ch->raw;
    }
    t->stored_size = pos - t->offset;
    return DSV3_OK;
}

static int parse_entry(dsv3__manifest *m, cur *c, uint64_t i, size_t *chunks_used,
                       size_t chunks_cap, dsv3__err *err)
{
    dsv3__fmt_tensor *t = &m->tensors[i];
    size_t nl = (size_t)get(c, 2);
    const unsigned char *s = take(c, nl);
    t->dtype = (int32_t)get(c, 1);
    t->codec = (int32_t)get(c, 1);
    t->flags = (uint32_t)get(c, 1);
    t->n_dims = (int32_t)get(c, 1);
    t->alias = -1;
    if (c->bad)
        return tensor_err(err, i, NULL, "entry cut short");
    bool name_ok = nl >= 1 && nl <= DSV3__FMT_MAX_NAME;
    for (size_t k = 0; name_ok && k < nl; k++)
        name_ok = s[k] > 0x20 && s[k] < 0x7f;
    if (!name_ok)
        return tensor_err(err, i, NULL, "bad name");
    t->name = keep_str(m, s, nl);
    if (!t->name)
        return tensor_err(err, i, NULL, "bad name");
    if (t->n_dims < 1 || t->n_dims > DSV3__FMT_MAX_DIMS)
        return tensor_err(err, i, t->name, "bad number of dimensions");
    for (int d = 0; d < DSV3__FMT_MAX_DIMS; d++)
        t->ne[d] = d < t->n_dims ? (int64_t)get(c, 8) : 1;
    if (c->bad)
        return tensor_err(err, i, t->name, "entry cut short");
    if (!dsv3__fmt_dtype_unit(t->dtype))
        return tensor_err(err, i, t->name, "unknown dtype");
    if (!dsv3__fmt_tensor_bytes(t->dtype, t->n_dims, t->ne, &t->raw_size))
        return tensor_err(err, i, t->name, "bad shape");
    if (t->flags & ~DSV3__TFLAG_PLANES)
        return tensor_err(err, i, t->name, "unknown flags");
    uint32_t unit = dsv3__fmt_dtype_unit(t->dtype);
    if ((t->flags & DSV3__TFLAG_PLANES) &&
        (t->codec != DSV3__CODEC_ZSTD || (unit != 2 && unit != 4)))
        return tensor_err(err, i, t->name, "byte planes on a tensor that cannot have them");
    if (t->codec == DSV3__CODEC_ALIAS) {
        uint64_t target = get(c, 4);
        if (c->bad || target >= m->n_tensors || target == i)
            return tensor_err(err, i, t->name, "bad alias target");
        t->alias = (int32_t)target;
        return DSV3_OK;
    }
    if (t->codec != DSV3__CODEC_RAW && t->codec != DSV3__CODEC_ZSTD)
        return tensor_err(err, i, t->name, "unknown codec");
    return parse_storage(m, c, t, i, chunks_used, chunks_cap, err);
}

static int cmp_name(const void *a, const void *b, void *ctx)
{
    const dsv3__fmt_tensor *t = ctx;
    return strcmp(t[*(const uint32_t *)a].name, t[*(const uint32_t *)b].name);
}

/* Insertion-free sort with a context: a small merge sort (qsort_r is not
 * portable). */
static void sort_idx(uint32_t *v, uint32_t *tmp, size_t n, const dsv3__fmt_tensor *t)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    sort_idx(v, tmp, h, t);
    sort_idx(v + h, tmp, n - h, t);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = cmp_name(&v[j], &v[i], (void *)t) < 0 ? v[j++] : v[i++];
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

static int check_aliases_and_names(dsv3__manifest *m, dsv3__err *err)
{
    uint32_t n = m->n_tensors;
    for (uint32_t i = 0; i < n; i++) {
        dsv3__fmt_tensor *t = &m->tensors[i];
        if (t->alias < 0)
            continue;
        const dsv3__fmt_tensor *g = &m->tensors[t->alias];
        if (g->codec == DSV3__CODEC_ALIAS)
            return tensor_err(err, i, t->name, "alias of an alias");
        if (g->dtype != t->dtype || g->n_dims != t->n_dims ||
            memcmp(g->ne, t->ne, sizeof t->ne))
            return tensor_err(err, i, t->name, "alias differs from its target in dtype or shape");
    }
    m->by_name = dsv3__malloc(&m->alloc, (n ? n : 1) * sizeof(uint32_t) * 2);
    if (!m->by_name)
        return DSV3_E_NOMEM;
    for (uint32_t i = 0; i < n; i++)
        m->by_name[i] = i;
    sort_idx(m->by_name, m->by_name + n, n, m->tensors);
    for (uint32_t i = 1; i < n; i++)
        if (!strcmp(m->tensors[m->by_name[i]].name, m->tensors[m->by_name[i - 1]].name))
            return tensor_err(err, m->by_name[i], m->tensors[m->by_name[i]].name,
                              "name used twice");
    return DSV3_OK;
}

static int parse_tensors(dsv3__manifest *m, const unsigned char *p, size_t n, dsv3__err *err)
{
    cur c = {p, p + n, false};
    uint64_t count = get(&c, 4);
    if (c.bad || count > left(&c) / 14 || count > UINT32_MAX / 4)
        return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: bad tensor index (count)");
    m->tensors = dsv3__calloc(&m->alloc, count ? count : 1, sizeof *m->tensors);
    size_t chunks_cap = n / 16 + 1; /* each chunk takes 16 bytes of the index */
    m->chunk_store = dsv3__calloc(&m->alloc, chunks_cap, sizeof *m->chunk_store);
    if (!m->tensors || !m->chunk_store)
        return DSV3_E_NOMEM;
    m->n_tensors = (uint32_t)count;
    size_t used = 0;
    for (uint64_t i = 0; i < count; i++) {
        int rc = parse_entry(m, &c, i, &used, chunks_cap, err);
        if (rc)
            return rc;
    }
    if (left(&c))
        return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: trailing bytes in tensor index");
    return check_aliases_and_names(m, err);
}

const dsv3__fmt_tensor *dsv3__manifest_find(const dsv3__manifest *m, const char *name)
{
    size_t lo = 0, hi = m->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const dsv3__fmt_tensor *t = &m->tensors[m->by_name[mid]];
        int c = strcmp(name, t->name);
        if (!c)
            return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ---- header and section table -------------------------------------------- */

static int version_err(dsv3__err *err, const char *what, uint64_t v)
{
    if (v == 0)
        return dsv3__seterr(err, DSV3_E_FORMAT, "%s: format version 0 is invalid", what);
    return dsv3__seterr(err, DSV3_E_VERSION,
                        "%s has format version %llu, but this libdsv3 (%s) reads versions up "
                        "to %u: upgrade libdsv3 to load this model",
                        what, (unsigned long long)v, DSV3_VERSION_STRING, DSV3__FMT_VERSION);
}

static int check_header(dsv3__manifest *m, const unsigned char *d, size_t len,
                        uint32_t *n_sections, dsv3__err *err)
{
    if (len < 8 || memcmp(d, dsv3__fmt_manifest_magic, 8))
        return dsv3__seterr(err, DSV3_E_FORMAT,
                            "not a libdsv3 model manifest (bad magic; expected \"DSV3MODL\")");
    if (len < DSV3__FMT_HEADER_SIZE)
        return dsv3__seterr(err, DSV3_E_FORMAT, "manifest truncated (%zu bytes)", len);
    uint64_t version = rd_le(d + 8, 4);
    if (version != DSV3__FMT_VERSION)
        return version_err(err, "model.dsv3", version);
    if (rd_le(d + 12, 4) != DSV3__FMT_HEADER_SIZE)
        return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: bad header size");
    m->version = (uint32_t)version;
    m->file_size = rd_le(d + 16, 8);
    if (m->file_size != len)
        return dsv3__seterr(err, DSV3_E_FORMAT,
                            "manifest truncated or padded: header says %llu bytes, file has %zu",
                            (unsigned long long)m->file_size, len);
    m->model_id = rd_le(d + 24, 8);
    *n_sections = (uint32_t)rd_le(d + 32, 4);
    for (size_t i = 36; i < 40; i++)
        if (d[i])
            return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: reserved header bytes not zero");
    for (size_t i = 48; i < DSV3__FMT_HEADER_SIZE; i++)
        if (d[i])
            return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: reserved header bytes not zero");
    if (*n_sections == 0 || *n_sections > MAX_SECTIONS ||
        (uint64_t)*n_sections * SEC_ENTRY > len - DSV3__FMT_HEADER_SIZE)
        return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: bad section count");
    uint64_t th = dsv3__xxh64(d + DSV3__FMT_HEADER_SIZE, (size_t)*n_sections * SEC_ENTRY, 0);
    if (th != rd_le(d + 40, 8))
        return dsv3__seterr(err, DSV3_E_CHECKSUM, "manifest: section table checksum mismatch");
    return DSV3_OK;
}

static const char *section_name(uint32_t kind)
{
    static const char *names[] = {"?", "hparams", "meta", "config", "tokenizer", "shards",
                                  "tensors"};
    return kind < DSV3__ARRAY_LEN(names) ? names[kind] : "unknown";
}

static int parse_sections(dsv3__manifest *m, const unsigned char *d, size_t len, uint32_t ns,
                          dsv3__err *err)
{
    const unsigned char *sec[7] = {0};
    size_t sec_len[7] = {0};
    /* sections follow the table in order, 8-byte aligned, zero padding in
     * between, the last one ending the file: every byte is covered */
    uint64_t pos = DSV3__FMT_HEADER_SIZE + (uint64_t)ns * SEC_ENTRY;
    for (uint32_t i = 0; i < ns; i++) {
        const unsigned char *e = d + DSV3__FMT_HEADER_SIZE + (size_t)i * SEC_ENTRY;
        uint32_t kind = (uint32_t)rd_le(e, 4), flags = (uint32_t)rd_le(e + 4, 4);
        uint64_t off = rd_le(e + 8, 8), size = rd_le(e + 16, 8), hash = rd_le(e + 24, 8);
        if (off < pos || off - pos > 7 || off > len || size > len - off)
            return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: section %u (%s) out of place",
                                i, section_name(kind));
        for (; pos < off; pos++)
            if (d[pos])
                return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: non-zero padding");
        pos = off + size;
        if (kind < 1 || kind > DSV3__SEC_TENSORS) {
            if (flags & DSV3__SEC_FLAG_REQUIRED)
                return dsv3__seterr(err, DSV3_E_VERSION,
                                    "manifest needs a feature this libdsv3 (%s) does not know "
                                    "(section kind %u): upgrade libdsv3",
                                    DSV3_VERSION_STRING, kind);
            continue; /* an optional section of a later version */
        }
        if (sec[kind])
            return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: section %s appears twice",
                                section_name(kind));
        if (flags & ~DSV3__SEC_FLAG_REQUIRED)
            return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: unknown section flags");
        if (dsv3__xxh64(d + off, (size_t)size, 0) != hash)
            return dsv3__seterr(err, DSV3_E_CHECKSUM, "manifest: %s section checksum mismatch",
                                section_name(kind));
        sec[kind] = d + off;
        sec_len[kind] = (size_t)size;
    }
    if (pos != len)
        return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: bytes after the last section");
    static const uint32_t required[] = {DSV3__SEC_HPARAMS, DSV3__SEC_SHARDS, DSV3__SEC_TENSORS};
    for (size_t i = 0; i < DSV3__ARRAY_LEN(required); i++)
        if (!sec[required[i]])
            return dsv3__seterr(err, DSV3_E_FORMAT, "manifest: no %s section",
                                section_name(required[i]));
    int rc = parse_kv(m, sec[DSV3__SEC_HPARAMS], sec_len[DSV3__SEC_HPARAMS], &m->hparams,
                      "hparams", err);
    if (!rc && sec[DSV3__SEC_META])
        rc = parse_kv(m, sec[DSV3__SEC_META], sec_len[DSV3__SEC_META], &m->meta, "meta", err);
    if (!rc)
        rc = parse_shards(m, sec[DSV3__SEC_SHARDS], sec_len[DSV3__SEC_SHARDS], err);
    if (!rc)
        rc = parse_tensors(m, sec[DSV3__SEC_TENSORS], sec_len[DSV3__SEC_TENSORS], err);
    if (rc)
        return rc;
    if (sec[DSV3__SEC_CONFIG]) {
        m->config = (const char *)sec[DSV3__SEC_CONFIG];
        m->config_len = sec_len[DSV3__SEC_CONFIG];
    }
    if (sec[DSV3__SEC_TOKENIZER]) {
        m->tokenizer = sec[DSV3__SEC_TOKENIZER];
        m->tokenizer_len = sec_len[DSV3__SEC_TOKENIZER];
    }
    return DSV3_OK;
}

int dsv3__manifest_parse(const dsv3__alloc *a, const void *data, size_t len, dsv3__manifest *m,
                         dsv3__err *err)
{
    memset(m, 0, sizeof *m);
    m->alloc = *a;
    uint32_t ns = 0;
    int rc = check_header(m, data, len, &ns, err);
    if (rc)
        return rc;
    m->copy = dsv3__malloc(a, len);
    /* every string has a length prefix of at least 2 bytes: len is enough */
    m->strings_cap = len;
    m->strings = dsv3__malloc(a, m->strings_cap);
    if (!m->copy || !m->strings) {
        dsv3__manifest_free(m);
        return dsv3__seterr(err, DSV3_E_NOMEM, "out of memory reading the manifest");
    }
    memcpy(m->copy, data, len);
    rc = parse_sections(m, m->copy, len, ns, err);
    if (rc) {
        if (rc == DSV3_E_NOMEM)
            dsv3__seterr(err, rc, "out of memory reading the manifest");
        dsv3__manifest_free(m);
    }
    return rc;
}

/* ---- shards ------------------------------------------------------------ */

int dsv3__shard_check(const dsv3__manifest *m, uint32_t shard, const void *hdr, size_t hdr_len,
                      uint64_t file_size, dsv3__err *err)
{
    const unsigned char *h = hdr;
    const char *name = m->shards[shard].name;
    if (hdr_len < 8 || memcmp(h, dsv3__fmt_shard_magic, 8))
        return dsv3__seterr(err, DSV3_E_FORMAT, "%s: not a libdsv3 shard (bad magic)", name);
    if (hdr_len < DSV3__FMT_HEADER_SIZE)
        return dsv3__seterr(err, DSV3_E_FORMAT, "%s: truncated shard header", name);
    uint64_t version = rd_le(h + 8, 4);
    if (version != DSV3__FMT_VERSION)
        return version_err(err, name, version);
    if (rd_le(h + 12, 4) != DSV3__FMT_HEADER_SIZE)
        return dsv3__seterr(err, DSV3_E_FORMAT, "%s: bad header size", name);
    uint64_t size = rd_le(h + 16, 8);
    if (file_size != m->shards[shard].size || size != file_size)
        return dsv3__seterr(err, DSV3_E_FORMAT,
                            "%s: size is %llu bytes, the manifest expects %llu (truncated or "
                            "replaced file)",
                            name, (unsigned long long)file_size,
                            (unsigned long long)m->shards[shard].size);
    if (rd_le(h + 24, 8) != m->model_id)
        return dsv3__seterr(err, DSV3_E_FORMAT, "%s belongs to another model (id mismatch)",
                            name);
    if (rd_le(h + 32, 4) != shard)
        return dsv3__seterr(err, DSV3_E_FORMAT, "%s: shard index %llu, expected %u", name,
                            (unsigned long long)rd_le(h + 32, 4), shard);
    for (size_t i = 36; i < DSV3__FMT_HEADER_SIZE; i++)
        if (h[i])
            return dsv3__seterr(err, DSV3_E_FORMAT, "%s: reserved header bytes not zero", name);
    return DSV3_OK;
}
