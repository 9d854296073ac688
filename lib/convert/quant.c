/*
 * quant.c - element conversions of the converter: F32/F16/BF16/FP8 to F32
 * and back, FP8 e4m3 encoding, and the tensor producer (dtype conversion,
 * FP8 dequantization and 128x128 block quantization, row by row).
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <string.h>

#include "convert.h"

uint8_t dsv3__fp8_from_f32(float x)
{
    if (isnan(x))
        return 0x7f;
    uint8_t sign = signbit(x) ? 0x80 : 0;
    float a = fabsf(x);
    if (a >= 448.0f)
        return sign | 0x7e; /* saturate: e4m3fn has no infinity */
    if (a < 0.015625f) {  /* below 2^-6: subnormal, steps of 2^-9 */
        int m = (int)rintf(a * 512.0f); /* exact scaling; rint rounds half to even */
        return sign | (uint8_t)m; /* m == 8 is the smallest normal, code 0x08 */
    }
    int k;
    float f = frexpf(a, &k); /* a = f * 2^k, f in [0.5, 1) */
    int e = k - 1;           /* a = (2f) * 2^e, e in [-6, 8] */
    int m = (int)rintf((2.0f * f - 1.0f) * 8.0f);
    if (m == 8) {
        m = 0;
        e++;
    }
    if (e > 8 || (e == 8 && m > 6))
        return sign | 0x7e;
    return sign | (uint8_t)((e + 7) << 3) | (uint8_t)m;
}

void dsv3__to_f32(float *dst, const void *src, int32_t dtype, size_t n)
{
    const unsigned char *s = src;
    switch (dtype) {
    case DSV3_DTYPE_F32:
        memcpy(dst, s, n * 4);
        break;
    case DSV3_DTYPE_BF16:
        for (size_t i = 0; i < n; i++)
            dst[i] = dsv3__bf16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
        break;
    case DSV3_DTYPE_F16:
        for (size_t i = 0; i < n; i++)
            dst[i] = dsv3__f16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
        break;
    case DSV3_DTYPE_FP8_E4M3:
        for (size_t i = 0; i < n; i++)
            dst[i] = dsv3__fp8_e4m3_table[s[i]];
        break;
    default:
        memset(dst, 0, n * sizeof *dst);
    }
}

void dsv3__from_f32(void *dst, int32_t dtype, const float *src, size_t n)
{
    unsigned char *d = dst;
    switch (dtype) {
    case DSV3_DTYPE_F32:
        memcpy(d, src, n * 4);
        break;
    case DSV3_DTYPE_BF16:
    case DSV3_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = dtype == DSV3_DTYPE_BF16 ? dsv3__f32_to_bf16(src[i])
                                                  : dsv3__f32_to_f16(src[i]);
            d[2 * i] = (unsigned char)h;
            d[2 * i + 1] = (unsigned char)(h >> 8);
        }
        break;
    case DSV3_DTYPE_FP8_E4M3:
        for (size_t i = 0; i < n; i++)
            d[i] = dsv3__fp8_from_f32(src[i]);
        break;
    default:
        break;
    }
}

/* ---- producer --------------------------------------------------------------- */

#define BAND_BYTES (1u << 20)
#define QB 128 /* FP8 scale blocks are 128 x 128 */

static size_t esize(int32_t dtype)
{
    return dsv3__fmt_dtype_unit(dtype);
}

int dsv3__prod_init(dsv3__prod *p, const dsv3__alloc *a)
{
    p->alloc = a;
    p->row = 0;
    size_t out_row = (size_t)p->C * esize(p->out_dtype);
    size_t rows = p->out_dtype == DSV3_DTYPE_FP8_E4M3 && p->in_dtype != DSV3_DTYPE_FP8_E4M3
                      ? QB
                      : DSV3__MAX((size_t)1, BAND_BYTES / (out_row ? out_row : 1));
    p->band_cap = rows * out_row;
    p->band = NULL;
    p->fbuf = NULL;
    if (p->in_dtype == p->out_dtype)
        return DSV3_OK;
    p->band = dsv3__malloc(a, p->band_cap);
    p->fbuf = dsv3__malloc(a, (size_t)p->C * sizeof(float));
    if (!p->band || !p->fbuf) {
        dsv3__prod_free(p);
        return DSV3_E_NOMEM;
    }
    return DSV3_OK;
}

void dsv3__prod_free(dsv3__prod *p)
{
    if (!p->alloc)
        return;
    dsv3__free(p->alloc, p->band);
    dsv3__free(p->alloc, p->fbuf);
    p->band = NULL;
    p->fbuf = NULL;
}

/* Row r of source e as F32 (FP8 sources multiplied by their block scale). */
static void row_f32(dsv3__prod *p, int64_t e, int64_t r, float *out)
{
    size_t in_row = (size_t)p->C * esize(p->in_dtype);
    dsv3__to_f32(out, p->src[e] + (size_t)r * in_row, p->in_dtype, (size_t)p->C);
    if (p->in_dtype == DSV3_DTYPE_FP8_E4M3 && p->scale) {
        int64_t sc = (p->C + QB - 1) / QB;
        const unsigned char *srow = p->scale[e] + (size_t)(r / QB) * (size_t)sc * 4;
        for (int64_t b = 0; b < sc; b++) {
            float s;
            memcpy(&s, srow + 4 * b, 4);
            int64_t c1 = DSV3__MIN(p->C, (b + 1) * QB);
            for (int64_t c = b * QB; c < c1; c++)
                out[c] *= s;
        }
    }
}

/* Quantize rows [r0, r1) (one band of <= 128 rows) of source e into band. */
static void quant_band(dsv3__prod *p, int64_t e, int64_t r0, int64_t r1)
{
    int64_t sc = (p->C + QB - 1) / QB, sr = (p->R + QB - 1) / QB;
    float *scales = p->q_scales + ((size_t)e * (size_t)sr + (size_t)(r0 / QB)) * (size_t)sc;
    for (int64_t b = 0; b < sc; b++)
        scales[b] = 0.0f;
    for (int64_t r = r0; r < r1; r++) { /* pass 1: block amax */
        row_f32(p, e, r, p->fbuf);
        for (int64_t c = 0; c < p->C; c++) {
            float v = fabsf(p->fbuf[c]);
            if (v > scales[c / QB])
                scales[c / QB] = v;
        }
    }
    for (int64_t b = 0; b < sc; b++)
        scales[b] /= 448.0f;
    for (int64_t r = r0; r < r1; r++) { /* pass 2: x / scale -> e4m3 */
        row_f32(p, e, r, p->fbuf);
        unsigned char *o = p->band + (size_t)(r - r0) * (size_t)p->C;
        for (int64_t c = 0; c < p->C; c++) {
            float s = scales[c / QB];
            o[c] = s > 0 ? dsv3__fp8_from_f32(p->fbuf[c] / s) : 0;
        }
    }
}

int dsv3__prod_next(dsv3__prod *p, const unsigned char **ptr, size_t *len)
{
    int64_t total = (int64_t)p->n_src * p->R;
    *len = 0;
    if (p->row >= total)
        return DSV3_OK;
    int64_t e = p->row / p->R, r = p->row % p->R;
    size_t out_row = (size_t)p->C * esize(p->out_dtype);
    if (p->in_dtype == p->out_dtype) { /* the rest of this matrix, no copy */
        *ptr = p->src[e] + (size_t)r * out_row;
        *len = (size_t)(p->R - r) * out_row;
        p->row += p->R - r;
        return DSV3_OK;
    }
    if (p->out_dtype == DSV3_DTYPE_FP8_E4M3 && p->in_dtype != DSV3_DTYPE_FP8_E4M3) {
        int64_t r1 = DSV3__MIN(p->R, r + QB); /* r is a multiple of 128 here */
        quant_band(p, e, r, r1);
        *ptr = p->band;
        *len = (size_t)(r1 - r) * out_row;
        p->row += r1 - r;
        return DSV3_OK;
    }
    int64_t n = DSV3__MIN(p->R - r, (int64_t)(p->band_cap / out_row));
    for (int64_t k = 0; k < n; k++) {
        row_f32(p, e, r + k, p->fbuf);
        dsv3__from_f32(p->band + (size_t)k * out_row, p->out_dtype, p->fbuf, (size_t)p->C);
    }
    *ptr = p->band;
    *len = (size_t)n * out_row;
    p->row += n;
    return DSV3_OK;
}
