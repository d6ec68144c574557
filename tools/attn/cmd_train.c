/* cmd_train.c — placeholder until the training demo lands (replaced by its owner). */
#include "cli.h"
#include <stdio.h>
int cmd_train(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "attn train: not built yet\n"); return 1; }
int cmd_generate(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "attn generate: not built yet\n"); return 1; }
