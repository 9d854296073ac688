/*
 * fuzz_manifest.c - libFuzzer target: manifest and shard parsing over
 * in-memory buffers (no file I/O). Input: u32 little-endian manifest length,
 * the manifest, then the bytes of shard 0. Every tensor chunk that lies in
 * shard 0 is decoded (without the xxh64 check, so that zstd sees garbage);
 * the hyper-parameters are validated and the tensor table built.
 * SPDX-License-Identifier: MIT
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/format.h"
#include "model/model.h"

#define MAX_INPUT (1u << 20)
#define MAX_RAW (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode_shard0(const dsv3__manifest *m, const uint8_t *shard, size_t len)
{
    dsv3__alloc a;
    dsv3__alloc_init(&a, NULL);
    void *dctx = dsv3__zstd_dctx_new(&a);
    unsigned char *dst = malloc(MAX_RAW), *scratch = malloc(MAX_RAW);
    dsv3__err e;
    for (uint32_t i = 0; dctx && dst && scratch && i < m->n_tensors; i++) {
        const dsv3__fmt_tensor *t = &m->tensors[i];
        if (t->alias >= 0 || t->shard != 0)
            continue;
        for (uint32_t k = 0; k < t->n_chunks; k++) {
            const dsv3__fmt_chunk *c = &t->chunks[k];
            if (c->offset > len || c->stored > len - c->offset) /* parse checked the bounds */
                abort();
            if (c->raw > MAX_RAW)
                continue;
            dsv3__chunk_decode(dctx, t, c, shard + c->offset, dst, scratch, k % 2 == 0, &e);
        }
    }
    free(dst);
    free(scratch);
    dsv3__zstd_dctx_free(dctx);
}

static void check_hparams(const dsv3__manifest *m)
{
    dsv3_hparams hp;
    dsv3__err e;
    if (dsv3__hparams_from_kv(&m->hparams, &hp, NULL, &e) != DSV3_OK)
        return;
    dsv3__alloc a;
    dsv3__alloc_init(&a, NULL);
    dsv3__tspec *specs;
    size_t n;
    if (dsv3__tensor_specs(&a, &hp, hp.n_mtp, NULL, &specs, &n) == DSV3_OK) {
        for (size_t i = 0; i < n; i++)
            (void)dsv3__manifest_find(m, specs[i].name);
        dsv3__free(&a, specs);
    }
}

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void wr64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Recompute every section checksum that lies in bounds, then the table's. */
static void fix_checksums(uint8_t *m, size_t len)
{
    if (len < 64)
        return;
    uint64_t ns = m[32] | (uint64_t)m[33] << 8;
    if (ns > 64 || 64 + 32 * ns > len)
        return;
    for (uint64_t i = 0; i < ns; i++) {
        uint8_t *e = m + 64 + 32 * i;
        uint64_t off = rd64(e + 8), sz = rd64(e + 16);
        if (off <= len && sz <= len - off)
            wr64(e + 24, dsv3__xxh64(m + off, (size_t)sz, 0));
    }
    wr64(m + 40, dsv3__xxh64(m + 64, (size_t)(32 * ns), 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4 || size > MAX_INPUT)
        return 0;
    size_t ml = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16;
    bool fix = data[3] & 0x80;
    if (ml > size - 4)
        ml = size - 4;
    uint8_t *copy = malloc(ml ? ml : 1);
    if (!copy)
        return 0;
    memcpy(copy, data + 4, ml);
    if (fix)
        fix_checksums(copy, ml);
    const uint8_t *man = copy, *shard = data + 4 + ml;
    size_t shard_len = size - 4 - ml;
    dsv3__alloc a;
    dsv3__alloc_init(&a, NULL);
    dsv3__manifest m;
    dsv3__err e;
    if (dsv3__manifest_parse(&a, man, ml, &m, &e) != DSV3_OK) {
        free(copy);
        return 0;
    }
    check_hparams(&m);
    if (m.n_shards > 0 && dsv3__shard_check(&m, 0, shard, shard_len, shard_len, &e) == DSV3_OK)
        decode_shard0(&m, shard, shard_len);
    dsv3__manifest_free(&m);
    free(copy);
    return 0;
}
