/*
 * commands.h - the subcommands of the dsv3 program.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_COMMANDS_H
#define DSV3_COMMANDS_H

int cmd_backends(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);

#endif
