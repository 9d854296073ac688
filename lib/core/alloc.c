/*
 * alloc.c - allocation through the caller's allocator.
 *
 * Every block carries a 64-byte header that records the size requested from
 * the caller's allocator and the offset back to the start of that block, so
 * that the returned memory is 64-byte aligned whatever the allocator gives
 * and dsv3__realloc can copy without knowing the old size.
 * SPDX-License-Identifier: MIT
 */
#include <stdlib.h>
#include <string.h>

#include "core.h"

#define HDR 64u

typedef struct block_hdr {
    size_t size;   /* usable bytes after the header */
    size_t offset; /* from the allocator's pointer to the header */
} block_hdr;

static void *std_alloc(size_t size, void *ud)
{
    (void)ud;
    return malloc(size);
}

static void std_free(void *p, void *ud)
{
    (void)ud;
    free(p);
}

int dsv3__alloc_init(dsv3__alloc *a, const dsv3_allocator *user)
{
    a->alloc = std_alloc;
    a->free = std_free;
    a->user_data = NULL;
    if (!user)
        return DSV3_OK;
    if (user->struct_size < sizeof(dsv3_allocator) || !user->alloc || !user->free ||
        user->flags != 0)
        return DSV3_E_INVAL;
    a->alloc = user->alloc;
    a->free = user->free;
    a->user_data = user->user_data;
    return DSV3_OK;
}

bool dsv3__mul_size(size_t a, size_t b, size_t *out)
{
    if (b && a > SIZE_MAX / b)
        return false;
    *out = a * b;
    return true;
}

bool dsv3__add_size(size_t a, size_t b, size_t *out)
{
    if (a > SIZE_MAX - b)
        return false;
    *out = a + b;
    return true;
}

void *dsv3__malloc(const dsv3__alloc *a, size_t size)
{
    size_t total;
    /* header + worst-case alignment slack */
    if (!dsv3__add_size(size, 2 * HDR, &total))
        return NULL;
    unsigned char *raw = a->alloc(total, a->user_data);
    if (!raw)
        return NULL;
    uintptr_t base = (uintptr_t)raw + sizeof(block_hdr);
    uintptr_t user = (base + HDR - 1) & ~(uintptr_t)(HDR - 1);
    block_hdr *h = (block_hdr *)(user - sizeof(block_hdr));
    h->size = size;
    h->offset = (size_t)((unsigned char *)h - raw);
    return (void *)user;
}

void *dsv3__calloc(const dsv3__alloc *a, size_t n, size_t size)
{
    size_t total;
    if (!dsv3__mul_size(n, size, &total))
        return NULL;
    void *p = dsv3__malloc(a, total);
    if (p)
        memset(p, 0, total);
    return p;
}

void dsv3__free(const dsv3__alloc *a, void *ptr)
{
    if (!ptr)
        return;
    block_hdr *h = (block_hdr *)((unsigned char *)ptr - sizeof(block_hdr));
    a->free((unsigned char *)h - h->offset, a->user_data);
}

void *dsv3__realloc(const dsv3__alloc *a, void *ptr, size_t size)
{
    if (!ptr)
        return dsv3__malloc(a, size);
    block_hdr *h = (block_hdr *)((unsigned char *)ptr - sizeof(block_hdr));
    if (size <= h->size) {
        h->size = size;
        return ptr;
    }
    void *n = dsv3__malloc(a, size);
    if (!n)
        return NULL;
    memcpy(n, ptr, h->size);
    dsv3__free(a, ptr);
    return n;
}

char *dsv3__strndup(const dsv3__alloc *a, const char *s, size_t n)
{
    char *d = dsv3__malloc(a, n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *dsv3__strdup(const dsv3__alloc *a, const char *s)
{
    return dsv3__strndup(a, s, strlen(s));
}

void dsv3__vec_init(dsv3__vec *v, size_t elem)
{
    v->data = NULL;
    v->len = 0;
    v->cap = 0;
    v->elem = elem;
}

int dsv3__vec_reserve(dsv3__vec *v, const dsv3__alloc *a, size_t n)
{
    if (n <= v->cap)
        return DSV3_OK;
    size_t cap = v->cap ? v->cap : 16;
    while (cap < n) {
        if (cap > SIZE_MAX / 2)
            return DSV3_E_NOMEM;
        cap *= 2;
    }
    size_t bytes;
    if (!dsv3__mul_size(cap, v->elem, &bytes))
        return DSV3_E_NOMEM;
    void *d = dsv3__realloc(a, v->data, bytes);
    if (!d)
        return DSV3_E_NOMEM;
    v->data = d;
    v->cap = cap;
    return DSV3_OK;
}

int dsv3__vec_push(dsv3__vec *v, const dsv3__alloc *a, const void *src, size_t n)
{
    size_t want;
    if (!dsv3__add_size(v->len, n, &want))
        return DSV3_E_NOMEM;
    int rc = dsv3__vec_reserve(v, a, want);
    if (rc)
        return rc;
    unsigned char *dst = (unsigned char *)v->data + v->len * v->elem;
    if (src)
        memcpy(dst, src, n * v->elem);
    else
        memset(dst, 0, n * v->elem);
    v->len = want;
    return DSV3_OK;
}

void dsv3__vec_free(dsv3__vec *v, const dsv3__alloc *a)
{
    dsv3__free(a, v->data);
    v->data = NULL;
    v->len = v->cap = 0;
}
