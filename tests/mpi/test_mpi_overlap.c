/* SPDX-License-Identifier: MIT */
/* test_mpi_overlap.c — the ring overlaps its transfers with compute
 * (run by tests/mpi/run.sh under mpirun -np 1..4; nothing to overlap at 1).
 *
 * A transfer is made slow on purpose: attn_mpi_ring_set_link_bandwidth makes
 * every step's transfers last 3x the measured compute of a step (a link that
 * slow: communication-bound). Without overlap a call would take
 * comm + compute; with it the compute of the N-1 steps that have a transfer
 * hides behind it, leaving about one step's compute (the last step, which
 * receives nothing) on top of the link time. Checked on every rank, for the
 * forward and the backward, with the same run's own figures (so the machine's
 * load cancels out): the time the rank spent blocked on its link (before the
 * link's own deadlines; waiting for a late neighbour is not the link's) is
 * shorter than the link time by at least half the compute of the steps that
 * had a transfer,
 *     comm - link_wait >= 0.5 * min((N-1)/N * compute, comm)
 * (without overlap, posting and then waiting, or sending after computing,
 * link_wait = comm). Printed: the figure total / max(compute, comm) per
 * call (its floor here is 1 + 1/(3(N-1)): the last step's compute has no
 * transfer to hide behind), and the fraction of the link time hidden. */
#include "attn_mpi.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int N, rank_;
static int timed = 1; /* 0 under sanitizers (ATTN_TEST_SCALE < 1): timing checks off */

enum { B = 1, HQ = 4, HKV = 2, D = 64 };
static int64_t S = 3072; /* sanitizer runs (ATTN_TEST_SCALE < 1): 24 * max(8, 64 * scale), 384 at 0.25 */

static attn_status call(attn_mpi_ring *ring, int bwd, float **t) {
    const int64_t sl = S / N;
    attn_sdpa_dims d = {B, S, S, HQ, HKV, D, D};
    attn_sdpa_opts o;
    attn_sdpa_opts_init(&o);
    attn_view q = attn_view_bshd(t[0], sl, HQ, D), k = attn_view_bshd(t[1], sl, HKV, D);
    attn_view v = attn_view_bshd(t[2], sl, HKV, D), out = attn_view_bshd(t[3], sl, HQ, D);
    if (!bwd) return attn_mpi_ring_fwd(ring, &d, q, k, v, out, t[4], &o);
    return attn_mpi_ring_bwd(ring, &d, q, k, v, out, attn_view_bshd(t[5], sl, HQ, D), t[4],
                             attn_view_bshd(t[6], sl, HQ, D), attn_view_bshd(t[7], sl, HKV, D),
                             attn_view_bshd(t[8], sl, HKV, D), &o);
}

static void check_overlap(attn_mpi_ring *ring, int bwd, float **t) {
    const char *what = bwd ? "backward" : "forward";
    attn_mpi_stats st;
    attn_mpi_ring_set_link_bandwidth(ring, 0.0);
    CHECK(call(ring, bwd, t) == ATTN_OK, "%s: %s", what, attn_mpi_last_error()); /* warm-up */
    CHECK(call(ring, bwd, t) == ATTN_OK, "%s: %s", what, attn_mpi_last_error());
    attn_mpi_ring_stats(ring, &st);
    double step = st.compute_s / N, worst = 0;
    MPI_Allreduce(&step, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    const double bytes = (double)st.bytes_sent / (N - 1); /* per step (every piece travels: no mask) */
    double bps = bytes / (3.0 * worst);
    MPI_Bcast(&bps, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    attn_mpi_ring_set_link_bandwidth(ring, bps);
    MPI_Barrier(MPI_COMM_WORLD);
    CHECK(call(ring, bwd, t) == ATTN_OK, "%s: %s", what, attn_mpi_last_error());
    attn_mpi_ring_stats(ring, &st);
    const double need = 0.5 * fmin((double)(N - 1) / N * st.compute_s, st.comm_s);
    const double hidden = st.comm_s > 0 ? 1.0 - st.wait_s / st.comm_s : 1.0;
    printf("  rank %d %s: total %.1f ms, compute %.1f ms, comm %.1f ms (link %.1f MB/s), wait %.1f ms "
           "(on the link %.1f ms); total / max(compute, comm) = %.3f, comm hidden %.0f%%, serial would be %.1f ms\n",
           rank_, what, 1e3 * st.total_s, 1e3 * st.compute_s, 1e3 * st.comm_s, bps / 1e6, 1e3 * st.wait_s,
           1e3 * st.link_wait_s,
           st.total_s / fmax(st.compute_s, st.comm_s), 100.0 * hidden, 1e3 * (st.comm_s + st.compute_s));
    /* sanitizer builds (ATTN_TEST_SCALE < 1): the packing and merges outside the steps weigh as much
     * as the kernels, so the compute inside the transfer windows is not (N-1)/N of it: figures only */
    CHECK(timed == 0 || st.comm_s - st.link_wait_s >= need, "rank %d %s: link %.1f ms - waiting on it %.1f ms < %.1f ms = 0.5 min("
          "(N-1)/N compute, link): compute is not overlapped with the transfers", rank_, what, 1e3 * st.comm_s,
          1e3 * st.link_wait_s, 1e3 * need);
    CHECK(st.comm_s >= 0.9 * (N - 1) * bytes / bps, "rank %d %s: link time %.1f ms shorter than simulated", rank_,
          what, 1e3 * st.comm_s);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_size(MPI_COMM_WORLD, &N);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    const char *sc = getenv("ATTN_TEST_SCALE");
    if (sc && atof(sc) > 0 && atof(sc) < 1) {
        S = 24 * (int64_t)fmax(8.0, floor(64 * atof(sc)));
        timed = 0;
    }
    if (N == 1) {
        printf("test_mpi_overlap: 1 rank, nothing to overlap\n");
        MPI_Finalize();
        return 0;
    }
    const int64_t sl = S / N;
    const int64_t n[9] = {B * sl * HQ * D, B * sl * HKV * D, B * sl * HKV * D, B * sl * HQ * D, B * HQ * sl,
                          B * sl * HQ * D, B * sl * HQ * D, B * sl * HKV * D, B * sl * HKV * D};
    float *t[9];
    tu_rng r = {(uint64_t)rank_ + 5};
    for (int i = 0; i < 9; i++) {
        t[i] = malloc((size_t)n[i] * sizeof(float));
        tu_fill(&r, t[i], n[i], 1.0f);
    }
    attn_mpi_ring *ring = NULL;
    CHECK(attn_mpi_ring_create(&ring, MPI_COMM_WORLD, ATTN_MPI_CONTIGUOUS) == ATTN_OK, "%s", attn_mpi_last_error());
    if (ring) {
        check_overlap(ring, 0, t);
        check_overlap(ring, 1, t);
    }
    attn_mpi_ring_free(ring);
    for (int i = 0; i < 9; i++) free(t[i]);
    int fails = (int)tu_fail, tot = 0;
    MPI_Allreduce(&fails, &tot, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int rc = test_summary("test_mpi_overlap");
    MPI_Finalize();
    return rc != 0 || tot != 0;
}
