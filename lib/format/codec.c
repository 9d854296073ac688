/*
 * codec.c - chunk encoding: zstd frames through the library's allocator,
 * byte planes, and decoding one chunk of a tensor.
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_createDCtx_advanced: our allocator */
#include <zstd.h>
#include <zstd_errors.h>

#include "format.h"

static void *zalloc(void *opaque, size_t size)
{
    return dsv3__malloc(opaque, size);
}

static void zfree(void *opaque, void *p)
{
    dsv3__free(opaque, p);
}

/* zstd keeps the opaque pointer, so each context carries its own copy of
 * the allocator in front of it. */
typedef struct zbox {
    dsv3__alloc alloc;
    void *ctx;
} zbox;

void *dsv3__zstd_dctx_new(const dsv3__alloc *a)
{
    zbox *b = dsv3__malloc(a, sizeof *b);
    if (!b)
        return NULL;
    b->alloc = *a;
    ZSTD_customMem cm = {zalloc, zfree, &b->alloc};
    b->ctx = ZSTD_createDCtx_advanced(cm);
    if (!b->ctx) {
        dsv3__free(a, b);
        return NULL;
    }
    return b;
}

void dsv3__zstd_dctx_free(void *dctx)
{
    zbox *b = dctx;
    if (!b)
        return;
    ZSTD_freeDCtx(b->ctx);
    dsv3__alloc a = b->alloc;
    dsv3__free(&a, b);
}

void *dsv3__zstd_cctx_new(const dsv3__alloc *a, int level)
{
    zbox *b = dsv3__malloc(a, sizeof *b);
    if (!b)
        return NULL;
    b->alloc = *a;
    ZSTD_customMem cm = {zalloc, zfree, &b->alloc};
    b->ctx = ZSTD_createCCtx_advanced(cm);
    if (!b->ctx || ZSTD_isError(ZSTD_CCtx_setParameter(b->ctx, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(b->ctx, ZSTD_c_checksumFlag, 1)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(b->ctx, ZSTD_c_contentSizeFlag, 1))) {
        ZSTD_freeCCtx(b->ctx);
        dsv3__free(a, b);
        return NULL;
    }
    return b;
}

void dsv3__zstd_cctx_free(void *cctx)
{
    zbox *b = cctx;
    if (!b)
        return;
    ZSTD_freeCCtx(b->ctx);
    dsv3__alloc a = b->alloc;
    dsv3__free(&a, b);
}

size_t dsv3__zstd_bound(size_t n)
{
    return ZSTD_compressBound(n);
}

int dsv3__zstd_compress(void *cctx, void *dst, size_t cap, const void *src, size_t n,
                        size_t *out_len)
{
    zbox *b = cctx;
    size_t r = ZSTD_compress2(b->ctx, dst, cap, src, n);
    if (ZSTD_isError(r))
        return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? DSV3_E_NOMEM
                                                                    : DSV3_E_INTERNAL;
    *out_len = r;
    return DSV3_OK;
}

/* ---- byte planes ---------------------------------------------------------- */

/* SSE2 is part of x86-64; other machines take the scalar loops. */
#if defined(__SSE2__)
#include <emmintrin.h>
#define HAVE_SSE2 1
#else
#define HAVE_SSE2 0
#endif

static size_t split2(unsigned char *d, const unsigned char *s, size_t m)
{
    size_t i = 0;
#if HAVE_SSE2
    const __m128i lo_mask = _mm_set1_epi16(0xff);
    for (; i + 16 <= m; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(s + 2 * i));
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(s + 2 * i + 16));
        __m128i lo = _mm_packus_epi16(_mm_and_si128(a, lo_mask), _mm_and_si128(b, lo_mask));
        __m128i hi = _mm_packus_epi16(_mm_srli_epi16(a, 8), _mm_srli_epi16(b, 8));
        _mm_storeu_si128((__m128i *)(void *)(d + i), lo);
        _mm_storeu_si128((__m128i *)(void *)(d + m + i), hi);
    }
#endif
    return i;
}

void dsv3__planes_split(void *dst, const void *src, size_t n, uint32_t unit)
{
    const unsigned char *s = src;
    unsigned char *d = dst;
    if (unit <= 1) {
        memcpy(d, s, n);
        return;
    }
    size_t m = n / unit, i = 0;
    if (unit == 2) {
        for (i = split2(d, s, m); i < m; i++) {
            d[i] = s[2 * i];
            d[m + i] = s[2 * i + 1];
        }
        return;
    }
    for (; i < m; i++)
        for (uint32_t k = 0; k < unit; k++)
            d[k * m + i] = s[i * unit + k];
}

static size_t join2(unsigned char *d, const unsigned char *lo, const unsigned char *hi, size_t m)
{
    size_t i = 0;
#if HAVE_SSE2
    for (; i + 16 <= m; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(lo + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(hi + i));
        _mm_storeu_si128((__m128i *)(void *)(d + 2 * i), _mm_unpacklo_epi8(a, b));
        _mm_storeu_si128((__m128i *)(void *)(d + 2 * i + 16), _mm_unpackhi_epi8(a, b));
    }
#endif
    return i;
}

static size_t join4(unsigned char *d, const unsigned char *s, size_t m)
{
    size_t i = 0;
#if HAVE_SSE2
    for (; i + 16 <= m; i += 16) {
        __m128i p0 = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        __m128i p1 = _mm_loadu_si128((const __m128i *)(const void *)(s + m + i));
        __m128i p2 = _mm_loadu_si128((const __m128i *)(const void *)(s + 2 * m + i));
        __m128i p3 = _mm_loadu_si128((const __m128i *)(const void *)(s + 3 * m + i));
        __m128i a = _mm_unpacklo_epi8(p0, p1), b = _mm_unpackhi_epi8(p0, p1);
        __m128i c = _mm_unpacklo_epi8(p2, p3), e = _mm_unpackhi_epi8(p2, p3);
        unsigned char *o = d + 4 * i;
        _mm_storeu_si128((__m128i *)(void *)o, _mm_unpacklo_epi16(a, c));
        _mm_storeu_si128((__m128i *)(void *)(o + 16), _mm_unpackhi_epi16(a, c));
        _mm_storeu_si128((__m128i *)(void *)(o + 32), _mm_unpacklo_epi16(b, e));
        _mm_storeu_si128((__m128i *)(void *)(o + 48), _mm_unpackhi_epi16(b, e));
    }
#endif
    return i;
}

void dsv3__planes_join(void *dst, const void *src, size_t n, uint32_t unit)
{
    const unsigned char *s = src;
    unsigned char *d = dst;
    if (unit <= 1) {
        memcpy(d, s, n);
        return;
    }
    size_t m = n / unit;
    if (unit == 2) {
        const unsigned char *lo = s, *hi = s + m;
        for (size_t i = join2(d, lo, hi, m); i < m; i++) {
            d[2 * i] = lo[i];
            d[2 * i + 1] = hi[i];
        }
        return;
    }
    if (unit == 4) {
        for (size_t i = join4(d, s, m); i < m; i++)
            for (uint32_t k = 0; k < 4; k++)
                d[4 * i + k] = s[k * m + i];
        return;
    }
    for (size_t i = 0; i < m; i++)
        for (uint32_t k = 0; k < unit; k++)
            d[i * unit + k] = s[k * m + i];
}

/* ---- decoding one chunk ---------------------------------------------------- */

int dsv3__chunk_decode(void *dctx, const dsv3__fmt_tensor *t, const dsv3__fmt_chunk *c,
                       const void *src, void *dst, void *scratch, bool verify, dsv3__err *err)
{
    if (verify && dsv3__xxh64(src, (size_t)c->stored, 0) != c->hash)
        return dsv3__seterr(err, DSV3_E_CHECKSUM,
                            "tensor '%s': checksum mismatch in the chunk at raw offset %llu "
                            "(corrupt shard)",
                            t->name, (unsigned long long)c->raw_off);
    if (t->codec == DSV3__CODEC_RAW) {
        if (dst != src)
            memcpy(dst, src, (size_t)c->raw);
        return DSV3_OK;
    }
    if (t->codec != DSV3__CODEC_ZSTD || !dctx)
        return dsv3__seterr(err, DSV3_E_INTERNAL, "tensor '%s': nothing to decode", t->name);
    zbox *b = dctx;
    bool planes = t->flags & DSV3__TFLAG_PLANES;
    void *out = planes ? scratch : dst;
    unsigned long long fcs = ZSTD_getFrameContentSize(src, (size_t)c->stored);
    if (fcs != c->raw)
        return dsv3__seterr(err, DSV3_E_FORMAT,
                            "tensor '%s': zstd frame at raw offset %llu has the wrong size",
                            t->name, (unsigned long long)c->raw_off);
    size_t r = ZSTD_decompressDCtx(b->ctx, out, (size_t)c->raw, src, (size_t)c->stored);
    if (ZSTD_isError(r)) {
        ZSTD_ErrorCode ec = ZSTD_getErrorCode(r);
        if (ec == ZSTD_error_memory_allocation)
            return dsv3__seterr(err, DSV3_E_NOMEM, "out of memory decompressing '%s'", t->name);
        return dsv3__seterr(err, ec == ZSTD_error_checksum_wrong ? DSV3_E_CHECKSUM : DSV3_E_FORMAT,
                            "tensor '%s': bad zstd frame at raw offset %llu: %s", t->name,
                            (unsigned long long)c->raw_off, ZSTD_getErrorName(r));
    }
    if (r != c->raw)
        return dsv3__seterr(err, DSV3_E_FORMAT,
                            "tensor '%s': zstd frame at raw offset %llu decodes to %zu bytes, "
                            "expected %llu",
                            t->name, (unsigned long long)c->raw_off, r,
                            (unsigned long long)c->raw);
    if (planes)
        dsv3__planes_join(dst, scratch, (size_t)c->raw, dsv3__fmt_dtype_unit(t->dtype));
    return DSV3_OK;
}
