/*
 * check_json.c - lib/core/json: the strict JSON parser.
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "json.h"
#include "testutil.h"

static dsv3__alloc A;

static int parse(const char *s, dsv3_json_doc *d, dsv3__err *e)
{
    return dsv3__json_parse(&A, s, strlen(s), d, e);
}

START_TEST(objects_and_types)
{
    dsv3_json_doc d;
    dsv3__err e;
    const char *s = "{\"a\": 1, \"b\": [true, false, null, -2.5e3, \"x\\u00e9\\ud83d\\ude00\"],"
                    " \"c\": {\"d\": 9007199254740993}, \"a\": 7}";
    ck_assert_int_eq(parse(s, &d, &e), DSV3_OK);
    int64_t i;
    ck_assert(dsv3__json_int64(dsv3__json_get(d.root, "a"), &i));
    ck_assert_int_eq(i, 7); /* last duplicate wins */
    const dsv3_json *b = dsv3__json_get(d.root, "b");
    ck_assert_uint_eq(b->n_children, 5);
    bool t;
    ck_assert(dsv3__json_bool(dsv3__json_at(b, 0), &t) && t);
    ck_assert_int_eq(dsv3__json_at(b, 2)->type, DSV3_JSON_NULL);
    double x;
    ck_assert(dsv3__json_double(dsv3__json_at(b, 3), &x));
    ck_assert(x == -2500.0);
    ck_assert(!dsv3__json_int64(dsv3__json_at(b, 3), &i) || i == -2500);
    ck_assert_str_eq(dsv3__json_string(dsv3__json_at(b, 4)), "x\xc3\xa9\xf0\x9f\x98\x80");
    /* 2^53 + 1 is kept exactly from the text */
    ck_assert(dsv3__json_int64(dsv3__json_get(dsv3__json_get(d.root, "c"), "d"), &i));
    ck_assert(i == 9007199254740993LL);
    ck_assert_ptr_null(dsv3__json_get(d.root, "zz"));
    ck_assert_ptr_null(dsv3__json_at(b, 5));
    dsv3__json_free(&d);
}
END_TEST

START_TEST(rejects_bad_input)
{
    static const char *bad[] = {
        "", "{", "[1,]", "{\"a\" 1}", "01", "1.", "-", "1e", "\"\\x\"", "\"a", "[1 2]",
        "{\"a\":1,}", "tru", "nul", "\"\\ud800\"", "\"\\udc00\"", "\"\x01\"", "\"\xff\"",
        "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "{} x", "[\"\\u12\"]",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        dsv3_json_doc d;
        dsv3__err e;
        int rc = parse(bad[k], &d, &e);
        ck_assert_msg(rc == DSV3_E_FORMAT, "accepted bad JSON #%zu '%s'", k, bad[k]);
        ck_assert_ptr_nonnull(strstr(e.msg, "JSON:"));
        dsv3__json_free(&d);
    }
}
END_TEST

START_TEST(depth_limit)
{
    char s[600];
    memset(s, '[', 300);
    memset(s + 300, ']', 300);
    s[600 - 1] = ']';
    dsv3_json_doc d;
    dsv3__err e;
    ck_assert_int_eq(dsv3__json_parse(&A, s, 600, &d, &e), DSV3_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "deep"));
    memset(s, '[', 100);
    memset(s + 100, ']', 100);
    ck_assert_int_eq(dsv3__json_parse(&A, s, 200, &d, &e), DSV3_OK);
    dsv3__json_free(&d);
}
END_TEST

START_TEST(oom_never_leaks)
{
    const char *s = "{\"k\": [1, 2, {\"x\": \"long string value here\"}], \"m\": \"\\u0041\"}";
    for (long n = 1; n < 200; n++) {
        tu_alloc t;
        tu_alloc_init(&t, n);
        dsv3__alloc a;
        dsv3__alloc_init(&a, &t.a);
        dsv3_json_doc d;
        dsv3__err e;
        int rc = dsv3__json_parse(&a, s, strlen(s), &d, &e);
        ck_assert(rc == DSV3_OK || rc == DSV3_E_NOMEM);
        if (rc == DSV3_OK)
            ck_assert_str_eq(dsv3__json_string(dsv3__json_get(d.root, "m")), "A");
        dsv3__json_free(&d);
        ck_assert_int_eq(t.live, 0);
        if (!t.failed)
            break;
    }
}
END_TEST

static Suite *json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, objects_and_types);
    tcase_add_test(tc, rejects_bad_input);
    tcase_add_test(tc, depth_limit);
    tcase_add_test(tc, oom_never_leaks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    dsv3__alloc_init(&A, NULL);
    return tu_run_suite(json_suite());
}
