/*
 * core.h - internal foundation shared by every subsystem: allocation through
 * the caller's allocator, error messages, logging, params-struct handling,
 * handle magics, time and CPU count.
 *
 * Internal symbols are named dsv3__* and are hidden in the shared library.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_CORE_H
#define DSV3_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsv3.h"
#include "dsv3_config.h"

#if defined(__GNUC__) || defined(__clang__)
#define DSV3__PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define DSV3__LIKELY(x) __builtin_expect(!!(x), 1)
#define DSV3__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define DSV3__PRINTF(fmt, args)
#define DSV3__LIKELY(x) (x)
#define DSV3__UNLIKELY(x) (x)
#endif

#define DSV3__MIN(a, b) ((a) < (b) ? (a) : (b))
#define DSV3__MAX(a, b) ((a) > (b) ? (a) : (b))
#define DSV3__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- allocation --------------------------------------------------------- */

/* The allocator a handle uses; a copy of the caller's dsv3_allocator or the
 * C library's malloc/free. */
typedef struct dsv3__alloc {
    dsv3_alloc_fn alloc;
    dsv3_free_fn free;
    void *user_data;
} dsv3__alloc;

/* Fill *a from a caller allocator (NULL: malloc/free). Returns DSV3_E_INVAL
 * for a malformed allocator struct (missing functions, bad struct_size). */
int dsv3__alloc_init(dsv3__alloc *a, const dsv3_allocator *user);

/* malloc-like helpers. All return NULL on failure (including size overflow);
 * the memory is aligned to 64 bytes. dsv3__free(a, NULL) is a no-op. */
void *dsv3__malloc(const dsv3__alloc *a, size_t size);
void *dsv3__calloc(const dsv3__alloc *a, size_t n, size_t size);
/* On failure the old block is left untouched and NULL is returned. */
void *dsv3__realloc(const dsv3__alloc *a, void *ptr, size_t size);
void dsv3__free(const dsv3__alloc *a, void *ptr);
char *dsv3__strdup(const dsv3__alloc *a, const char *s);
char *dsv3__strndup(const dsv3__alloc *a, const char *s, size_t n);

/* Overflow-checked size arithmetic: false when the result does not fit. */
bool dsv3__mul_size(size_t a, size_t b, size_t *out);
bool dsv3__add_size(size_t a, size_t b, size_t *out);

/* A growable array of elements of one size, allocated through an allocator. */
typedef struct dsv3__vec {
    void *data;
    size_t len;  /* elements in use */
    size_t cap;  /* elements allocated */
    size_t elem; /* element size in bytes */
} dsv3__vec;

void dsv3__vec_init(dsv3__vec *v, size_t elem);
/* Make room for at least n elements in total; DSV3_E_NOMEM on failure. */
int dsv3__vec_reserve(dsv3__vec *v, const dsv3__alloc *a, size_t n);
/* Append n elements copied from src (src may be NULL to append zeroes). */
int dsv3__vec_push(dsv3__vec *v, const dsv3__alloc *a, const void *src, size_t n);
void dsv3__vec_free(dsv3__vec *v, const dsv3__alloc *a);

/* ---- errors ------------------------------------------------------------- */

#define DSV3__ERRMSG_CAP 512

/* A handle's last error message. */
typedef struct dsv3__err {
    char msg[DSV3__ERRMSG_CAP];
} dsv3__err;

/* Store a formatted message and return code, so callers can write
 * `return dsv3__seterr(&h->err, DSV3_E_INVAL, "...", ...);`.
 * err may be NULL (the message is then dropped). */
int dsv3__seterr(dsv3__err *err, int code, const char *fmt, ...) DSV3__PRINTF(3, 4);
int dsv3__vseterr(dsv3__err *err, int code, const char *fmt, va_list ap) DSV3__PRINTF(3, 0);
void dsv3__clearerr(dsv3__err *err);

/* Copy a message into a caller buffer (errbuf may be NULL), always
 * NUL-terminated when errcap > 0. */
void dsv3__copy_msg(char *errbuf, size_t errcap, const char *msg);

/* ---- logging ------------------------------------------------------------ */

typedef struct dsv3__log {
    dsv3_log_fn fn;
    void *user_data;
    int32_t level;
} dsv3__log;

void dsv3__logf(const dsv3__log *log, int32_t level, const char *fmt, ...) DSV3__PRINTF(3, 4);
#define DSV3__LOG_ENABLED(log, lvl) ((log) && (log)->fn && (lvl) <= (log)->level)

/* ---- params structs (struct_size handling) ------------------------------ */

/*
 * Copy a caller's params struct into the library's own, following the
 * openat2 rule: read min(caller size, library size) bytes; a caller struct
 * larger than the library's is accepted only if its extra bytes are zero.
 * `dst` must already hold the defaults; its struct_size is set to lib_size.
 * min_size is the size of the first published version of the struct.
 * Returns DSV3_OK, DSV3_E_INVAL (size < min_size) or DSV3_E_UNSUPPORTED
 * (non-zero unknown tail).
 */
int dsv3__params_copy(void *dst, size_t lib_size, const void *src, size_t min_size);

/* Fill a params struct with defaults for the *_params_init functions:
 * checks p and size, zeroes the caller's struct, copies min(size, lib_size)
 * bytes of defaults and sets struct_size = size. */
int dsv3__params_init(void *p, size_t size, const void *defaults, size_t lib_size,
                      size_t min_size);

/* ---- handles ------------------------------------------------------------ */

/* Magic words at the start of every handle; cleared on free so that use after
 * free is caught in most cases (debug builds poison the whole handle). */
#define DSV3__MAGIC_MODEL 0x4c444d33u   /* "3MDL" */
#define DSV3__MAGIC_CONTEXT 0x58544333u /* "3CTX" */
#define DSV3__MAGIC_SAMPLER 0x504d5333u /* "3SMP" */
#define DSV3__MAGIC_FAILED 0x4c494146u  /* "FAIL": a failed constructor's handle */
#define DSV3__MAGIC_DEAD 0xdeadbeefu

/* ---- time, CPUs, threads ------------------------------------------------ */

/* Monotonic seconds. */
double dsv3__now(void);
/* Number of CPUs the process may run on (>= 1). */
int dsv3__ncpu(void);
/* Resolve a thread-count parameter: n <= 0 means all CPUs. */
int dsv3__resolve_threads(int32_t n);

/* ---- misc --------------------------------------------------------------- */

/* FP16/BF16 <-> F32 conversions (round to nearest even, NaN kept quiet). */
float dsv3__bf16_to_f32(uint16_t h);
uint16_t dsv3__f32_to_bf16(float f);
float dsv3__f16_to_f32(uint16_t h);
uint16_t dsv3__f32_to_f16(float f);
/* FP8 e4m3 ("fn": no infinities, 0x7f/0xff are NaN) decode table. */
extern const float dsv3__fp8_e4m3_table[256];

/* 64-bit xxHash (XXH64) of a buffer, for file checksums. */
uint64_t dsv3__xxh64(const void *data, size_t len, uint64_t seed);

#endif /* DSV3_CORE_H */
