/*
 * testutil.c - helpers shared by the Check suites.
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

int tu_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_set_tap(sr, "-");
    srunner_run_all(sr, CK_SILENT);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

char *tu_mkdtemp(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *p = NULL;
    if (asprintf(&p, "%s/dsv3-%s-XXXXXX", base ? base : "/tmp", tag) < 0)
        return NULL;
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

void tu_rmtree(const char *path)
{
    if (!path || !*path || !strcmp(path, "/"))
        return;
    char *cmd = NULL;
    if (asprintf(&cmd, "rm -rf '%s'", path) >= 0) {
        if (system(cmd) != 0)
            fprintf(stderr, "# could not remove %s\n", path);
        free(cmd);
    }
}

char *tu_path(const char *dir, const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        return NULL;
    return p;
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = (n + 65536 + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, 65536, f);
        n += r;
        if (r < 65536)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

int tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    int rc = fclose(f);
    return (w == len && rc == 0) ? 0 : -1;
}

static const char *env_or_fail(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "# %s is not set (run the tests with meson test)\n", name);
        ck_abort_msg("%s is not set", name);
    }
    return v;
}

const char *tu_source_dir(void)
{
    return env_or_fail("DSV3_SOURCE_DIR");
}

const char *tu_build_dir(void)
{
    return env_or_fail("DSV3_BUILD_DIR");
}

const char *tu_cli(void)
{
    return env_or_fail("DSV3_CLI");
}

int tu_run(const char *cmdline, char **out, char **err)
{
    char *ofile = NULL, *efile = NULL, *full = NULL;
    char *dir = tu_mkdtemp("run");
    if (!dir)
        return -1;
    ofile = tu_path(dir, "out");
    efile = tu_path(dir, "err");
    if (asprintf(&full, "( %s ) >'%s' 2>'%s' </dev/null", cmdline, ofile, efile) < 0)
        full = NULL;
    int status = full ? system(full) : -1;
    int rc = (status >= 0 && WIFEXITED(status)) ? WEXITSTATUS(status) : -1;
    if (out) {
        size_t l;
        *out = tu_read_file(ofile, &l);
        (void)l;
    }
    if (err) {
        size_t l;
        *err = tu_read_file(efile, &l);
        (void)l;
    }
    free(full);
    free(ofile);
    free(efile);
    tu_rmtree(dir);
    free(dir);
    return rc;
}

static void *tu_alloc_fn(size_t size, void *ud)
{
    tu_alloc *t = ud;
    long n = __atomic_add_fetch(&t->n_alloc, 1, __ATOMIC_RELAXED);
    if (t->fail_at > 0 && n == t->fail_at) {
        t->failed = 1;
        return NULL;
    }
    void *p = malloc(size);
    if (p)
        __atomic_add_fetch(&t->live, 1, __ATOMIC_RELAXED);
    return p;
}

static void tu_free_fn(void *p, void *ud)
{
    tu_alloc *t = ud;
    if (p) {
        __atomic_sub_fetch(&t->live, 1, __ATOMIC_RELAXED);
        free(p);
    }
}

void tu_alloc_init(tu_alloc *t, long fail_at)
{
    memset(t, 0, sizeof *t);
    t->a.struct_size = sizeof t->a;
    t->a.alloc = tu_alloc_fn;
    t->a.free = tu_free_fn;
    t->a.user_data = t;
    t->fail_at = fail_at;
}
