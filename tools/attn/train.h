/* SPDX-License-Identifier: MIT */
/* train.h — the `attn train` loop (cmd_train.c), shared by the attn tool
 * (one process) and attn-mpi (`attn train --mpi`: sequence-parallel over
 * MPI, tools/attn_mpi/cmd_mpi_train.c), which passes the hooks below. */
#ifndef ATTN_TRAIN_H
#define ATTN_TRAIN_H

#include "lm.h"

#include <stdint.h>

/* How one training step is spread over processes. Every process samples the
 * same batch (B, T) and holds the same model; each computes its shard of the
 * tokens, the gradients are summed, and every process takes the same
 * optimiser step. */
typedef struct train_par {
    int rank, size;   /* this process, number of processes */
    const char *what; /* one line for the schedule printout, e.g. "sequence-parallel over 4 MPI ranks (zigzag)" */
    void *user;
    /* The T must allow (0: fine; else prints the reason and returns nonzero). */
    int (*check_seq)(void *user, int T);
    /* tokens (B, T) -> this process's shard (B, T / size) */
    void (*shard)(void *user, const int32_t *full, int B, int T, int32_t *local);
    /* the model's attention over the processes (lm_set_attention) */
    lm_attn_fwd_fn attn_fwd;
    lm_attn_bwd_fn attn_bwd;
    /* gradients of params[0 .. n): replaced by their mean over the processes */
    attn_status (*grad_mean)(void *user, const attn_param *params, int64_t n);
    /* the mean over the processes of a per-process value */
    double (*mean)(void *user, double v);
} train_par;

/* `attn train` with argv[0] = "train"; par NULL: one process. Only rank 0
 * prints the log and writes the checkpoint. Returns the exit code. */
int train_main(int argc, char **argv, const train_par *par);

#endif
