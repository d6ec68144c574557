/* SPDX-License-Identifier: MIT */
/* ring.c — the attn_mpi_ring object: creation (duplicated communicator),
 * settings, figures of the last call, and libattn_mpi's error message. */
#include "mpi/ring_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char ring_msg[512];

attn_status ring_fail(attn_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ring_msg, sizeof ring_msg, fmt, ap);
    va_end(ap);
    return st;
}

const char *attn_mpi_last_error(void) { return ring_msg; }

double ring_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

attn_status attn_mpi_ring_create(attn_mpi_ring **out, MPI_Comm comm, int layout) {
    if (!out) return ring_fail(ATTN_ERR_NULL, "attn_mpi_ring_create: out is NULL");
    *out = NULL;
    int init = 0;
    MPI_Initialized(&init);
    if (!init) return ring_fail(ATTN_ERR_STATE, "attn_mpi_ring_create: MPI is not initialised (call MPI_Init first)");
    if (comm == MPI_COMM_NULL) return ring_fail(ATTN_ERR_NULL, "attn_mpi_ring_create: comm is MPI_COMM_NULL");
    /* agree on the layout before anything collective can diverge */
    int lay[2] = {layout, -layout}, g[2];
    MPI_Allreduce(lay, g, 2, MPI_INT, MPI_MAX, comm);
    if (g[0] != -g[1])
        return ring_fail(ATTN_ERR_OPTION, "attn_mpi_ring_create: ranks disagree on layout (min %d, max %d)", -g[1],
                         g[0]);
    if (layout != ATTN_MPI_CONTIGUOUS && layout != ATTN_MPI_ZIGZAG)
        return ring_fail(ATTN_ERR_OPTION, "attn_mpi_ring_create: layout = %d, must be 0 (contiguous) or 1 (zigzag)",
                         layout);
    attn_mpi_ring *R = calloc(1, sizeof *R);
    int ok = R != NULL, all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm);
    if (!all) {
        free(R);
        return ring_fail(ATTN_ERR_NOMEM, "attn_mpi_ring_create: out of memory (on %s rank)", ok ? "another" : "this");
    }
    MPI_Comm_dup(comm, &R->comm);
    MPI_Comm_size(R->comm, &R->N);
    MPI_Comm_rank(R->comm, &R->rank);
    R->layout = layout;
    *out = R;
    return ATTN_OK;
}

void attn_mpi_ring_free(attn_mpi_ring *R) {
    if (!R) return;
    MPI_Comm_free(&R->comm);
    free(R->mem);
    free(R->pos);
    free(R->gbuf);
    free(R);
}

attn_status attn_mpi_ring_set_link_bandwidth(attn_mpi_ring *R, double bps) {
    if (!R) return ring_fail(ATTN_ERR_NULL, "attn_mpi_ring_set_link_bandwidth: ring is NULL");
    if (!(bps >= 0.0) || bps > 1e300)
        return ring_fail(ATTN_ERR_OPTION, "attn_mpi_ring_set_link_bandwidth: bytes_per_second = %g, must be >= 0",
                         bps);
    R->link_bps = bps;
    return ATTN_OK;
}

attn_status attn_mpi_ring_stats(const attn_mpi_ring *R, attn_mpi_stats *out) {
    if (!R || !out) return ring_fail(ATTN_ERR_NULL, "attn_mpi_ring_stats: %s is NULL", R ? "out" : "ring");
    *out = R->stats;
    return ATTN_OK;
}
