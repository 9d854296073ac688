/*
 * check_cli.c - the dsv3 program: dispatch, --help, --version, errors.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static int run_cli(const char *args, char **out, char **err)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s", tu_cli(), args);
    return tu_run(cmd, out, err);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

START_TEST(version_flag)
{
    char *out, *err;
    ck_assert_int_eq(run_cli("--version", &out, &err), 0);
    char want[64];
    snprintf(want, sizeof want, "libdsv3 %s, ABI %d", DSV3_VERSION_STRING, DSV3_ABI_VERSION);
    ck_assert_msg(strstr(out, want), "'%s' not in '%s'", want, out);
    free(out);
    free(err);
}
END_TEST

START_TEST(help_lists_commands)
{
    char *out, *err;
    ck_assert_int_eq(run_cli("--help", &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: dsv3"));
    ck_assert_ptr_nonnull(strstr(out, "backends"));
    free(out);
    free(err);
}
END_TEST

START_TEST(unknown_command)
{
    char *out, *err;
    int rc = run_cli("nosuch", &out, &err);
    ck_assert_int_ne(rc, 0);
    ck_assert_int_eq(count_lines(err), 1);
    ck_assert_ptr_nonnull(strstr(err, "unknown command 'nosuch'"));
    ck_assert_str_eq(out, "");
    free(out);
    free(err);
}
END_TEST

START_TEST(no_arguments)
{
    char *out, *err;
    ck_assert_int_ne(run_cli("", &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(err, "usage"));
    free(out);
    free(err);
}
END_TEST

START_TEST(unknown_option)
{
    char *out, *err;
    ck_assert_int_ne(run_cli("backends --frobnicate", &out, &err), 0);
    ck_assert_int_eq(count_lines(err), 1);
    ck_assert_ptr_nonnull(strstr(err, "unknown option '--frobnicate'"));
    free(out);
    free(err);
}
END_TEST

START_TEST(backends_lists_cpu)
{
    char *out, *err;
    ck_assert_int_eq(run_cli("backends", &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "cpu    available"));
    ck_assert_ptr_nonnull(strstr(out, "cuda"));
    free(out);
    free(err);
}
END_TEST

/* Usage errors of tokenize/detokenize: one line on stderr, nothing on stdout,
 * before any model is touched. */
START_TEST(tokenize_usage_errors)
{
    static const struct {
        const char *args, *msg;
    } v[] = {
        {"tokenize hello", "no model given"},
        {"tokenize -m /nonexistent", "no TEXT given"},
        {"tokenize -m /nonexistent a b", "expected one TEXT"},
        {"tokenize -m /nonexistent --frob x", "unknown option '--frob'"},
        {"detokenize -m /nonexistent", "no IDS given"},
        {"detokenize 1,2", "no model given"},
        {"detokenize -m /nonexistent 1,x", "comma-separated integers"},
        {"detokenize -m /nonexistent 1,,2", "comma-separated integers"},
        {"detokenize -m /nonexistent 99999999999", "comma-separated integers"},
        {"tokenize -m /nonexistent/model hello", "/nonexistent/model"},
        {"detokenize -m /nonexistent/model 1,2", "/nonexistent/model"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char *out, *err;
        ck_assert_int_ne(run_cli(v[i].args, &out, &err), 0);
        ck_assert_msg(count_lines(err) == 1 && strstr(err, v[i].msg), "%s: '%s'", v[i].args,
                      err);
        ck_assert_str_eq(out, "");
        free(out);
        free(err);
    }
    char *out, *err;
    ck_assert_int_eq(run_cli("tokenize --help", &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: dsv3 tokenize -m MODEL [--bos] [--no-special]"));
    free(out);
    free(err);
    ck_assert_int_eq(run_cli("detokenize --help", &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: dsv3 detokenize -m MODEL"));
    free(out);
    free(err);
}
END_TEST

static Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("dispatch");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, version_flag);
    tcase_add_test(tc, help_lists_commands);
    tcase_add_test(tc, unknown_command);
    tcase_add_test(tc, no_arguments);
    tcase_add_test(tc, unknown_option);
    tcase_add_test(tc, backends_lists_cpu);
    suite_add_tcase(s, tc);
    tc = tcase_create("tokenize");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, tokenize_usage_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(cli_suite());
}
