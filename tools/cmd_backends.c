/*
 * cmd_backends.c - dsv3 backends: list the compute backends.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

int cmd_backends(int argc, char **argv)
{
    cli_opts o;
    cli_opts_init(&o, argc, argv);
    const char *opt;
    while ((opt = cli_next(&o, "h,help"))) {
        if (!strcmp(opt, "?"))
            return 1;
        if (!strcmp(opt, "help")) {
            printf("usage: dsv3 backends\n\nList the compute backends compiled in and whether "
                   "each is usable on this machine.\n");
            return 0;
        }
    }
    if (o.n_positional)
        return cli_error("backends", "unexpected argument '%s'", o.positional[0]);
    const int32_t ids[] = {DSV3_BACKEND_CPU, DSV3_BACKEND_CUDA};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        printf("%-6s %s\n", dsv3_backend_name(ids[i]),
               dsv3_backend_available(ids[i]) ? "available" : "not available");
    return 0;
}
