/* SPDX-License-Identifier: MIT */
/* cli.h — the subcommands of the `attn` tool. Each takes argc/argv with
 * argv[0] = the subcommand name and returns the process exit code
 * (0 success, 1 failure or bad usage). Errors are one line on stderr:
 *   "attn <sub>: <what is wrong>". */
#ifndef ATTN_CLI_H
#define ATTN_CLI_H

int cmd_info(int argc, char **argv);     /* cmd_info.c */
int cmd_check(int argc, char **argv);    /* cmd_check.c */
int cmd_bench(int argc, char **argv);    /* cmd_bench.c */
int cmd_run(int argc, char **argv);      /* cmd_run.c */
int cmd_train(int argc, char **argv);    /* cmd_train.c */
int cmd_generate(int argc, char **argv); /* cmd_generate.c */

#endif
