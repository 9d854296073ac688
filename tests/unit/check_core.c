/*
 * check_core.c - lib/core: status codes, versions, params structs,
 * allocation, float conversions, XXH64.
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "testutil.h"

START_TEST(status_table)
{
    ck_assert_str_eq(dsv3_strerror(DSV3_OK), "success");
    ck_assert_str_eq(dsv3_strerror(DSV3_E_NOMEM), "out of memory");
    ck_assert_str_eq(dsv3_err_name(DSV3_E_CHECKSUM), "DSV3_E_CHECKSUM");
    ck_assert_str_eq(dsv3_strerror(12345), "unknown error");
    ck_assert_str_eq(dsv3_err_name(-9999), "DSV3_E_UNKNOWN");
    /* every code in the table is negative, distinct and has a message */
    for (int e = -1; e >= DSV3__STATUS_MIN; e--) {
        ck_assert_str_ne(dsv3_strerror(e), "unknown error");
        ck_assert_ptr_nonnull(strstr(dsv3_err_name(e), "DSV3_E_"));
    }
    ck_assert_str_eq(dsv3_strerror(DSV3__STATUS_MIN - 1), "unknown error");
}
END_TEST

START_TEST(versions)
{
    ck_assert_uint_eq(dsv3_version(), DSV3_VERSION_NUMBER);
    ck_assert_str_eq(dsv3_version_string(), DSV3_VERSION_STRING);
    ck_assert_uint_eq(dsv3_abi_version(), DSV3_ABI_VERSION);
    ck_assert_uint_eq(DSV3_VERSION_NUMBER,
                      DSV3_VERSION_MAJOR * 10000 + DSV3_VERSION_MINOR * 100 + DSV3_VERSION_PATCH);
    ck_assert_ptr_nonnull(strstr(dsv3_build_info(), DSV3_VERSION_STRING));
    ck_assert_ptr_nonnull(strstr(dsv3_build_info(), "cpu("));
}
END_TEST

START_TEST(params_init_and_copy)
{
    dsv3_context_params p;
    ck_assert_int_eq(dsv3_context_params_init(NULL, sizeof p), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_context_params_init(&p, 3), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_context_params_init(&p, sizeof p), DSV3_OK);
    ck_assert_uint_eq(p.struct_size, sizeof p);

    /* a newer caller struct with a zero tail is accepted ... */
    struct {
        dsv3_context_params p;
        uint64_t future;
    } big;
    ck_assert_int_eq(dsv3_context_params_init(&big.p, sizeof big), DSV3_OK);
    ck_assert_uint_eq(big.p.struct_size, sizeof big);
    ck_assert_uint_eq(big.future, 0);
    big.p.n_ctx = 77;
    dsv3_context_params dst;
    dsv3_context_params_init(&dst, sizeof dst);
    ck_assert_int_eq(dsv3__params_copy(&dst, sizeof dst, &big, sizeof dst), DSV3_OK);
    ck_assert_uint_eq(dst.n_ctx, 77);
    ck_assert_uint_eq(dst.struct_size, sizeof dst);
    /* ... a non-zero unknown tail is refused */
    big.future = 1;
    ck_assert_int_eq(dsv3__params_copy(&dst, sizeof dst, &big, sizeof dst), DSV3_E_UNSUPPORTED);
    /* too small */
    big.p.struct_size = 4;
    ck_assert_int_eq(dsv3__params_copy(&dst, sizeof dst, &big, sizeof dst), DSV3_E_INVAL);
}
END_TEST

START_TEST(sampler_defaults)
{
    dsv3_sampler_params p;
    ck_assert_int_eq(dsv3_sampler_params_init(&p, sizeof p), DSV3_OK);
    ck_assert_float_eq(p.temperature, 0.8f);
    ck_assert_int_eq(p.top_k, 40);
    ck_assert_float_eq(p.repeat_penalty, 1.0f);
}
END_TEST

START_TEST(alloc_alignment_and_realloc)
{
    tu_alloc t;
    tu_alloc_init(&t, 0);
    dsv3__alloc a;
    ck_assert_int_eq(dsv3__alloc_init(&a, &t.a), DSV3_OK);
    for (size_t n = 1; n < 5000; n = n * 3 + 1) {
        unsigned char *p = dsv3__malloc(&a, n);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % 64, 0);
        memset(p, 0xab, n);
        p = dsv3__realloc(&a, p, n * 2);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % 64, 0);
        ck_assert_uint_eq(p[n - 1], 0xab);
        dsv3__free(&a, p);
    }
    ck_assert_int_eq(t.live, 0);
    ck_assert_ptr_null(dsv3__malloc(&a, SIZE_MAX - 10));
    ck_assert_ptr_null(dsv3__calloc(&a, SIZE_MAX / 2, 3));
    dsv3__free(&a, NULL);

    dsv3_allocator bad = t.a;
    bad.free = NULL;
    ck_assert_int_eq(dsv3__alloc_init(&a, &bad), DSV3_E_INVAL);
}
END_TEST

START_TEST(alloc_failure_injection)
{
    tu_alloc t;
    tu_alloc_init(&t, 3);
    dsv3__alloc a;
    dsv3__alloc_init(&a, &t.a);
    dsv3__vec v;
    dsv3__vec_init(&v, sizeof(int));
    int rc = DSV3_OK;
    for (int i = 0; i < 10000 && rc == DSV3_OK; i++)
        rc = dsv3__vec_push(&v, &a, &i, 1);
    ck_assert_int_eq(rc, DSV3_E_NOMEM);
    ck_assert_int_eq(t.failed, 1);
    /* the vector is intact after the failed growth */
    for (size_t i = 0; i < v.len; i++)
        ck_assert_int_eq(((int *)v.data)[i], (int)i);
    dsv3__vec_free(&v, &a);
    ck_assert_int_eq(t.live, 0);
}
END_TEST

START_TEST(float_conversions)
{
    ck_assert_float_eq(dsv3__bf16_to_f32(0x3f80), 1.0f);
    ck_assert_uint_eq(dsv3__f32_to_bf16(1.0f), 0x3f80);
    /* round to nearest even: 1 + 2^-8 is a tie between 0x3f80 and 0x3f81 */
    ck_assert_uint_eq(dsv3__f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    ck_assert_uint_eq(dsv3__f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    ck_assert(isnan(dsv3__bf16_to_f32(dsv3__f32_to_bf16(NAN))));
    ck_assert_float_eq(dsv3__f16_to_f32(0x3c00), 1.0f);
    ck_assert_float_eq(dsv3__f16_to_f32(0x0001), 0x1p-24f);
    ck_assert_uint_eq(dsv3__f32_to_f16(65504.0f), 0x7bff);
    ck_assert_uint_eq(dsv3__f32_to_f16(1e6f), 0x7c00);
    ck_assert_uint_eq(dsv3__f32_to_f16(-2.0f), 0xc000);
    for (uint32_t h = 0; h < 0x7c00; h++) /* every finite f16 survives a round trip */
        ck_assert_uint_eq(dsv3__f32_to_f16(dsv3__f16_to_f32((uint16_t)h)), h);
}
END_TEST

START_TEST(fp8_table)
{
    ck_assert_float_eq(dsv3__fp8_e4m3_table[0x00], 0.0f);
    ck_assert_float_eq(dsv3__fp8_e4m3_table[0x01], 0x1p-9f);  /* smallest subnormal */
    ck_assert_float_eq(dsv3__fp8_e4m3_table[0x08], 0x1p-6f);  /* smallest normal */
    ck_assert_float_eq(dsv3__fp8_e4m3_table[0x38], 1.0f);
    ck_assert_float_eq(dsv3__fp8_e4m3_table[0x7e], 448.0f);   /* largest finite */
    ck_assert_float_eq(dsv3__fp8_e4m3_table[0xb8], -1.0f);
    ck_assert(isnan(dsv3__fp8_e4m3_table[0x7f]));
    ck_assert(isnan(dsv3__fp8_e4m3_table[0xff]));
    int nans = 0;
    for (int i = 0; i < 256; i++)
        nans += isnan(dsv3__fp8_e4m3_table[i]) != 0;
    ck_assert_int_eq(nans, 2);
}
END_TEST

START_TEST(xxh64_vectors)
{
    /* published XXH64 values */
    ck_assert_uint_eq(dsv3__xxh64("", 0, 0), 0xEF46DB3751D8E999ull);
    ck_assert_uint_eq(dsv3__xxh64("a", 1, 0), 0xD24EC4F1A98C6E5Bull);
    ck_assert_uint_eq(dsv3__xxh64("abc", 3, 0), 0x44BC2CF5AD770999ull);
    const char *s = "Nobody inspects the spammish repetition";
    ck_assert_uint_eq(dsv3__xxh64(s, strlen(s), 0), 0xFBCEA83C8A378BF1ull);
}
END_TEST

static Suite *core_suite(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("errors");
    tcase_add_test(tc, status_table);
    tcase_add_test(tc, versions);
    suite_add_tcase(s, tc);
    tc = tcase_create("params");
    tcase_add_test(tc, params_init_and_copy);
    tcase_add_test(tc, sampler_defaults);
    suite_add_tcase(s, tc);
    tc = tcase_create("alloc");
    tcase_add_test(tc, alloc_alignment_and_realloc);
    tcase_add_test(tc, alloc_failure_injection);
    suite_add_tcase(s, tc);
    tc = tcase_create("numbers");
    tcase_add_test(tc, float_conversions);
    tcase_add_test(tc, fp8_table);
    tcase_add_test(tc, xxh64_vectors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(core_suite());
}
