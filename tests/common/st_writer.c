/*
 * st_writer.c - safetensors writer for tests.
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_writer.h"

typedef struct st_tensor {
    char *name;
    char dtype[16];
    int n_dims;
    int64_t shape[8];
    void *data;
    size_t nbytes;
} st_tensor;

struct st_writer {
    st_tensor *t;
    int n, cap;
};

st_writer *st_new(void)
{
    return calloc(1, sizeof(st_writer));
}

void st_free(st_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->t);
    free(w);
}

int st_count(const st_writer *w)
{
    return w->n;
}

int st_add(st_writer *w, const char *name, const char *dtype, int n_dims, const int64_t *shape,
           const void *data, size_t nbytes)
{
    if (n_dims < 0 || n_dims > 8 || strlen(dtype) >= 16)
        return -1;
    if (w->n == w->cap) {
        int cap = w->cap ? w->cap * 2 : 64;
        st_tensor *t = realloc(w->t, (size_t)cap * sizeof *t);
        if (!t)
            return -1;
        w->t = t;
        w->cap = cap;
    }
    st_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->data = malloc(nbytes ? nbytes : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return -1;
    }
    memcpy(t->data, data, nbytes);
    t->nbytes = nbytes;
    strcpy(t->dtype, dtype);
    t->n_dims = n_dims;
    for (int i = 0; i < n_dims; i++)
        t->shape[i] = shape[i];
    w->n++;
    return 0;
}

/* Append to a malloc'ed string. */
static int cat(char **s, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int cat(char **s, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(*s ? *s + *len : NULL, *s ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -1;
        if (*s && *len + (size_t)n < *cap) {
            *len += (size_t)n;
            return 0;
        }
        size_t nc = (*cap + (size_t)n + 1) * 2;
        char *ns = realloc(*s, nc);
        if (!ns)
            return -1;
        *s = ns;
        *cap = nc;
    }
}

static int write_range(const st_writer *w, int lo, int hi, const char *path)
{
    char *h = NULL;
    size_t len = 0, cap = 0;
    size_t off = 0;
    int rc = cat(&h, &len, &cap, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = lo; i < hi && rc == 0; i++) {
        const st_tensor *t = &w->t[i];
        rc |= cat(&h, &len, &cap, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name, t->dtype);
        for (int d = 0; d < t->n_dims; d++)
            rc |= cat(&h, &len, &cap, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        rc |= cat(&h, &len, &cap, "],\"data_offsets\":[%zu,%zu]}", off, off + t->nbytes);
        off += t->nbytes;
    }
    rc |= cat(&h, &len, &cap, "}");
    while (rc == 0 && len % 8)
        rc |= cat(&h, &len, &cap, " ");
    FILE *f = rc == 0 ? fopen(path, "wb") : NULL;
    if (!f) {
        free(h);
        return -1;
    }
    uint64_t n = len;
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(n >> (8 * i));
    int ok = fwrite(le, 1, 8, f) == 8 && fwrite(h, 1, len, f) == len;
    for (int i = lo; i < hi && ok; i++)
        ok = fwrite(w->t[i].data, 1, w->t[i].nbytes, f) == w->t[i].nbytes;
    ok = (fclose(f) == 0) && ok;
    free(h);
    return ok ? 0 : -1;
}

int st_write(const st_writer *w, const char *path)
{
    return write_range(w, 0, w->n, path);
}

int st_write_sharded(const st_writer *w, const char *dir, int n_files)
{
    if (n_files < 1 || n_files > w->n)
        return -1;
    char *idx = NULL;
    size_t len = 0, cap = 0;
    size_t total = 0;
    for (int i = 0; i < w->n; i++)
        total += w->t[i].nbytes;
    int rc = cat(&idx, &len, &cap, "{\"metadata\":{\"total_size\":%zu},\"weight_map\":{", total);
    for (int k = 0; k < n_files && rc == 0; k++) {
        int lo = (int)((long)w->n * k / n_files), hi = (int)((long)w->n * (k + 1) / n_files);
        char name[64], *path = NULL;
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k + 1, n_files);
        if (asprintf(&path, "%s/%s", dir, name) < 0)
            return -1;
        rc |= write_range(w, lo, hi, path);
        free(path);
        for (int i = lo; i < hi; i++)
            rc |= cat(&idx, &len, &cap, "%s\"%s\":\"%s\"", i ? "," : "", w->t[i].name, name);
    }
    rc |= cat(&idx, &len, &cap, "}}\n");
    char *ipath = NULL;
    if (rc == 0 && asprintf(&ipath, "%s/model.safetensors.index.json", dir) >= 0) {
        FILE *f = fopen(ipath, "wb");
        rc = (f && fwrite(idx, 1, len, f) == len) ? 0 : -1;
        if (f && fclose(f) != 0)
            rc = -1;
        free(ipath);
    } else {
        rc = -1;
    }
    free(idx);
    return rc;
}
