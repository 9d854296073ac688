/*
 * cpu.c - the CPU backend's vtable: host buffers and op dispatch.
 * SPDX-License-Identifier: MIT
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static pthread_once_t feat_once = PTHREAD_ONCE_INIT;
static uint32_t feat_bits;

static void detect_features(void)
{
    uint32_t f = 0;
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        int osxsave = (c >> 27) & 1;
        uint64_t xcr0 = 0;
        if (osxsave) {
            uint32_t lo, hi;
            __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            xcr0 = ((uint64_t)hi << 32) | lo;
        }
        int ymm = (xcr0 & 6) == 6;
        int zmm = (xcr0 & 0xe6) == 0xe6;
        if (ymm && ((c >> 12) & 1))
            f |= DSV3_CPU_FMA;
        if (ymm && ((c >> 29) & 1))
            f |= DSV3_CPU_F16C;
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
            if (ymm && ((b >> 5) & 1))
                f |= DSV3_CPU_AVX2;
            if (zmm && ((b >> 16) & 1))
                f |= DSV3_CPU_AVX512F;
            if (zmm && ((b >> 30) & 1))
                f |= DSV3_CPU_AVX512BW;
        }
    }
#elif defined(__aarch64__)
    f |= DSV3_CPU_NEON;
#endif
    feat_bits = f;
}

uint32_t dsv3__cpu_features(void)
{
    pthread_once(&feat_once, detect_features);
    return feat_bits;
}

static int cpu_probe(dsv3_backend_caps *caps)
{
    uint32_t f = dsv3__cpu_features();
    caps->flags = DSV3_CAP_HOST_MEMORY;
    caps->dtypes = (1u << DSV3_DTYPE_F32) | (1u << DSV3_DTYPE_F16) | (1u << DSV3_DTYPE_BF16) |
                   (1u << DSV3_DTYPE_FP8_E4M3);
    caps->score = 1;
    snprintf(caps->desc, sizeof caps->desc, "cpu%s%s%s, %d cpus",
             (f & DSV3_CPU_AVX512F) ? " avx512" : "", (f & DSV3_CPU_AVX2) ? " avx2" : "",
             (f & DSV3_CPU_FMA) ? "+fma" : "", dsv3__ncpu());
    return DSV3_OK;
}

static int cpu_init(const dsv3_backend_config *cfg, void **state)
{
    dsv3__alloc a;
    if (cfg->alloc)
        a = *cfg->alloc;
    else
        dsv3__alloc_init(&a, NULL);
    dsv3_cpu_state *s = dsv3__calloc(&a, 1, sizeof *s);
    if (!s)
        return DSV3_E_NOMEM;
    s->alloc = a;
    if (cfg->log)
        s->log = *cfg->log;
    s->n_threads = dsv3__resolve_threads(cfg->n_threads);
    s->features = dsv3__cpu_features();
    *state = s;
    return DSV3_OK;
}

static void cpu_fini(void *state)
{
    dsv3_cpu_state *s = state;
    if (!s)
        return;
    dsv3__alloc a = s->alloc;
    dsv3__free(&a, s);
}

static int cpu_buf_alloc(void *state, size_t size, uint32_t usage, dsv3_buf **out)
{
    dsv3_cpu_state *s = state;
    dsv3_buf *b = dsv3__calloc(&s->alloc, 1, sizeof *b);
    if (!b)
        return DSV3_E_NOMEM;
    b->base = dsv3__malloc(&s->alloc, size ? size : 1);
    if (!b->base) {
        dsv3__free(&s->alloc, b);
        return DSV3_E_NOMEM;
    }
    b->size = size;
    b->usage = usage;
    *out = b;
    return DSV3_OK;
}

#define BUF_FOREIGN 1u /* memory not owned by the buffer (buf_from_host) */

static void cpu_buf_free(void *state, dsv3_buf *buf)
{
    dsv3_cpu_state *s = state;
    if (!buf)
        return;
    if (!(buf->flags & BUF_FOREIGN))
        dsv3__free(&s->alloc, buf->base);
    dsv3__free(&s->alloc, buf);
}

static int cpu_buf_from_host(void *state, void *ptr, size_t size, dsv3_buf **out)
{
    dsv3_cpu_state *s = state;
    dsv3_buf *b = dsv3__calloc(&s->alloc, 1, sizeof *b);
    if (!b)
        return DSV3_E_NOMEM;
    b->base = ptr;
    b->size = size;
    b->usage = DSV3_BUF_WEIGHTS;
    b->flags = BUF_FOREIGN;
    *out = b;
    return DSV3_OK;
}

static int cpu_buf_write(void *state, dsv3_buf *dst, size_t off, const void *src, size_t n)
{
    (void)state;
    if (off > dst->size || n > dst->size - off)
        return DSV3_E_RANGE;
    memcpy((char *)dst->base + off, src, n);
    return DSV3_OK;
}

static int cpu_buf_read(void *state, const dsv3_buf *src, size_t off, void *dst, size_t n)
{
    (void)state;
    if (off > src->size || n > src->size - off)
        return DSV3_E_RANGE;
    memcpy(dst, (const char *)src->base + off, n);
    return DSV3_OK;
}

static int cpu_supports(void *state, int32_t op, int32_t dtype)
{
    (void)state;
    if (op <= DSV3_OP_NONE || op >= DSV3_OP__COUNT)
        return 0;
    switch (op) {
    case DSV3_OP_EMBED:
    case DSV3_OP_MATMUL:
    case DSV3_OP_DEQUANT:
    case DSV3_OP_MOE: /* weight dtypes */
        return dtype == DSV3_DTYPE_F32 || dtype == DSV3_DTYPE_F16 || dtype == DSV3_DTYPE_BF16 ||
               dtype == DSV3_DTYPE_FP8_E4M3;
    case DSV3_OP_COPY:
    case DSV3_OP_MLA_ATTN: /* cache / element dtypes */
        return dtype == DSV3_DTYPE_F32 || dtype == DSV3_DTYPE_BF16 ||
               (op == DSV3_OP_COPY && dtype == DSV3_DTYPE_F16);
    default:
        return dtype == DSV3_DTYPE_F32 || dtype == DSV3_DTYPE_DEFAULT;
    }
}

static int cpu_run_op(void *state, const dsv3_op_job *job)
{
    return dsv3__cpu_run_op(state, job);
}

static int cpu_set_threads(void *state, int32_t n)
{
    dsv3_cpu_state *s = state;
    s->n_threads = dsv3__resolve_threads(n);
    return DSV3_OK;
}

const dsv3_backend_ops dsv3__backend_cpu = {
    .struct_size = sizeof(dsv3_backend_ops),
    .api_version = DSV3_BACKEND_API_VERSION,
    .id = DSV3_BACKEND_CPU,
    .name = "cpu",
    .probe = cpu_probe,
    .init = cpu_init,
    .fini = cpu_fini,
    .buf_alloc = cpu_buf_alloc,
    .buf_free = cpu_buf_free,
    .buf_from_host = cpu_buf_from_host,
    .buf_write = cpu_buf_write,
    .buf_read = cpu_buf_read,
    .supports = cpu_supports,
    .run_op = cpu_run_op,
    .run_layer = NULL,
    .sync = NULL,
    .set_threads = cpu_set_threads,
};
