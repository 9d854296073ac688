/*
 * cli.h - shared helpers of the dsv3 command-line program.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_CLI_H
#define DSV3_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "dsv3.h"

/* A subcommand: run(argc, argv) with argv[0] = the subcommand's name.
 * Returns the process exit status. */
typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} cli_command;

/* Print "dsv3 <cmd>: message" on stderr (one line) and return exit status 1. */
int cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Option iterator. Accepts "-x VALUE", "--long VALUE", "--long=VALUE" and
 * flags; "--" ends the options. Positional arguments are collected.
 */
typedef struct cli_opts {
    int argc;
    char **argv;
    int i;
    const char *cmd;
    bool no_more_opts;
    const char *value; /* argument of the current option, if it takes one */
    char *positional[16];
    int n_positional;
} cli_opts;

void cli_opts_init(cli_opts *o, int argc, char **argv);
/*
 * Next option. spec lists the accepted options as "name:" (takes a value) or
 * "name" (flag), separated by '|', each with its short and long spelling
 * e.g. "m,model:|p,prompt:|mtp". Returns the long name of the option found
 * (for a short spelling too), NULL at the end, or "?" after printing an error.
 */
const char *cli_next(cli_opts *o, const char *spec);

/* Strict number parsing; false (after printing an error) on bad input. */
bool cli_parse_i64(const char *cmd, const char *opt, const char *s, int64_t min, int64_t max,
                   int64_t *out);
bool cli_parse_f32(const char *cmd, const char *opt, const char *s, float *out);

/* Monotonic seconds. */
double cli_now(void);

#endif /* DSV3_CLI_H */
