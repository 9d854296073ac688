/*
 * safetensors.c - reading Hugging Face safetensors checkpoints: one file or
 * many with model.safetensors.index.json. Files are mapped read-only and
 * every header is checked (offsets in bounds, sizes matching dtype and
 * shape, no overlapping tensors).
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/json.h"
#include "convert.h"

#define MAX_HEADER (256u << 20)

void dsv3__st_init(dsv3__stset *s, const dsv3__alloc *a)
{
    memset(s, 0, sizeof *s);
    s->alloc = *a;
    dsv3__vec_init(&s->files, sizeof(dsv3__st_file));
    dsv3__vec_init(&s->tensors, sizeof(dsv3__st_tensor));
}

void dsv3__st_close(dsv3__stset *s)
{
    dsv3__st_file *f = s->files.data;
    for (size_t i = 0; i < s->files.len; i++) {
        if (f[i].map)
            munmap(f[i].map, f[i].size);
        dsv3__free(&s->alloc, f[i].name);
    }
    dsv3__st_tensor *t = s->tensors.data;
    for (size_t i = 0; i < s->tensors.len; i++)
        dsv3__free(&s->alloc, t[i].name);
    dsv3__vec_free(&s->files, &s->alloc);
    dsv3__vec_free(&s->tensors, &s->alloc);
}

static int32_t st_dtype(const char *s, uint32_t *size)
{
    static const struct {
        const char *name;
        int32_t dtype;
        uint32_t size;
    } t[] = {
        {"F32", DSV3_DTYPE_F32, 4}, {"F16", DSV3_DTYPE_F16, 2}, {"BF16", DSV3_DTYPE_BF16, 2},
        {"F8_E4M3", DSV3_DTYPE_FP8_E4M3, 1}, {"F64", -1, 8}, {"I64", -1, 8}, {"U64", -1, 8},
        {"I32", -1, 4}, {"U32", -1, 4}, {"I16", -1, 2}, {"U16", -1, 2}, {"I8", -1, 1},
        {"U8", -1, 1}, {"BOOL", -1, 1}, {"F8_E5M2", -1, 1},
    };
    for (size_t i = 0; i < DSV3__ARRAY_LEN(t); i++)
        if (!strcmp(s, t[i].name)) {
            *size = t[i].size;
            return t[i].dtype;
        }
    *size = 0;
    return -2;
}

/* One header entry into t (name set by the caller). */
static int parse_entry(const dsv3_json *e, const unsigned char *data, uint64_t data_size,
                       dsv3__st_tensor *t, const char *file, dsv3__err *err)
{
    const char *dt = dsv3__json_string(dsv3__json_get(e, "dtype"));
    const dsv3_json *shape = dsv3__json_get(e, "shape");
    const dsv3_json *offs = dsv3__json_get(e, "data_offsets");
    uint32_t esize;
    if (!dt || strlen(dt) >= sizeof t->dtype_name || (t->dtype = st_dtype(dt, &esize)) == -2)
        return dsv3__seterr(err, DSV3_E_FORMAT, "%s: tensor '%s' has an unknown dtype", file,
                            t->name);
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dt);
    if (!shape || shape->type != DSV3_JSON_ARRAY || shape->n_children > DSV3__ST_MAX_DIMS ||
        !offs || offs->type != DSV3_JSON_ARRAY || offs->n_children != 2)
        return dsv3__seterr(err, DSV3_E_FORMAT, "%s: tensor '%s' has a malformed entry", file,
                            t->name);
    uint64_t n = 1;
    t->n_dims = (int32_t)shape->n_children;
    for (size_t d = 0; d < shape->n_children; d++) {
        int64_t v;
        if (!dsv3__json_int64(&shape->children[d], &v) || v < 0 || v > ((int64_t)1 << 40) ||
            (v && n > UINT64_MAX / 16 / (uint64_t)v))
            return dsv3__seterr(err, DSV3_E_FORMAT, "%s: tensor '%s' has a bad shape", file,
                                t->name);
        t->ne[d] = v;
        n *= (uint64_t)v;
    }
    int64_t b, en;
    if (!dsv3__json_int64(&offs->children[0], &b) || !dsv3__json_int64(&offs->children[1], &en) ||
        b < 0 || en < b || (uint64_t)en > data_size)
        return dsv3__seterr(err, DSV3_E_FORMAT,
                            "%s: tensor '%s' has data offsets outside the file (header lies "
                            "about offsets)",
                            file, t->name);
    if ((uint64_t)(en - b) != n * esize)
        return dsv3__seterr(err, DSV3_E_FORMAT,
                            "%s: tensor '%s' has %lld data bytes but its dtype and shape need "
                            "%llu",
                            file, t->name, (long long)(en - b), (unsigned long long)(n * esize));
    t->data = data + b;
    t->nbytes = (uint64_t)(en - b);
    return DSV3_OK;
}

static int cmp_data(const void *a, const void *b)
{
    const dsv3__st_tensor *x = *(dsv3__st_tensor *const *)a, *y = *(dsv3__st_tensor *const *)b;
    return x->data < y->data ? -1 : x->data > y->data;
}

/* Tensors of one file must not overlap. */
static int check_overlaps(dsv3__stset *s, size_t first, const char *file, dsv3__err *err)
{
    size_t n = s->tensors.len - first;
    if (n < 2)
        return DSV3_OK;
    dsv3__st_tensor **v = dsv3__malloc(&s->alloc, n * sizeof *v);
    if (!v)
        return dsv3__seterr(err, DSV3_E_NOMEM, "out of memory");
    dsv3__st_tensor *t = s->tensors.data;
    for (size_t i = 0; i < n; i++)
        v[i] = &t[first + i];
    qsort(v, n, sizeof *v, cmp_data);
    int rc = DSV3_OK;
    for (size_t i = 1; i < n && !rc; i++)
        if (v[i - 1]->data + v[i - 1]->nbytes > v[i]->data)
            rc = dsv3__seterr(err, DSV3_E_FORMAT,
                              "%s: tensors '%s' and '%s' overlap (header lies about offsets)",
                              file, v[i - 1]->name, v[i]->name);
    dsv3__free(&s->alloc, v);
    return rc;
}

static int parse_header(dsv3__stset *s, const dsv3_json *root, const unsigned char *data,
                        uint64_t data_size, uint32_t file_idx, const char *file,
                        dsv3__err *err)
{
    size_t first = s->tensors.len;
    for (size_t i = 0; i < root->n_children; i++) {
        const dsv3_json *e = &root->children[i];
        if (!strcmp(e->key, "__metadata__"))
            continue;
        if (e->type != DSV3_JSON_OBJECT || e->key_len == 0 || strlen(e->key) != e->key_len)
            return dsv3__seterr(err, DSV3_E_FORMAT, "%s: malformed tensor entry '%s'", file,
                                e->key);
        dsv3__st_tensor t = {0};
        t.file = file_idx;
        t.name = dsv3__strdup(&s->alloc, e->key);
        if (!t.name || dsv3__vec_push(&s->tensors, &s->alloc, &t, 1)) {
            dsv3__free(&s->alloc, t.name);
            return dsv3__seterr(err, DSV3_E_NOMEM, "out of memory");
        }
        dsv3__st_tensor *tp = (dsv3__st_tensor *)s->tensors.data + s->tensors.len - 1;
        int rc = parse_entry(e, data, data_size, tp, file, err);
        if (rc)
            return rc;
    }
    return check_overlaps(s, first, file, err);
}

int dsv3__st_add_buffer(dsv3__stset *s, const char *file_name, const void *data, size_t size,
                        dsv3__err *err)
{
    const unsigned char *d = data;
    if (size < 8)
        return dsv3__seterr(err, DSV3_E_FORMAT, "%s: too short for a safetensors file",
                            file_name);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | d[i];
    if (hl < 2 || hl > size - 8 || hl > MAX_HEADER)
        return dsv3__seterr(err, DSV3_E_FORMAT,
                            "%s: safetensors header length %llu does not fit the file (%zu "
                            "bytes): truncated or not safetensors",
                            file_name, (unsigned long long)hl, size);
    dsv3_json_doc doc;
    dsv3__err jerr;
    int rc = dsv3__json_parse(&s->alloc, (const char *)d + 8, (size_t)hl, &doc, &jerr);
    if (rc)
        return dsv3__seterr(err, rc, "%s: bad safetensors header: %s", file_name,
                            rc == DSV3_E_NOMEM ? "out of memory" : jerr.msg);
    if (doc.root->type != DSV3_JSON_OBJECT) {
        dsv3__json_free(&doc);
        return dsv3__seterr(err, DSV3_E_FORMAT, "%s: safetensors header is not an object",
                            file_name);
    }
    dsv3__st_file f = {dsv3__strdup(&s->alloc, file_name), NULL, size};
    if (!f.name || dsv3__vec_push(&s->files, &s->alloc, &f, 1)) {
        dsv3__free(&s->alloc, f.name);
        dsv3__json_free(&doc);
        return dsv3__seterr(err, DSV3_E_NOMEM, "out of memory");
    }
    rc = parse_header(s, doc.root, d + 8 + hl, size - 8 - hl, (uint32_t)(s->files.len - 1),
                      file_name, err);
    dsv3__json_free(&doc);
    return rc;
}

static int map_file(dsv3__stset *s, const char *dir, const char *name, dsv3__err *err)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return dsv3__seterr(err, DSV3_E_INVAL, "path too long: %s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dsv3__seterr(err, DSV3_E_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return dsv3__seterr(err, DSV3_E_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    void *map = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (size && map == MAP_FAILED)
        return dsv3__seterr(err, DSV3_E_IO, "%s: cannot map: %s", path, strerror(errno));
    int rc = dsv3__st_add_buffer(s, name, map, size, err);
    dsv3__st_file *f = s->files.data;
    if (s->files.len && !strcmp(f[s->files.len - 1].name, name) && !f[s->files.len - 1].map)
        f[s->files.len - 1].map = map; /* owned by the set from now on */
    else if (map)
        munmap(map, size);
    return rc;
}

/* The files named by model.safetensors.index.json, each once, in order of
 * first appearance; checks that each named tensor is in its file. */
static int open_indexed(dsv3__stset *s, const char *dir, const char *ipath, dsv3__err *err)
{
    char *text;
    size_t len;
    int rc = dsv3__read_file(&s->alloc, ipath, &text, &len, err);
    if (rc)
        return rc;
    dsv3_json_doc doc;
    dsv3__err jerr;
    rc = dsv3__json_parse(&s->alloc, text, len, &doc, &jerr);
    dsv3__free(&s->alloc, text);
    if (rc)
        return dsv3__seterr(err, rc, "model.safetensors.index.json: %s",
                            rc == DSV3_E_NOMEM ? "out of memory" : jerr.msg);
    const dsv3_json *map = dsv3__json_get(doc.root, "weight_map");
    if (!map || map->type != DSV3_JSON_OBJECT)
        rc = dsv3__seterr(err, DSV3_E_FORMAT, "model.safetensors.index.json has no weight_map");
    for (size_t i = 0; !rc && map && i < map->n_children; i++) {
        const char *fn = dsv3__json_string(&map->children[i]);
        if (!fn || !*fn || strchr(fn, '/') || fn[0] == '.') {
            rc = dsv3__seterr(err, DSV3_E_FORMAT,
                              "model.safetensors.index.json: bad file name for '%s'",
                              map->children[i].key);
            break;
        }
        bool seen = false;
        dsv3__st_file *f = s->files.data;
        for (size_t k = 0; k < s->files.len && !seen; k++)
            seen = !strcmp(f[k].name, fn);
        if (!seen)
            rc = map_file(s, dir, fn, err);
    }
    if (!rc)
        rc = dsv3__st_finalize(s, err);
    for (size_t i = 0; !rc && map && i < map->n_children; i++) {
        const dsv3__st_tensor *t = dsv3__st_find(s, map->children[i].key);
        const dsv3__st_file *f = s->files.data;
        if (!t || strcmp(f[t->file].name, dsv3__json_string(&map->children[i])))
            rc = dsv3__seterr(err, DSV3_E_FORMAT,
                              "model.safetensors.index.json: tensor '%s' is not in %s",
                              map->children[i].key, dsv3__json_string(&map->children[i]));
    }
    dsv3__json_free(&doc);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Without an index: model.safetensors, else every *.safetensors (sorted). */
static int open_plain(dsv3__stset *s, const char *dir, dsv3__err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return dsv3__seterr(err, DSV3_E_IO, "%s: %s", dir, strerror(errno));
    dsv3__vec names;
    dsv3__vec_init(&names, sizeof(char *));
    int rc = DSV3_OK;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        size_t n = strlen(e->d_name), ext = strlen(".safetensors");
        if (n <= ext || e->d_name[0] == '.' || strcmp(e->d_name + n - ext, ".safetensors"))
            continue;
        char *c = dsv3__strdup(&s->alloc, e->d_name);
        if (!c || dsv3__vec_push(&names, &s->alloc, &c, 1)) {
            dsv3__free(&s->alloc, c);
            rc = dsv3__seterr(err, DSV3_E_NOMEM, "out of memory");
        }
    }
    closedir(d);
    char **v = names.data;
    if (!rc && names.len == 0)
        rc = dsv3__seterr(err, DSV3_E_IO, "%s: no .safetensors files (and no index)", dir);
    if (!rc)
        qsort(v, names.len, sizeof *v, cmp_str);
    for (size_t i = 0; !rc && i < names.len; i++)
        rc = map_file(s, dir, v[i], err);
    for (size_t i = 0; i < names.len; i++)
        dsv3__free(&s->alloc, v[i]);
    dsv3__vec_free(&names, &s->alloc);
    return rc ? rc : dsv3__st_finalize(s, err);
}

int dsv3__st_open_dir(dsv3__stset *s, const char *dir, dsv3__err *err)
{
    char ipath[4096];
    if ((size_t)snprintf(ipath, sizeof ipath, "%s/model.safetensors.index.json", dir) >=
        sizeof ipath)
        return dsv3__seterr(err, DSV3_E_INVAL, "path too long: %s", dir);
    if (access(ipath, F_OK) == 0)
        return open_indexed(s, dir, ipath, err);
    return open_plain(s, dir, err);
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const dsv3__st_tensor *)a)->name, ((const dsv3__st_tensor *)b)->name);
}

int dsv3__st_finalize(dsv3__stset *s, dsv3__err *err)
{
    dsv3__st_tensor *t = s->tensors.data;
    if (s->tensors.len)
        qsort(t, s->tensors.len, sizeof *t, cmp_tensor);
    for (size_t i = 1; i < s->tensors.len; i++)
        if (!strcmp(t[i].name, t[i - 1].name))
            return dsv3__seterr(err, DSV3_E_FORMAT, "tensor '%s' appears twice in the checkpoint",
                                t[i].name);
    return DSV3_OK;
}

const dsv3__st_tensor *dsv3__st_find(const dsv3__stset *s, const char *name)
{
    const dsv3__st_tensor *t = s->tensors.data;
    size_t lo = 0, hi = s->tensors.len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, t[mid].name);
        if (!c)
            return &t[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

void dsv3__st_release(const dsv3__stset *s, const dsv3__st_tensor *t)
{
    const dsv3__st_file *f = (const dsv3__st_file *)s->files.data + t->file;
    if (!f->map || !t->nbytes)
        return;
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)t->data, hi = lo + t->nbytes;
    lo = (lo + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    hi &= ~((uintptr_t)pg - 1);
    if (hi > lo)
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

int dsv3__read_file(const dsv3__alloc *a, const char *path, char **out, size_t *len,
                      dsv3__err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return dsv3__seterr(err, DSV3_E_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size > (off_t)MAX_HEADER * 4) {
        fclose(f);
        return dsv3__seterr(err, DSV3_E_IO, "%s: unreadable or too large", path);
    }
    size_t n = (size_t)st.st_size;
    char *buf = dsv3__malloc(a, n + 1);
    if (!buf) {
        fclose(f);
        return dsv3__seterr(err, DSV3_E_NOMEM, "out of memory reading %s", path);
    }
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    if (got != n) {
        dsv3__free(a, buf);
        return dsv3__seterr(err, DSV3_E_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return DSV3_OK;
}
