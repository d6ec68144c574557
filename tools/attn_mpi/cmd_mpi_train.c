/* SPDX-License-Identifier: MIT */
/* cmd_mpi_train.c — `attn train --mpi` (run as `attn-mpi train`): the demo
 * LM of `attn train`, sequence-parallel over MPI_COMM_WORLD. Every rank
 * samples the same batch (B, T) and holds the same model; rank r computes
 * its zigzag shard of every sequence (T / N tokens: chunks r and 2N-1-r of
 * 2N, the causal load balance), the attention of every layer runs on the
 * ring (attn_mpi_mha_forward / _backward: RoPE at the global positions), the
 * per-token parts (embedding, norms, MLP, head, loss) locally. The loss is
 * the mean over ranks of their shard's mean (equal shards: the batch mean)
 * and the gradients are averaged (attn_mpi_grad_allreduce, scale 1/N), so
 * every rank takes the same AdamW step: the same curve as one process, to
 * fp32 rounding. Rank 0 prints and saves. The loop itself is train_main
 * (tools/attn/cmd_train.c). */
#include "args.h"
#include "attn_mpi.h"
#include "train.h"

#include <stdio.h>
#include <string.h>

typedef struct mpi_train {
    attn_mpi_ring *ring;
    int rank, N;
} mpi_train;

static int mt_check_seq(void *user, int T) {
    mpi_train *t = user;
    if (T % (2 * t->N) == 0) return 0;
    if (t->rank != 0) return 1; /* every rank refuses, rank 0 says why */
    return cli_fail("train --mpi", "--seq %d: the zigzag shards need T to be a multiple of 2 x %d ranks", T, t->N);
}

/* tokens (B, T) -> (B, T / N): chunks rank and 2N-1-rank of length T / 2N */
static void mt_shard(void *user, const int32_t *full, int B, int T, int32_t *local) {
    mpi_train *t = user;
    const int c = T / (2 * t->N), chunk[2] = {t->rank, 2 * t->N - 1 - t->rank};
    for (int b = 0; b < B; b++)
        for (int p = 0; p < 2; p++)
            memcpy(local + (size_t)b * 2 * c + (size_t)p * c, full + (size_t)b * T + (size_t)chunk[p] * c,
                   (size_t)c * sizeof *full);
}

static attn_status mt_fwd(void *user, attn_mha *layer, const attn_mha_input *in, float *y) {
    mpi_train *t = user;
    attn_status st = attn_mpi_mha_forward(t->ring, layer, in, y);
    if (st != ATTN_OK) fprintf(stderr, "attn train --mpi (rank %d): %s\n", t->rank, attn_mpi_last_error());
    return st;
}

static attn_status mt_bwd(void *user, attn_mha *layer, const float *dy, float *dx) {
    mpi_train *t = user;
    attn_status st = attn_mpi_mha_backward(t->ring, layer, dy, dx);
    if (st != ATTN_OK) fprintf(stderr, "attn train --mpi (rank %d): %s\n", t->rank, attn_mpi_last_error());
    return st;
}

static attn_status mt_grad_mean(void *user, const attn_param *params, int64_t n) {
    mpi_train *t = user;
    attn_status st = attn_mpi_grad_allreduce(t->ring, params, n, 1.0f / (float)t->N);
    if (st != ATTN_OK) fprintf(stderr, "attn train --mpi (rank %d): %s\n", t->rank, attn_mpi_last_error());
    return st;
}

/* in rank order, so every rank gets the same bits */
static double mt_mean(void *user, double v) {
    mpi_train *t = user;
    double all[1024], s = 0.0;
    if (t->N > 1024) { /* cannot happen: checked at start */
        MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        return v / t->N;
    }
    MPI_Allgather(&v, 1, MPI_DOUBLE, all, 1, MPI_DOUBLE, MPI_COMM_WORLD);
    for (int r = 0; r < t->N; r++) s += all[r];
    return s / t->N;
}

int cmd_mpi_train(int argc, char **argv) {
    mpi_train t;
    memset(&t, 0, sizeof t);
    MPI_Comm_rank(MPI_COMM_WORLD, &t.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &t.N);
    if (t.N > 1024) return cli_fail("train --mpi", "%d ranks: at most 1024", t.N);
    if (attn_mpi_ring_create(&t.ring, MPI_COMM_WORLD, ATTN_MPI_ZIGZAG) != ATTN_OK)
        return cli_fail("train --mpi", "%s", attn_mpi_last_error());
    char what[128];
    snprintf(what, sizeof what, "sequence-parallel over %d MPI rank%s (zigzag shards of T / %d tokens, ring "
             "attention, gradients averaged)", t.N, t.N == 1 ? "" : "s", t.N);
    train_par par = {t.rank, t.N, what, &t, mt_check_seq, mt_shard, mt_fwd, mt_bwd, mt_grad_mean, mt_mean};
    if (t.rank != 0 && !freopen("/dev/null", "w", stdout)) /* one log: rank 0's */
        fprintf(stderr, "attn train --mpi (rank %d): cannot silence stdout\n", t.rank);
    int rc = train_main(argc, argv, &par);
    /* the exit code is rank 0's verdict on every rank (a failure anywhere was agreed in the loop) */
    MPI_Allreduce(MPI_IN_PLACE, &rc, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    attn_mpi_ring_free(t.ring);
    return rc;
}
