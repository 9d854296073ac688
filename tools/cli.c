/*
 * cli.c - option parsing and error helpers of the dsv3 program.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

int cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "dsv3%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

void cli_opts_init(cli_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->argc = argc;
    o->argv = argv;
    o->i = 1;
    o->cmd = argv[0];
}

/* Find `name` (of length n) in spec; returns a pointer to the long name's
 * start in spec and sets *takes_value and *long_len. */
static const char *spec_find(const char *spec, const char *name, size_t n, bool is_long,
                             bool *takes_value, size_t *long_len)
{
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, '|');
        if (!end)
            end = p + strlen(p);
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *shortn = comma ? p : NULL;
        const char *longn = comma ? comma + 1 : p;
        bool val = end[-1] == ':';
        size_t ll = (size_t)(end - longn) - (val ? 1 : 0);
        bool hit = is_long ? (ll == n && !memcmp(longn, name, n))
                           : (shortn && (size_t)(comma - shortn) == n && !memcmp(shortn, name, n));
        if (hit) {
            *takes_value = val;
            *long_len = ll;
            return longn;
        }
        p = *end ? end + 1 : end;
    }
    return NULL;
}

const char *cli_next(cli_opts *o, const char *spec)
{
    static char found[64];
    while (o->i < o->argc) {
        char *a = o->argv[o->i++];
        if (o->no_more_opts || a[0] != '-' || a[1] == '\0') {
            if (o->n_positional >= (int)(sizeof o->positional / sizeof o->positional[0])) {
                cli_error(o->cmd, "too many arguments");
                return "?";
            }
            o->positional[o->n_positional++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            o->no_more_opts = true;
            continue;
        }
        bool is_long = a[1] == '-';
        const char *name = a + (is_long ? 2 : 1);
        const char *eq = is_long ? strchr(name, '=') : NULL;
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        bool takes;
        size_t ll;
        const char *ln = spec_find(spec, name, n, is_long, &takes, &ll);
        if (!ln) {
            cli_error(o->cmd, "unknown option '%s' (see dsv3 %s --help)", a, o->cmd);
            return "?";
        }
        o->value = NULL;
        if (takes) {
            if (eq)
                o->value = eq + 1;
            else if (o->i < o->argc)
                o->value = o->argv[o->i++];
            else {
                cli_error(o->cmd, "option '%s' needs a value", a);
                return "?";
            }
        } else if (eq) {
            cli_error(o->cmd, "option '--%.*s' takes no value", (int)n, name);
            return "?";
        }
        if (ll >= sizeof found)
            ll = sizeof found - 1;
        memcpy(found, ln, ll);
        found[ll] = '\0';
        return found;
    }
    return NULL;
}

bool cli_parse_i64(const char *cmd, const char *opt, const char *s, int64_t min, int64_t max,
                   int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        cli_error(cmd, "--%s: expected an integer in [%lld, %lld], got '%s'", opt,
                  (long long)min, (long long)max, s);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_f32(const char *cmd, const char *opt, const char *s, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v)) {
        cli_error(cmd, "--%s: expected a number, got '%s'", opt, s);
        return false;
    }
    *out = v;
    return true;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
