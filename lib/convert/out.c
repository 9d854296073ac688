/*
 * out.c - the converter's output: tensors cut into chunks, compressed in
 * parallel (zstd, optionally as byte planes), appended to shard files in
 * order; then the shard headers and model.dsv3.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "convert.h"

typedef struct slot {
    unsigned char *raw;    /* chunk bytes */
    unsigned char *tmp;    /* byte planes */
    unsigned char *stored; /* compressed frame */
    size_t raw_len, stored_len;
    uint64_t hash;
} slot;

struct dsv3__outw {
    dsv3__alloc alloc;
    dsv3__out_opts o;
    dsv3__pool *pool;
    void **cctx;      /* one per worker */
    slot *slots;
    size_t n_slots;
    size_t chunk_cap; /* raw bytes a slot holds */
    /* the current tensor */
    uint32_t unit;
    bool planes;
    /* shards */
    int fd;
    uint32_t shard;   /* index of the open shard */
    uint64_t pos;     /* its size so far */
    dsv3__vec shard_sizes; /* uint64_t per finished or open shard */
    bool shard_open;
    dsv3__mbuild mb;
    dsv3__vec chunks; /* dsv3__fmt_chunk of the current tensor */
    uint64_t bytes_out;
    /* progress */
    uint64_t done;
    double last_report;
    int canceled;
};

static void shard_name(char *buf, size_t cap, uint32_t i)
{
    snprintf(buf, cap, "model-%05u%s", i + 1, DSV3__FMT_SHARD_EXT);
}

static int shard_path(const dsv3__outw *w, uint32_t i, char *buf, size_t cap, dsv3__err *err)
{
    char name[64];
    shard_name(name, sizeof name, i);
    if ((size_t)snprintf(buf, cap, "%s/%s", w->o.dir, name) >= cap)
        return dsv3__seterr(err, DSV3_E_INVAL, "output path too long");
    return DSV3_OK;
}

static int write_all(int fd, const void *p, size_t n, const char *what, dsv3__err *err)
{
    const unsigned char *b = p;
    while (n) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return dsv3__seterr(err, DSV3_E_IO, "writing %s: %s", what,
                                k < 0 ? strerror(errno) : "short write");
        b += k;
        n -= (size_t)k;
    }
    return DSV3_OK;
}

int dsv3__outw_open(const dsv3__alloc *a, const dsv3__out_opts *o, dsv3__outw **out,
                    dsv3__err *err)
{
    *out = NULL;
    dsv3__outw *w = dsv3__calloc(a, 1, sizeof *w);
    if (!w)
        return dsv3__seterr(err, DSV3_E_NOMEM, "out of memory");
    w->alloc = *a;
    w->o = *o;
    w->fd = -1;
    dsv3__mbuild_init(&w->mb, a);
    dsv3__vec_init(&w->chunks, sizeof(dsv3__fmt_chunk));
    dsv3__vec_init(&w->shard_sizes, sizeof(uint64_t));
    *out = w;
    if (dsv3__pool_new(a, o->n_threads, &w->pool))
        return dsv3__seterr(err, DSV3_E_NOMEM, "out of memory");
    int nw = dsv3__pool_size(w->pool);
    w->chunk_cap = DSV3__FMT_CHUNK;
    w->n_slots = (size_t)nw * 2;
    w->cctx = dsv3__calloc(a, (size_t)nw, sizeof *w->cctx);
    w->slots = dsv3__calloc(a, w->n_slots, sizeof *w->slots);
    if (!w->cctx || !w->slots)
        return dsv3__seterr(err, DSV3_E_NOMEM, "out of memory");
    for (int i = 0; o->level >= 0 && i < nw; i++)
        if (!(w->cctx[i] = dsv3__zstd_cctx_new(a, o->level)))
            return dsv3__seterr(err, DSV3_E_NOMEM, "cannot create a zstd context (level %d)",
                                o->level);
    size_t bound = dsv3__zstd_bound(w->chunk_cap);
    for (size_t i = 0; i < w->n_slots; i++) {
        slot *s = &w->slots[i];
        s->raw = dsv3__malloc(a, w->chunk_cap);
        s->tmp = dsv3__malloc(a, w->chunk_cap);
        s->stored = dsv3__malloc(a, bound);
        if (!s->raw || !s->tmp || !s->stored)
            return dsv3__seterr(err, DSV3_E_NOMEM, "out of memory");
    }
    return DSV3_OK;
}

dsv3__mbuild *dsv3__outw_manifest(dsv3__outw *w)
{
    return &w->mb;
}

static int open_shard(dsv3__outw *w, dsv3__err *err)
{
    char path[4096];
    uint32_t idx = (uint32_t)w->shard_sizes.len;
    int rc = shard_path(w, idx, path, sizeof path, err);
    if (rc)
        return rc;
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0)
        return dsv3__seterr(err, DSV3_E_IO, "%s: %s", path, strerror(errno));
    uint64_t zero = 0;
    if (dsv3__vec_push(&w->shard_sizes, &w->alloc, &zero, 1))
        return dsv3__seterr(err, DSV3_E_NOMEM, "out of memory");
    w->shard = idx;
    w->shard_open = true;
    unsigned char hdr[DSV3__FMT_HEADER_SIZE];
    dsv3__shard_header(hdr, 0, 0, idx); /* rewritten by finish */
    w->pos = 0;
    rc = write_all(w->fd, hdr, sizeof hdr, path, err);
    w->pos = sizeof hdr;
    return rc;
}

static int close_shard(dsv3__outw *w, dsv3__err *err)
{
    if (!w->shard_open)
        return DSV3_OK;
    ((uint64_t *)w->shard_sizes.data)[w->shard] = w->pos;
    w->shard_open = false;
    int rc = close(w->fd) == 0 ? DSV3_OK
                               : dsv3__seterr(err, DSV3_E_IO, "closing a shard: %s", strerror(errno));
    w->fd = -1;
    return rc;
}

/* Compress one slot (pool job). */
static int compress_job(void *arg, int worker, size_t j)
{
    dsv3__outw *w = arg;
    slot *s = &w->slots[j];
    if (w->o.level < 0) {
        s->hash = dsv3__xxh64(s->raw, s->raw_len, 0);
        s->stored_len = s->raw_len;
        return DSV3_OK;
    }
    const unsigned char *in = s->raw;
    if (w->planes) {
        dsv3__planes_split(s->tmp, s->raw, s->raw_len, w->unit);
        in = s->tmp;
    }
    int rc = dsv3__zstd_compress(w->cctx[worker], s->stored, dsv3__zstd_bound(w->chunk_cap), in,
                                 s->raw_len, &s->stored_len);
    if (rc == DSV3_OK)
        s->hash = dsv3__xxh64(s->stored, s->stored_len, 0);
    return rc;
}

static int report(dsv3__outw *w, bool final)
{
    if (!w->o.progress_fn || w->canceled)
        return w->canceled;
    double now = dsv3__now();
    if (!final && now - w->last_report < 0.25)
        return 0;
    w->last_report = now;
    dsv3_progress_event ev = {sizeof ev, DSV3_PROGRESS_CONVERT, w->done, w->o.progress_total};
    if (w->o.progress_fn(&ev, w->o.progress_user_data))
        w->canceled = 1;
    return w->canceled;
}

/* Compress n filled slots and append them to the shard. */
static int flush(dsv3__outw *w, size_t n, dsv3__err *err)
{
    if (!n)
        return DSV3_OK;
    int rc = dsv3__pool_run(w->pool, compress_job, w, n, NULL, NULL);
    if (rc)
        return dsv3__seterr(err, rc, "compression failed: %s", dsv3_strerror(rc));
    for (size_t i = 0; i < n; i++) {
        slot *s = &w->slots[i];
        const void *data = w->o.level < 0 ? s->raw : s->stored;
        dsv3__fmt_chunk c = {w->pos, s->stored_len, 0, s->raw_len, s->hash};
        rc = write_all(w->fd, data, s->stored_len, "a shard", err);
        if (rc)
            return rc;
        if (dsv3__vec_push(&w->chunks, &w->alloc, &c, 1))
            return dsv3__seterr(err, DSV3_E_NOMEM, "out of memory");
        w->pos += s->stored_len;
        w->done += s->raw_len;
    }
    if (report(w, false))
        return dsv3__seterr(err, DSV3_E_CANCELED, "conversion canceled");
    return DSV3_OK;
}

/* Start a tensor of raw_size bytes: pick (or start) a shard, align. */
static int begin_tensor(dsv3__outw *w, uint64_t raw_size, dsv3__err *err)
{
    if (w->shard_open && w->pos > DSV3__FMT_HEADER_SIZE && w->pos + raw_size > w->o.shard_size) {
        int rc = close_shard(w, err);
        if (rc)
            return rc;
    }
    if (!w->shard_open) {
        int rc = open_shard(w, err);
        if (rc)
            return rc;
    }
    static const unsigned char zeros[DSV3__FMT_ALIGN];
    size_t pad = (size_t)((DSV3__FMT_ALIGN - w->pos % DSV3__FMT_ALIGN) % DSV3__FMT_ALIGN);
    w->pos += pad;
    return write_all(w->fd, zeros, pad, "a shard", err);
}

int dsv3__outw_tensor(dsv3__outw *w, const char *name, int32_t dtype, int32_t n_dims,
                      const int64_t *ne, dsv3__prod *p, dsv3__err *err)
{
    uint64_t raw_size;
    if (!dsv3__fmt_tensor_bytes(dtype, n_dims, ne, &raw_size))
        return dsv3__seterr(err, DSV3_E_INTERNAL, "tensor '%s': bad output shape", name);
    w->unit = dsv3__fmt_dtype_unit(dtype);
    w->planes = w->o.level >= 0 && w->o.byte_planes && (w->unit == 2 || w->unit == 4);
    size_t chunk = w->chunk_cap / w->unit * w->unit;
    int rc = begin_tensor(w, raw_size, err);
    if (rc)
        return rc;
    w->chunks.len = 0;
    size_t filled = 0; /* slots completely or partly filled */
    uint64_t got = 0;
    const unsigned char *piece = NULL;
    size_t left = 0;
    for (;;) {
        if (!left && (rc = dsv3__prod_next(p, &piece, &left)))
            return dsv3__seterr(err, rc, "tensor '%s': %s", name, dsv3_strerror(rc));
        if (!left)
            break;
        slot *s = &w->slots[filled];
        size_t n = DSV3__MIN(left, chunk - s->raw_len);
        memcpy(s->raw + s->raw_len, piece, n);
        s->raw_len += n;
        piece += n;
        left -= n;
        got += n;
        if (s->raw_len == chunk && ++filled == w->n_slots) {
            if ((rc = flush(w, filled, err)))
                return rc;
            for (size_t i = 0; i < filled; i++)
                w->slots[i].raw_len = 0;
            filled = 0;
        }
    }
    if (w->slots[filled].raw_len)
        filled++;
    rc = flush(w, filled, err);
    for (size_t i = 0; i < w->n_slots; i++)
        w->slots[i].raw_len = 0;
    if (rc)
        return rc;
    if (got != raw_size)
        return dsv3__seterr(err, DSV3_E_INTERNAL, "tensor '%s': produced %llu bytes, expected %llu",
                            name, (unsigned long long)got, (unsigned long long)raw_size);
    int32_t codec = w->o.level < 0 ? DSV3__CODEC_RAW : DSV3__CODEC_ZSTD;
    dsv3__mbuild_tensor(&w->mb, name, dtype, n_dims, ne, codec, w->planes ? DSV3__TFLAG_PLANES : 0,
                        w->shard, chunk, w->chunks.data, (uint32_t)w->chunks.len);
    if (w->mb.rc)
        return dsv3__seterr(err, w->mb.rc, "tensor '%s': %s", name, dsv3_strerror(w->mb.rc));
    return DSV3_OK;
}

static int patch_headers(dsv3__outw *w, uint64_t id, dsv3__err *err)
{
    const uint64_t *sizes = w->shard_sizes.data;
    for (uint32_t i = 0; i < w->shard_sizes.len; i++) {
        char path[4096], name[64];
        int rc = shard_path(w, i, path, sizeof path, err);
        if (rc)
            return rc;
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            return dsv3__seterr(err, DSV3_E_IO, "%s: %s", path, strerror(errno));
        unsigned char hdr[DSV3__FMT_HEADER_SIZE];
        dsv3__shard_header(hdr, sizes[i], id, i);
        ssize_t k = pwrite(fd, hdr, sizeof hdr, 0);
        int crc = close(fd);
        if (k != (ssize_t)sizeof hdr || crc)
            return dsv3__seterr(err, DSV3_E_IO, "%s: cannot write the header", path);
        shard_name(name, sizeof name, i);
        dsv3__mbuild_shard(&w->mb, name, sizes[i]);
        w->bytes_out += sizes[i];
    }
    return DSV3_OK;
}

int dsv3__outw_finish(dsv3__outw *w, dsv3__err *err)
{
    int rc = close_shard(w, err);
    if (rc)
        return rc;
    if (!w->shard_sizes.len) { /* a model without tensors still has one (empty) shard */
        rc = open_shard(w, err);
        if (!rc)
            rc = close_shard(w, err);
        if (rc)
            return rc;
    }
    uint64_t id = dsv3__mbuild_model_id(&w->mb);
    if ((rc = patch_headers(w, id, err)))
        return rc;
    void *man;
    size_t len;
    if ((rc = dsv3__mbuild_finish(&w->mb, id, &man, &len, err)))
        return rc;
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", w->o.dir, DSV3__FMT_MANIFEST_NAME);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        rc = dsv3__seterr(err, DSV3_E_IO, "%s: %s", tmp, strerror(errno));
    if (!rc) {
        rc = write_all(fd, man, len, tmp, err);
        if (close(fd) && !rc)
            rc = dsv3__seterr(err, DSV3_E_IO, "%s: %s", tmp, strerror(errno));
    }
    dsv3__free(&w->alloc, man);
    if (!rc && rename(tmp, path))
        rc = dsv3__seterr(err, DSV3_E_IO, "%s: %s", path, strerror(errno));
    if (rc)
        unlink(tmp);
    w->bytes_out += len;
    if (!rc)
        report(w, true);
    return rc;
}

uint64_t dsv3__outw_bytes(const dsv3__outw *w)
{
    return w->bytes_out;
}

void dsv3__outw_free(dsv3__outw *w, bool remove)
{
    if (!w)
        return;
    if (w->shard_open)
        close(w->fd);
    if (remove) {
        char path[4096];
        for (uint32_t i = 0; i < w->shard_sizes.len; i++)
            if (shard_path(w, i, path, sizeof path, NULL) == DSV3_OK)
                unlink(path);
    }
    int nw = w->pool ? dsv3__pool_size(w->pool) : 0;
    for (int i = 0; w->cctx && i < nw; i++)
        dsv3__zstd_cctx_free(w->cctx[i]);
    for (size_t i = 0; w->slots && i < w->n_slots; i++) {
        dsv3__free(&w->alloc, w->slots[i].raw);
        dsv3__free(&w->alloc, w->slots[i].tmp);
        dsv3__free(&w->alloc, w->slots[i].stored);
    }
    dsv3__pool_free(w->pool);
    dsv3__free(&w->alloc, w->cctx);
    dsv3__free(&w->alloc, w->slots);
    dsv3__mbuild_free(&w->mb);
    dsv3__vec_free(&w->chunks, &w->alloc);
    dsv3__vec_free(&w->shard_sizes, &w->alloc);
    dsv3__alloc a = w->alloc;
    dsv3__free(&a, w);
}
