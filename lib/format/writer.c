/*
 * writer.c - building a manifest in memory and shard headers.
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "format.h"

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* What the builder remembers of each tensor (for aliases). */
typedef struct tmeta {
    char *name;
    int32_t dtype, n_dims;
    int64_t ne[DSV3__FMT_MAX_DIMS];
} tmeta;

static void app(dsv3__mbuild *b, dsv3__vec *v, const void *data, size_t n)
{
    if (b->rc == DSV3_OK && dsv3__vec_push(v, &b->alloc, data, n) != DSV3_OK)
        b->rc = DSV3_E_NOMEM;
}

static void app_le(dsv3__mbuild *b, dsv3__vec *v, uint64_t x, int n)
{
    unsigned char buf[8];
    put_le(buf, x, n);
    app(b, v, buf, (size_t)n);
}

static void app_str16(dsv3__mbuild *b, dsv3__vec *v, const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > DSV3__FMT_MAX_NAME) {
        if (b->rc == DSV3_OK)
            b->rc = DSV3_E_INVAL;
        return;
    }
    app_le(b, v, n, 2);
    app(b, v, s, n);
}

void dsv3__mbuild_init(dsv3__mbuild *b, const dsv3__alloc *a)
{
    memset(b, 0, sizeof *b);
    b->alloc = *a;
    for (int i = 0; i < 2; i++) {
        dsv3__vec_init(&b->kv[i], 1);
        dsv3__vec_init(&b->blob[i], 1);
    }
    dsv3__vec_init(&b->shards, 1);
    dsv3__vec_init(&b->tensors, 1);
    dsv3__vec_init(&b->names, sizeof(tmeta));
}

void dsv3__mbuild_free(dsv3__mbuild *b)
{
    for (int i = 0; i < 2; i++) {
        dsv3__vec_free(&b->kv[i], &b->alloc);
        dsv3__vec_free(&b->blob[i], &b->alloc);
    }
    dsv3__vec_free(&b->shards, &b->alloc);
    dsv3__vec_free(&b->tensors, &b->alloc);
    tmeta *t = b->names.data;
    for (size_t i = 0; i < b->names.len; i++)
        dsv3__free(&b->alloc, t[i].name);
    dsv3__vec_free(&b->names, &b->alloc);
}

static dsv3__vec *kv_vec(dsv3__mbuild *b, int section, const char *key, int type)
{
    int k = section == DSV3__SEC_META ? 1 : 0;
    app_str16(b, &b->kv[k], key);
    app_le(b, &b->kv[k], (uint64_t)type, 1);
    b->n_kv[k]++;
    return &b->kv[k];
}

void dsv3__mbuild_kv_i64(dsv3__mbuild *b, int section, const char *key, int64_t v)
{
    app_le(b, kv_vec(b, section, key, DSV3__KV_I64), (uint64_t)v, 8);
}

void dsv3__mbuild_kv_f64(dsv3__mbuild *b, int section, const char *key, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    app_le(b, kv_vec(b, section, key, DSV3__KV_F64), u, 8);
}

void dsv3__mbuild_kv_str(dsv3__mbuild *b, int section, const char *key, const char *s, size_t n)
{
    dsv3__vec *v = kv_vec(b, section, key, DSV3__KV_STR);
    if (n > UINT32_MAX && b->rc == DSV3_OK)
        b->rc = DSV3_E_INVAL;
    app_le(b, v, n, 4);
    app(b, v, s, n);
}

void dsv3__mbuild_kv_bool(dsv3__mbuild *b, int section, const char *key, bool v)
{
    app_le(b, kv_vec(b, section, key, DSV3__KV_BOOL), v ? 1 : 0, 1);
}

void dsv3__mbuild_blob(dsv3__mbuild *b, int section, const void *data, size_t n)
{
    int k = section == DSV3__SEC_TOKENIZER ? 1 : 0;
    b->blob[k].len = 0;
    b->has_blob[k] = true;
    app(b, &b->blob[k], data, n);
}

void dsv3__mbuild_shard(dsv3__mbuild *b, const char *name, uint64_t size)
{
    app_str16(b, &b->shards, name);
    app_le(b, &b->shards, size, 8);
    b->n_shards++;
}

static void tensor_head(dsv3__mbuild *b, const char *name, int32_t dtype, int32_t n_dims,
                        const int64_t *ne, int32_t codec, uint32_t flags)
{
    if (n_dims < 1 || n_dims > DSV3__FMT_MAX_DIMS) {
        if (b->rc == DSV3_OK)
            b->rc = DSV3_E_INVAL;
        return;
    }
    app_str16(b, &b->tensors, name);
    app_le(b, &b->tensors, (uint64_t)dtype, 1);
    app_le(b, &b->tensors, (uint64_t)codec, 1);
    app_le(b, &b->tensors, flags, 1);
    app_le(b, &b->tensors, (uint64_t)n_dims, 1);
    for (int i = 0; i < n_dims; i++)
        app_le(b, &b->tensors, (uint64_t)ne[i], 8);
    tmeta t = {dsv3__strdup(&b->alloc, name), dtype, n_dims, {1, 1, 1, 1}};
    memcpy(t.ne, ne, (size_t)n_dims * sizeof *ne);
    if (!t.name && b->rc == DSV3_OK)
        b->rc = DSV3_E_NOMEM;
    size_t before = b->names.len;
    app(b, &b->names, &t, 1);
    if (b->names.len == before)
        dsv3__free(&b->alloc, t.name);
    b->n_tensors++;
}

void dsv3__mbuild_tensor(dsv3__mbuild *b, const char *name, int32_t dtype, int32_t n_dims,
                         const int64_t *ne, int32_t codec, uint32_t flags, uint32_t shard,
                         uint64_t chunk_size, const dsv3__fmt_chunk *chunks,
                         uint32_t n_chunks)
{
    uint64_t raw = 0;
    if (!dsv3__fmt_tensor_bytes(dtype, n_dims, ne, &raw) && b->rc == DSV3_OK)
        b->rc = DSV3_E_INVAL;
    tensor_head(b, name, dtype, n_dims, ne, codec, flags);
    app_le(b, &b->tensors, shard, 4);
    app_le(b, &b->tensors, n_chunks ? chunks[0].offset : DSV3__FMT_HEADER_SIZE, 8);
    app_le(b, &b->tensors, raw, 8);
    app_le(b, &b->tensors, chunk_size, 8);
    app_le(b, &b->tensors, n_chunks, 4);
    for (uint32_t i = 0; i < n_chunks; i++) {
        app_le(b, &b->tensors, chunks[i].stored, 8);
        app_le(b, &b->tensors, chunks[i].hash, 8);
    }
}

void dsv3__mbuild_alias(dsv3__mbuild *b, const char *name, const char *target)
{
    const tmeta *t = b->names.data;
    size_t idx = b->names.len;
    for (size_t i = 0; i < b->names.len; i++)
        if (t[i].name && !strcmp(t[i].name, target))
            idx = i;
    if (idx == b->names.len) {
        if (b->rc == DSV3_OK)
            b->rc = DSV3_E_INVAL;
        return;
    }
    tmeta g = t[idx]; /* tensor_head may move the array */
    tensor_head(b, name, g.dtype, g.n_dims, g.ne, DSV3__CODEC_ALIAS, 0);
    app_le(b, &b->tensors, idx, 4);
}

uint64_t dsv3__mbuild_model_id(const dsv3__mbuild *b)
{
    return dsv3__xxh64(b->tensors.data, b->tensors.len, 0x64737633ull);
}

/* One section: count prefix (for lists) + body. */
typedef struct sec_src {
    uint32_t kind;
    uint32_t flags;
    bool counted; /* prefix the bytes with a u32 count */
    uint32_t count;
    const void *data;
    size_t len;
} sec_src;

int dsv3__mbuild_finish(dsv3__mbuild *b, uint64_t model_id, void **out, size_t *len,
                        dsv3__err *err)
{
    *out = NULL;
    *len = 0;
    if (b->rc)
        return dsv3__seterr(err, b->rc, "building the manifest failed: %s",
                            dsv3_strerror(b->rc));
    const uint32_t req = DSV3__SEC_FLAG_REQUIRED;
    sec_src s[6];
    int n = 0;
    s[n++] = (sec_src){DSV3__SEC_HPARAMS, req, true, b->n_kv[0], b->kv[0].data, b->kv[0].len};
    if (b->n_kv[1])
        s[n++] = (sec_src){DSV3__SEC_META, 0, true, b->n_kv[1], b->kv[1].data, b->kv[1].len};
    if (b->has_blob[0])
        s[n++] = (sec_src){DSV3__SEC_CONFIG, 0, false, 0, b->blob[0].data, b->blob[0].len};
    if (b->has_blob[1])
        s[n++] = (sec_src){DSV3__SEC_TOKENIZER, 0, false, 0, b->blob[1].data, b->blob[1].len};
    s[n++] = (sec_src){DSV3__SEC_SHARDS, req, true, b->n_shards, b->shards.data, b->shards.len};
    s[n++] = (sec_src){DSV3__SEC_TENSORS, req, true, b->n_tensors, b->tensors.data,
                       b->tensors.len};
    size_t total = DSV3__FMT_HEADER_SIZE + (size_t)n * 32;
    size_t off[6];
    for (int i = 0; i < n; i++) {
        total = (total + 7) & ~(size_t)7;
        off[i] = total;
        total += s[i].len + (s[i].counted ? 4 : 0);
    }
    unsigned char *d = dsv3__calloc(&b->alloc, 1, total);
    if (!d)
        return dsv3__seterr(err, DSV3_E_NOMEM, "out of memory building the manifest");
    for (int i = 0; i < n; i++) {
        unsigned char *p = d + off[i];
        if (s[i].counted) {
            put_le(p, s[i].count, 4);
            p += 4;
        }
        if (s[i].len)
            memcpy(p, s[i].data, s[i].len);
        size_t sl = s[i].len + (s[i].counted ? 4 : 0);
        unsigned char *e = d + DSV3__FMT_HEADER_SIZE + 32 * i;
        put_le(e, s[i].kind, 4);
        put_le(e + 4, s[i].flags, 4);
        put_le(e + 8, off[i], 8);
        put_le(e + 16, sl, 8);
        put_le(e + 24, dsv3__xxh64(d + off[i], sl, 0), 8);
    }
    memcpy(d, dsv3__fmt_manifest_magic, 8);
    put_le(d + 8, DSV3__FMT_VERSION, 4);
    put_le(d + 12, DSV3__FMT_HEADER_SIZE, 4);
    put_le(d + 16, total, 8);
    put_le(d + 24, model_id, 8);
    put_le(d + 32, (uint64_t)n, 4);
    put_le(d + 40, dsv3__xxh64(d + DSV3__FMT_HEADER_SIZE, (size_t)n * 32, 0), 8);
    *out = d;
    *len = total;
    return DSV3_OK;
}

void dsv3__shard_header(unsigned char hdr[64], uint64_t file_size, uint64_t model_id,
                        uint32_t index)
{
    memset(hdr, 0, DSV3__FMT_HEADER_SIZE);
    memcpy(hdr, dsv3__fmt_shard_magic, 8);
    put_le(hdr + 8, DSV3__FMT_VERSION, 4);
    put_le(hdr + 12, DSV3__FMT_HEADER_SIZE, 4);
    put_le(hdr + 16, file_size, 8);
    put_le(hdr + 24, model_id, 8);
    put_le(hdr + 32, index, 4);
}
