/*
 * testutil.h - helpers shared by the Check suites: temporary directories,
 * files, a counting/failing allocator, running the dsv3 program.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_TESTUTIL_H
#define DSV3_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "dsv3.h"

/* Run a suite with TAP output on stdout; returns the process exit status. */
int tu_run_suite(Suite *s);

/* Create a fresh temporary directory (removed by tu_rmtree). Returns a
 * malloc'ed path. */
char *tu_mkdtemp(const char *tag);
void tu_rmtree(const char *path);
/* Join two path parts into a static-lifetime-free malloc'ed string. */
char *tu_path(const char *dir, const char *name);

/* Read a whole file (malloc'ed, NUL-terminated); NULL on error. */
char *tu_read_file(const char *path, size_t *len);
int tu_write_file(const char *path, const void *data, size_t len);

/* Source/build directories and the dsv3 program (from the environment meson
 * sets; aborts the test if missing). */
const char *tu_source_dir(void);
const char *tu_build_dir(void);
const char *tu_cli(void);

/* Run a shell command line; captures stdout and stderr (malloc'ed, may be
 * NULL) and returns the exit status (or -1). */
int tu_run(const char *cmdline, char **out, char **err);

/*
 * A counting allocator for leak and failure-injection tests. fail_at = N > 0
 * makes the Nth allocation (1-based) fail; 0 never fails. live counts
 * allocations not yet freed.
 */
typedef struct tu_alloc {
    dsv3_allocator a;
    long n_alloc;   /* allocations attempted */
    long live;      /* allocations not freed */
    long fail_at;
    int failed;     /* the injected failure happened */
} tu_alloc;

void tu_alloc_init(tu_alloc *t, long fail_at);

#endif
