/* SPDX-License-Identifier: MIT */
/* ring_comm.c — one ring step's transfers and the shard packing.
 *
 * A step posts all its receives and sends (MPI_Irecv / MPI_Isend) before the
 * step's compute, nudges them between kernel calls (MPI_Testall: MPI
 * progresses transfers only inside MPI calls), and waits for all of them
 * after the compute. With a simulated link (attn_mpi_ring_set_link_bandwidth)
 * the wait also lasts until max(bytes sent, bytes received) / bandwidth
 * after the post: a link of that speed running concurrently with compute. */
#include "mpi/ring_internal.h"

#include <string.h>
#include <time.h>

void ring_step_begin(ring_step *s) {
    s->timed = 1;
    s->nreq = 0;
    s->sent = s->recv = 0;
    s->t_post = ring_now();
}

/* Messages are split so that no count exceeds INT_MAX floats. */
#define CHUNK ((int64_t)1 << 30)

void ring_step_send(attn_mpi_ring *R, ring_step *s, const float *buf, int64_t n, int dest, int tag) {
    for (int64_t off = 0; off < n && s->nreq < RING_MAX_REQ; off += CHUNK) {
        int cnt = (int)(n - off < CHUNK ? n - off : CHUNK);
        MPI_Isend(buf + off, cnt, MPI_FLOAT, dest, tag, R->comm, &s->req[s->nreq++]);
    }
    s->sent += n * (int64_t)sizeof(float);
}

void ring_step_recv(attn_mpi_ring *R, ring_step *s, float *buf, int64_t n, int src, int tag) {
    for (int64_t off = 0; off < n && s->nreq < RING_MAX_REQ; off += CHUNK) {
        int cnt = (int)(n - off < CHUNK ? n - off : CHUNK);
        MPI_Irecv(buf + off, cnt, MPI_FLOAT, src, tag, R->comm, &s->req[s->nreq++]);
    }
    s->recv += n * (int64_t)sizeof(float);
}

void ring_step_progress(ring_step *s) {
    int flag;
    if (s->nreq > 0) MPI_Testall(s->nreq, s->req, &flag, MPI_STATUSES_IGNORE);
}

static void sleep_until(double t) {
    for (;;) {
        double left = t - ring_now();
        if (left <= 0) return;
        struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

void ring_step_wait(attn_mpi_ring *R, ring_step *s) {
    const double t0 = ring_now();
    if (s->nreq > 0) MPI_Waitall(s->nreq, s->req, MPI_STATUSES_IGNORE);
    double done = ring_now();
    double t_link = 0.0;
    if (R->link_bps > 0.0 && (s->sent > 0 || s->recv > 0)) {
        t_link = s->t_post + (double)(s->sent > s->recv ? s->sent : s->recv) / R->link_bps;
        if (t_link > done) {
            sleep_until(t_link);
            done = t_link;
        }
    }
    const double waited = ring_now() - t0;
    R->stats.wait_s += waited;
    if (t_link > t0) R->stats.link_wait_s += t_link - t0 < waited ? t_link - t0 : waited;
    if (s->timed && (s->sent > 0 || s->recv > 0)) R->stats.comm_s += done - s->t_post;
    R->stats.bytes_sent += s->sent;
    R->stats.bytes_recv += s->recv;
    s->nreq = 0;
    s->sent = s->recv = 0;
}

void ring_pack_rows(attn_view v, int64_t row0, int64_t B, int64_t c, int64_t H, int64_t Dh, float *dst) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < c; i++)
            for (int64_t h = 0; h < H; h++)
                memcpy(dst + ((b * c + i) * H + h) * Dh, v.data + b * v.stride_b + (row0 + i) * v.stride_s + h * v.stride_h,
                       (size_t)Dh * sizeof(float));
}

void ring_unpack_rows(const float *src, int64_t B, int64_t c, int64_t H, int64_t Dh, attn_view v, int64_t row0) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < c; i++)
            for (int64_t h = 0; h < H; h++)
                memcpy(v.data + b * v.stride_b + (row0 + i) * v.stride_s + h * v.stride_h, src + ((b * c + i) * H + h) * Dh,
                       (size_t)Dh * sizeof(float));
}

void ring_add_rows(const float *src, int64_t B, int64_t c, int64_t H, int64_t Dh, attn_view v, int64_t row0) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < c; i++)
            for (int64_t h = 0; h < H; h++) {
                float *d = v.data + b * v.stride_b + (row0 + i) * v.stride_s + h * v.stride_h;
                const float *x = src + ((b * c + i) * H + h) * Dh;
                for (int64_t e = 0; e < Dh; e++) d[e] += x[e];
            }
}
