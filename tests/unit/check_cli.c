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

/* ---- dsv3 generate: arguments (no model needed) ---------------------------- */

START_TEST(generate_help)
{
    char *out, *err;
    ck_assert_int_eq(run_cli("generate --help", &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: dsv3 generate -m MODEL -p PROMPT"));
    const char *defaults[] = {"(default 256)", "(default 0.80)", "(default 40)",
                              "(default 0.95)", "(default 0.05)", "--mtp", "--chat",
                              "--backend", "--seed"};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        ck_assert_msg(strstr(out, defaults[i]), "'%s' not in --help", defaults[i]);
    free(out);
    free(err);
    ck_assert_int_eq(run_cli("--help", &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "generate"));
    free(out);
    free(err);
}
END_TEST

/* args must fail with exit status 1, one line on stderr containing want, and
 * nothing on stdout. */
static void generate_fails(const char *args, const char *want)
{
    char cmd[1024], *out, *err;
    snprintf(cmd, sizeof cmd, "generate %s", args);
    int rc = run_cli(cmd, &out, &err);
    ck_assert_msg(rc == 1, "'%s': exit status %d", args, rc);
    ck_assert_msg(count_lines(err) == 1, "'%s': stderr '%s'", args, err);
    ck_assert_msg(strstr(err, want), "'%s': '%s' not in '%s'", args, want, err);
    ck_assert_msg(!strncmp(err, "dsv3 generate: ", 15), "'%s': '%s'", args, err);
    ck_assert_str_eq(out, "");
    free(out);
    free(err);
}

START_TEST(generate_bad_arguments)
{
    generate_fails("", "missing -m");
    generate_fails("-m m", "missing -p");
    generate_fails("-p hi", "missing -m");
    generate_fails("-m m -p", "needs a value");
    generate_fails("-m m -p hi extra", "unexpected argument 'extra'");
    generate_fails("-m m -p hi --frob", "unknown option '--frob'");
    generate_fails("-m m -p hi --mtp=1", "takes no value");
    generate_fails("-m m -p hi --temp abc", "--temp");
    generate_fails("-m m -p hi --temp -0.5", "--temp");
    generate_fails("-m m -p hi --temp nan", "--temp");
    generate_fails("-m m -p hi --temp inf", "--temp");
    generate_fails("-m m -p hi --top-k -1", "--top-k");
    generate_fails("-m m -p hi --top-k 1.5", "--top-k");
    generate_fails("-m m -p hi --top-p 0", "--top-p");
    generate_fails("-m m -p hi --top-p 1.01", "--top-p");
    generate_fails("-m m -p hi --min-p -0.1", "--min-p");
    generate_fails("-m m -p hi --min-p 1.5", "--min-p");
    generate_fails("-m m -p hi --seed -1", "--seed");
    generate_fails("-m m -p hi --seed 18446744073709551616", "--seed");
    generate_fails("-m m -p hi --seed 12x", "--seed");
    generate_fails("-m m -p hi -n -1", "--max-tokens");
    generate_fails("-m m -p hi -n 99999999999", "--max-tokens");
    generate_fails("-m m -p hi -t 0", "--threads");
    generate_fails("-m m -p hi -t 5000", "--threads");
    generate_fails("-m m -p hi --backend tpu", "--backend");
}
END_TEST

START_TEST(generate_model_missing)
{
    /* valid arguments everywhere (including edge values), a model that is
     * not there: one line naming it */
    generate_fails("-m /nonexistent/model -p hi --temp 0 --top-k 0 --top-p 1 --min-p 0 "
                   "--seed 18446744073709551615 -n 0 -t 1 --backend cpu --chat --mtp",
                   "cannot load model '/nonexistent/model'");
    generate_fails("--model=/nonexistent/model --prompt=-starts-with-dash",
                   "cannot load model");
    generate_fails("-m /nonexistent/model -- -p", "unexpected argument '-p'");
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
    tc = tcase_create("generate");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, generate_help);
    tcase_add_test(tc, generate_bad_arguments);
    tcase_add_test(tc, generate_model_missing);
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
