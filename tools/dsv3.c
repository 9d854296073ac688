/*
 * dsv3.c - the dsv3 command-line program: subcommand dispatch.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

static const cli_command commands[] = {
    {"backends", "list the compute backends and whether they are usable", cmd_backends},
    {"convert", "convert a Hugging Face checkpoint into a libdsv3 model", cmd_convert},
    {"info", "describe a model: hyper-parameters, parameters, bytes", cmd_info},
    {"tokenize", "print the token ids of a text", cmd_tokenize},
    {"detokenize", "print the text of token ids", cmd_detokenize},
    {"generate", "stream a completion of a prompt", cmd_generate},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: dsv3 [--help] [--version] COMMAND [ARGS]\n\n"
               "Run DeepSeek-V3-architecture language models.\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'dsv3 COMMAND --help' describes a command.\n");
}

static void version(void)
{
    printf("dsv3 %s (libdsv3 %s, ABI %u)\n%s\n", DSV3_VERSION_STRING, dsv3_version_string(),
           dsv3_abi_version(), dsv3_build_info());
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *c = argv[1];
    if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(c, "--version") || !strcmp(c, "-V") || !strcmp(c, "version")) {
        version();
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(c, commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    return cli_error(NULL, "unknown command '%s' (try 'dsv3 --help')", c);
}
