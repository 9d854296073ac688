/*
 * loadio.c - the data side of dsv3_model_load: shards are checked and
 * mapped read-only, every tensor gets backend memory (or wraps the mapping
 * of a raw shard), and all chunks are verified and decompressed in parallel
 * straight into backend memory (host backends) or through a staging buffer.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../format/format.h"
#include "model.h"

typedef struct job {
    uint32_t place;
    uint32_t chunk;
} job;

typedef struct lctx {
    dsv3_model *m;
    const dsv3__manifest *man;
    dsv3__load_state *ls;
    job *jobs;
    size_t n_jobs;
    int n_workers;
    void **dctx;          /* per worker */
    unsigned char **scr;  /* per worker: planes | staging | f32 */
    size_t a_size, b_size, c_size;
    bool verify;
    bool staging; /* DSV3_DEBUG_LOAD_STAGING: treat every backend as non-host */
    atomic_uint_fast64_t done;
    uint64_t total;
    double last;
    pthread_mutex_t lock; /* first error */
    int err_rc;
} lctx;

/* ---- shards ----------------------------------------------------------------- */

static int open_shard(lctx *c, uint32_t i, const char *dir, uint64_t *disk)
{
    dsv3_model *m = c->m;
    const char *name = c->man->shards[i].name;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return dsv3__seterr(&m->err, DSV3_E_INVAL, "model path too long");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dsv3__seterr(&m->err, DSV3_E_IO, "%s: %s (a shard listed in model.dsv3)", path,
                            strerror(errno));
    struct stat st;
    unsigned char hdr[DSV3__FMT_HEADER_SIZE];
    ssize_t got = fstat(fd, &st) == 0 ? pread(fd, hdr, sizeof hdr, 0) : -1;
    if (got < 0) {
        close(fd);
        return dsv3__seterr(&m->err, DSV3_E_IO, "%s: %s", path, strerror(errno));
    }
    int rc = dsv3__shard_check(c->man, i, hdr, (size_t)got, (uint64_t)st.st_size, &m->err);
    if (rc) {
        close(fd);
        return rc;
    }
    size_t len = (size_t)st.st_size;
    void *addr = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (addr == MAP_FAILED)
        return dsv3__seterr(&m->err, errno == ENOMEM ? DSV3_E_NOMEM : DSV3_E_IO,
                            "%s: cannot map: %s", path, strerror(errno));
    c->ls->maps[i].addr = addr;
    c->ls->maps[i].len = len;
    *disk += len;
    return DSV3_OK;
}

/* ---- buffers ------------------------------------------------------------------ */

static bool is_host(const lctx *c, const dsv3_backend *be)
{
    return (be->caps.flags & DSV3_CAP_HOST_MEMORY) && !c->staging;
}

static void point_at(dsv3__place *p, void *base, int32_t backend)
{
    if (p->is_scale)
        p->dst->scale = base;
    else
        p->dst->data = base;
    p->dst->backend = backend;
}

static int place_buffer(lctx *c, dsv3__place *p)
{
    dsv3_model *m = c->m;
    dsv3_backend *be = p->stack && m->be_cpu.ops ? &m->be_cpu : &m->be;
    const dsv3__fmt_tensor *ft = p->ft;
    bool map = ft->codec == DSV3__CODEC_RAW && is_host(c, be) && be->ops->buf_from_host &&
               !(m->params.flags & DSV3_MODEL_NO_MMAP) && !p->to_f32;
    int rc;
    p->be = be;
    if (map) {
        dsv3__shard_map *sm = &c->ls->maps[ft->shard];
        rc = be->ops->buf_from_host(be->state, (char *)sm->addr + ft->offset, (size_t)p->size,
                                    &p->buf);
        sm->keep = sm->keep || rc == DSV3_OK;
        p->mapped = rc == DSV3_OK;
    } else {
        rc = be->ops->buf_alloc(be->state, (size_t)p->size, DSV3_BUF_WEIGHTS, &p->buf);
    }
    if (rc) {
        p->buf = NULL;
        return dsv3__seterr(&m->err, rc == DSV3_E_NOMEM ? DSV3_E_NOMEM : DSV3_E_BACKEND,
                            "cannot allocate %llu bytes for '%s' on backend %s: %s",
                            (unsigned long long)p->size, ft->name, be->ops->name,
                            dsv3_strerror(rc));
    }
    point_at(p, p->buf->base, be->ops->id);
    return DSV3_OK;
}

/* Buffers for every place; the job list; worker scratch sizes. */
static int plan_jobs(lctx *c)
{
    dsv3__load_state *ls = c->ls;
    size_t n_jobs = 0;
    for (size_t i = 0; i < ls->n_places; i++) {
        dsv3__place *p = &ls->places[i];
        if (p->share >= 0)
            continue;
        int rc = place_buffer(c, p);
        if (rc)
            return rc;
        if (!p->mapped || c->verify)
            n_jobs += p->ft->n_chunks;
    }
    for (size_t i = 0; i < ls->n_places; i++) { /* aliases share the loaded data */
        dsv3__place *p = &ls->places[i];
        if (p->share >= 0)
            point_at(p, ls->places[p->share].buf->base, ls->places[p->share].be->ops->id);
    }
    c->jobs = dsv3__malloc(&c->m->alloc, (n_jobs ? n_jobs : 1) * sizeof *c->jobs);
    if (!c->jobs)
        return dsv3__seterr(&c->m->err, DSV3_E_NOMEM, "out of memory");
    for (size_t i = 0; i < ls->n_places; i++) {
        dsv3__place *p = &ls->places[i];
        if (p->share >= 0 || (p->mapped && !c->verify))
            continue;
        const dsv3__fmt_tensor *ft = p->ft;
        for (uint32_t k = 0; k < ft->n_chunks; k++) {
            c->jobs[c->n_jobs++] = (job){(uint32_t)i, k};
            c->total += ft->chunks[k].raw;
            size_t raw = (size_t)ft->chunks[k].raw;
            if (p->mapped)
                continue;
            if (ft->flags & DSV3__TFLAG_PLANES)
                c->a_size = DSV3__MAX(c->a_size, raw);
            if (p->to_f32 || !is_host(c, p->be))
                c->b_size = DSV3__MAX(c->b_size, raw);
            if (p->to_f32)
                c->c_size = DSV3__MAX(c->c_size, raw * 2);
        }
    }
    return DSV3_OK;
}

/* ---- decoding -------------------------------------------------------------- */

static void widen(float *dst, const unsigned char *src, int32_t dtype, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t h = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
        dst[i] = dtype == DSV3_DTYPE_BF16 ? dsv3__bf16_to_f32(h) : dsv3__f16_to_f32(h);
    }
}

static int record(lctx *c, int rc, const dsv3__err *e)
{
    pthread_mutex_lock(&c->lock);
    if (!c->err_rc) {
        c->err_rc = rc;
        dsv3__model_seterr(c->m, rc, "%s", e->msg);
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

static int decode_job(void *arg, int worker, size_t j)
{
    lctx *c = arg;
    const dsv3__place *p = &c->ls->places[c->jobs[j].place];
    const dsv3__fmt_tensor *ft = p->ft;
    const dsv3__fmt_chunk *ch = &ft->chunks[c->jobs[j].chunk];
    const unsigned char *src = (const unsigned char *)c->ls->maps[ft->shard].addr + ch->offset;
    dsv3__err e;
    int rc = DSV3_OK;
    if (p->mapped) {
        if (dsv3__xxh64(src, (size_t)ch->stored, 0) != ch->hash)
            rc = dsv3__seterr(&e, DSV3_E_CHECKSUM,
                              "tensor '%s': checksum mismatch at offset %llu (corrupt shard)",
                              ft->name, (unsigned long long)ch->raw_off);
    } else if (!p->to_f32 && is_host(c, p->be)) {
        rc = dsv3__chunk_decode(c->dctx[worker], ft, ch, src,
                                (unsigned char *)p->buf->base + ch->raw_off, c->scr[worker],
                                c->verify, &e);
    } else {
        unsigned char *a = c->scr[worker], *b = a + c->a_size, *f = b + c->b_size;
        rc = dsv3__chunk_decode(c->dctx[worker], ft, ch, src, b, a, c->verify, &e);
        const void *out = b;
        size_t n = (size_t)ch->raw, off = (size_t)ch->raw_off;
        if (!rc && p->to_f32) {
            widen((float *)(void *)f, b, ft->dtype, n / 2);
            out = f;
            off *= 2;
            n *= 2;
        }
        if (!rc && is_host(c, p->be))
            memcpy((unsigned char *)p->buf->base + off, out, n);
        else if (!rc && (rc = p->be->ops->buf_write(p->be->state, p->buf, off, out, n)))
            rc = dsv3__seterr(&e, DSV3_E_BACKEND, "backend %s: writing '%s' failed: %s",
                              p->be->ops->name, ft->name, dsv3_strerror(rc));
    }
    if (rc)
        return record(c, rc, &e);
    atomic_fetch_add_explicit(&c->done, ch->raw, memory_order_relaxed);
    return DSV3_OK;
}

static int report(lctx *c, bool final)
{
    const dsv3_model_params *pp = &c->m->params;
    double now = dsv3__now();
    if (!pp->progress_fn || (!final && now - c->last < 0.25))
        return 0;
    c->last = now;
    dsv3_progress_event ev = {sizeof ev, DSV3_PROGRESS_LOAD, atomic_load(&c->done), c->total};
    return pp->progress_fn(&ev, pp->progress_user_data);
}

static int tick(void *arg)
{
    return report(arg, false);
}

static int make_workers(lctx *c, dsv3__pool **pool)
{
    dsv3_model *m = c->m;
    int n = dsv3__resolve_threads(m->params.n_threads);
    if ((size_t)n > c->n_jobs)
        n = c->n_jobs ? (int)c->n_jobs : 1;
    int rc = dsv3__pool_new(&m->alloc, n, pool);
    if (rc)
        return dsv3__seterr(&m->err, rc, "out of memory");
    c->n_workers = dsv3__pool_size(*pool);
    c->dctx = dsv3__calloc(&m->alloc, (size_t)c->n_workers, sizeof *c->dctx);
    c->scr = dsv3__calloc(&m->alloc, (size_t)c->n_workers, sizeof *c->scr);
    if (!c->dctx || !c->scr)
        return dsv3__seterr(&m->err, DSV3_E_NOMEM, "out of memory");
    size_t scr = c->a_size + c->b_size + c->c_size;
    for (int i = 0; i < c->n_workers; i++) {
        c->dctx[i] = dsv3__zstd_dctx_new(&m->alloc);
        c->scr[i] = dsv3__malloc(&m->alloc, scr ? scr : 1);
        if (!c->dctx[i] || !c->scr[i])
            return dsv3__seterr(&m->err, DSV3_E_NOMEM, "out of memory for loader threads");
    }
    return DSV3_OK;
}

static void free_workers(lctx *c, dsv3__pool *pool)
{
    dsv3__pool_free(pool);
    for (int i = 0; i < c->n_workers; i++) {
        if (c->dctx)
            dsv3__zstd_dctx_free(c->dctx[i]);
        if (c->scr)
            dsv3__free(&c->m->alloc, c->scr[i]);
    }
    dsv3__free(&c->m->alloc, c->dctx);
    dsv3__free(&c->m->alloc, c->scr);
    dsv3__free(&c->m->alloc, c->jobs);
}

static int run(lctx *c)
{
    dsv3__pool *pool = NULL;
    int rc = make_workers(c, &pool);
    if (!rc && c->n_jobs) {
        rc = dsv3__pool_run(pool, decode_job, c, c->n_jobs, tick, c);
        if (rc == DSV3_E_CANCELED && !c->err_rc)
            rc = dsv3__seterr(&c->m->err, DSV3_E_CANCELED, "model load canceled");
        else if (rc && c->err_rc)
            rc = c->err_rc;
    }
    free_workers(c, pool);
    if (!rc)
        report(c, true);
    return rc;
}

int dsv3__load_data(dsv3_model *m, const dsv3__manifest *man, const char *dir,
                    uint64_t *disk_bytes)
{
    lctx c;
    memset(&c, 0, sizeof c);
    c.m = m;
    c.man = man;
    c.ls = m->load;
    c.verify = !(m->params.flags & DSV3_MODEL_SKIP_CHECKSUMS);
    const char *dbg = getenv("DSV3_DEBUG_LOAD_STAGING"); /* documented in docs/format.md */
    c.staging = dbg && *dbg && strcmp(dbg, "0") != 0;
    c.last = 0; /* first report after the first chunk */
    atomic_init(&c.done, 0);
    c.ls->maps = dsv3__calloc(&m->alloc, man->n_shards, sizeof *c.ls->maps);
    if (!c.ls->maps)
        return dsv3__seterr(&m->err, DSV3_E_NOMEM, "out of memory");
    c.ls->n_maps = man->n_shards;
    int rc = DSV3_OK;
    for (uint32_t i = 0; i < man->n_shards && !rc; i++)
        rc = open_shard(&c, i, dir, disk_bytes);
    if (!rc)
        rc = plan_jobs(&c);
    if (!rc) {
        pthread_mutex_init(&c.lock, NULL);
        rc = run(&c);
        pthread_mutex_destroy(&c.lock);
    } else {
        dsv3__free(&m->alloc, c.jobs);
    }
    for (uint32_t i = 0; !rc && i < c.ls->n_maps; i++) {
        dsv3__shard_map *sm = &c.ls->maps[i];
        if (!sm->keep && sm->addr) {
            munmap(sm->addr, sm->len);
            sm->addr = NULL;
        }
    }
    return rc;
}

void dsv3__load_release(dsv3_model *m)
{
    dsv3__load_state *ls = m->load;
    if (!ls)
        return;
    for (size_t i = 0; ls->places && i < ls->n_places; i++) {
        dsv3__place *p = &ls->places[i];
        if (p->buf && p->share < 0)
            p->be->ops->buf_free(p->be->state, p->buf);
    }
    for (uint32_t i = 0; ls->maps && i < ls->n_maps; i++)
        if (ls->maps[i].addr)
            munmap(ls->maps[i].addr, ls->maps[i].len);
    dsv3__free(&m->alloc, ls->places);
    dsv3__free(&m->alloc, ls->maps);
    dsv3__free(&m->alloc, ls);
    m->load = NULL;
}
