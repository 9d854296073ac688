/*
 * synth_read.c - the weights hash of a safetensors checkpoint directory,
 * computed from the files (synth_hash_dir in synth.h).
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"
#include "synth.h"

#define HEADER_MAX ((uint64_t)1 << 28)

typedef struct entry {
    char *name;
    char *head; /* "name\ndtype\ndims\n" as hashed */
    int file;
    uint64_t off, size; /* absolute offset in the file, bytes */
} entry;

typedef struct reader {
    char **files;
    int n_files;
    entry *e;
    size_t n, cap;
    dsv3__alloc a;
    char *err;
    size_t errcap;
} reader;

static int rfail(reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rfail(reader *r, const char *fmt, ...)
{
    if (r->err && r->errcap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err, r->errcap, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct stat st;
    char *buf = NULL;
    if (fstat(fileno(f), &st) == 0 && st.st_size >= 0 && (uint64_t)st.st_size < HEADER_MAX &&
        (buf = malloc((size_t)st.st_size + 1))) {
        *len = fread(buf, 1, (size_t)st.st_size, f);
        buf[*len] = '\0';
    }
    fclose(f);
    return buf;
}

static int add_file(reader *r, const char *dir, const char *name)
{
    for (int i = 0; i < r->n_files; i++)
        if (!strcmp(strrchr(r->files[i], '/') + 1, name))
            return 0;
    if (strchr(name, '/') || !*name)
        return rfail(r, "bad shard name \"%s\"", name);
    char **nf = realloc(r->files, (size_t)(r->n_files + 1) * sizeof *nf);
    if (!nf)
        return rfail(r, "out of memory");
    r->files = nf;
    if (asprintf(&r->files[r->n_files], "%s/%s", dir, name) < 0)
        return rfail(r, "out of memory");
    r->n_files++;
    return 0;
}

/* The shard files: from model.safetensors.index.json, else model.safetensors. */
static int list_files(reader *r, const char *dir)
{
    char *ipath = NULL;
    if (asprintf(&ipath, "%s/model.safetensors.index.json", dir) < 0)
        return rfail(r, "out of memory");
    size_t len = 0;
    char *text = slurp(ipath, &len);
    free(ipath);
    if (!text)
        return add_file(r, dir, "model.safetensors");
    dsv3_json_doc doc;
    dsv3__err e;
    int rc = 0;
    if (dsv3__json_parse(&r->a, text, len, &doc, &e) != DSV3_OK) {
        rc = rfail(r, "index: %s", e.msg);
    } else {
        const dsv3_json *wm = dsv3__json_get(doc.root, "weight_map");
        if (!wm || wm->type != DSV3_JSON_OBJECT)
            rc = rfail(r, "index: no weight_map object");
        for (size_t i = 0; rc == 0 && i < wm->n_children; i++) {
            const char *fn = dsv3__json_string(&wm->children[i]);
            rc = fn ? add_file(r, dir, fn) : rfail(r, "index: weight_map value not a string");
        }
        dsv3__json_free(&doc);
    }
    free(text);
    return rc;
}

static int add_entry(reader *r, const dsv3_json *t, int file, uint64_t base, uint64_t fsize)
{
    const char *dtype = dsv3__json_string(dsv3__json_get(t, "dtype"));
    const dsv3_json *shape = dsv3__json_get(t, "shape");
    const dsv3_json *offs = dsv3__json_get(t, "data_offsets");
    int64_t lo, hi;
    if (t->type != DSV3_JSON_OBJECT || !dtype || !shape || shape->type != DSV3_JSON_ARRAY ||
        !offs || offs->n_children != 2 || !dsv3__json_int64(&offs->children[0], &lo) ||
        !dsv3__json_int64(&offs->children[1], &hi) || lo < 0 || hi < lo ||
        base + (uint64_t)hi > fsize)
        return rfail(r, "%s: bad header entry for \"%s\"", r->files[file], t->key);
    char *head = NULL;
    size_t hl = 0;
    FILE *m = open_memstream(&head, &hl);
    if (!m)
        return rfail(r, "out of memory");
    fprintf(m, "%s\n%s\n", t->key, dtype);
    for (size_t i = 0; i < shape->n_children; i++) {
        int64_t d;
        if (!dsv3__json_int64(&shape->children[i], &d))
            d = -1;
        fprintf(m, "%s%lld", i ? "," : "", (long long)d);
    }
    fputc('\n', m);
    fclose(m);
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        entry *ne = realloc(r->e, cap * sizeof *ne);
        if (!ne) {
            free(head);
            return rfail(r, "out of memory");
        }
        r->e = ne;
        r->cap = cap;
    }
    entry *e = &r->e[r->n];
    e->name = strndup(t->key, t->key_len);
    e->head = head;
    e->file = file;
    e->off = base + (uint64_t)lo;
    e->size = (uint64_t)(hi - lo);
    if (!e->name) {
        free(head);
        return rfail(r, "out of memory");
    }
    r->n++;
    return 0;
}

static int read_header(reader *r, int file)
{
    FILE *f = fopen(r->files[file], "rb");
    if (!f)
        return rfail(r, "cannot open %s", r->files[file]);
    unsigned char le[8];
    uint64_t n = 0, fsize = 0;
    struct stat st;
    int rc = 0;
    if (fstat(fileno(f), &st) == 0)
        fsize = (uint64_t)st.st_size;
    if (fread(le, 1, 8, f) != 8) {
        fclose(f);
        return rfail(r, "%s: truncated", r->files[file]);
    }
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)le[i] << (8 * i);
    char *h = (n < HEADER_MAX && n + 8 <= fsize) ? malloc(n + 1) : NULL;
    if (!h || fread(h, 1, n, f) != n) {
        free(h);
        fclose(f);
        return rfail(r, "%s: bad header length", r->files[file]);
    }
    fclose(f);
    dsv3_json_doc doc;
    dsv3__err e;
    if (dsv3__json_parse(&r->a, h, n, &doc, &e) != DSV3_OK) {
        free(h);
        return rfail(r, "%s: %s", r->files[file], e.msg);
    }
    if (doc.root->type != DSV3_JSON_OBJECT)
        rc = rfail(r, "%s: header is not an object", r->files[file]);
    for (size_t i = 0; rc == 0 && i < doc.root->n_children; i++) {
        const dsv3_json *t = &doc.root->children[i];
        if (strcmp(t->key, "__metadata__"))
            rc = add_entry(r, t, file, 8 + n, fsize);
    }
    dsv3__json_free(&doc);
    free(h);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

static int hash_all(reader *r, uint64_t *hash)
{
    uint64_t h = SYNTH_FNV_OFFSET;
    size_t bufsz = (size_t)1 << 20;
    unsigned char *buf = malloc(bufsz);
    FILE *f = NULL;
    int cur = -1, rc = buf ? 0 : rfail(r, "out of memory");
    for (size_t i = 0; rc == 0 && i < r->n; i++) {
        const entry *e = &r->e[i];
        if (i && !strcmp(e->name, r->e[i - 1].name)) {
            rc = rfail(r, "tensor %s appears twice", e->name);
            break;
        }
        h = synth_fnv1a64(h, e->head, strlen(e->head));
        if (e->file != cur) {
            if (f)
                fclose(f);
            cur = e->file;
            if (!(f = fopen(r->files[cur], "rb")))
                rc = rfail(r, "cannot open %s", r->files[cur]);
        }
        if (rc == 0 && fseeko(f, (off_t)e->off, SEEK_SET) != 0)
            rc = rfail(r, "%s: seek failed", r->files[cur]);
        for (uint64_t left = e->size; rc == 0 && left > 0;) {
            size_t k = left < bufsz ? (size_t)left : bufsz;
            if (fread(buf, 1, k, f) != k)
                rc = rfail(r, "%s: short read", r->files[cur]);
            h = synth_fnv1a64(h, buf, k);
            left -= k;
        }
    }
    if (f)
        fclose(f);
    free(buf);
    *hash = h;
    return rc;
}

int synth_hash_dir(const char *dir, uint64_t *hash, int64_t *n_tensors, char *err, size_t errcap)
{
    reader r;
    memset(&r, 0, sizeof r);
    r.err = err;
    r.errcap = errcap;
    dsv3__alloc_init(&r.a, NULL);
    int rc = dir ? list_files(&r, dir) : rfail(&r, "no directory");
    for (int i = 0; rc == 0 && i < r.n_files; i++)
        rc = read_header(&r, i);
    if (rc == 0) {
        qsort(r.e, r.n, sizeof *r.e, by_name);
        rc = hash_all(&r, hash);
        if (n_tensors)
            *n_tensors = (int64_t)r.n;
    }
    for (size_t i = 0; i < r.n; i++) {
        free(r.e[i].name);
        free(r.e[i].head);
    }
    free(r.e);
    for (int i = 0; i < r.n_files; i++)
        free(r.files[i]);
    free(r.files);
    return rc;
}
