/*
 * cuda_fp16.h (test harness) - the half-precision conversions the CUDA
 * kernels use, on the CPU.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_CUDAEMU_FP16_H
#define DSV3_CUDAEMU_FP16_H

#include <stdint.h>
#include <string.h>

struct __half {
    uint16_t bits;
};

static inline __half __ushort_as_half(uint16_t h)
{
    __half r;
    r.bits = h;
    return r;
}

/* IEEE binary16 -> binary32, exact. */
static inline float __half2float(__half h)
{
    uint32_t sign = (uint32_t)(h.bits & 0x8000u) << 16, e = (h.bits >> 10) & 0x1fu,
             m = h.bits & 0x3ffu, u;
    if (e == 0x1f) {
        u = sign | 0x7f800000u | (m << 13);
    } else if (e == 0) {
        float v = (float)m * (1.0f / 16777216.0f);
        return sign ? -v : v;
    } else {
        u = sign | ((e + 112u) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#endif /* DSV3_CUDAEMU_FP16_H */
