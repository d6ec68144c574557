/* SPDX-License-Identifier: MIT */
/* test_mpi_badinput.c — bad input to the ring gives an error on EVERY rank,
 * never a hang (run by tests/mpi/run.sh under mpirun -np 1..4, each run with
 * a timeout) and never a partial write.
 *
 * Each scenario makes one rank (or all) pass something wrong, then checks on
 * every rank: the status is the expected one (the same everywhere), the
 * message names the problem (on the failing rank) or the failing rank (on
 * the others), and the outputs still hold their sentinel. Scenarios: ranks
 * disagree on dims (heads, batch, S), on options (causal, window, key_lens
 * values), forward on some ranks and backward on others; S that does not
 * split over the communicator (the communicator has the wrong size for it);
 * a NULL tensor or a bad stride on one rank; unsupported options (dropout,
 * explicit mask, varlen, bottom-right with key_lens); seq_q != seq_k;
 * creating rings with disagreeing layouts. After all of them a valid call
 * succeeds on the same ring (no stray message was left behind). */
#include "attn_mpi.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int N, rank_;

enum { B = 2, HQ = 2, HKV = 1, D = 8, C = 6 }; /* C: rows per rank (contiguous) */

typedef struct bufs {
    float *q, *k, *v, *o, *lse, *dO, *dq, *dk, *dv;
    int64_t Sl;
} bufs;

static void bufs_alloc(bufs *b, int64_t Sl, int64_t hq) {
    b->Sl = Sl;
    size_t nq = (size_t)(B * Sl * hq * D), nk = (size_t)(B * Sl * HKV * D);
    b->q = malloc(nq * 4); b->o = malloc(nq * 4); b->dO = malloc(nq * 4); b->dq = malloc(nq * 4);
    b->k = malloc(nk * 4); b->v = malloc(nk * 4); b->dk = malloc(nk * 4); b->dv = malloc(nk * 4);
    b->lse = malloc((size_t)(B * hq * Sl) * 4);
    tu_rng r = {(uint64_t)(rank_ + 1)};
    tu_fill(&r, b->q, (int64_t)nq, 1.0f);
    tu_fill(&r, b->dO, (int64_t)nq, 1.0f);
    tu_fill(&r, b->k, (int64_t)nk, 1.0f);
    tu_fill(&r, b->v, (int64_t)nk, 1.0f);
    for (size_t i = 0; i < nq; i++) b->o[i] = b->dq[i] = 42.0f;
    for (size_t i = 0; i < nk; i++) b->dk[i] = b->dv[i] = 42.0f;
    for (int64_t i = 0; i < B * hq * Sl; i++) b->lse[i] = 42.0f;
}

static void bufs_free(bufs *b) {
    free(b->q); free(b->k); free(b->v); free(b->o); free(b->lse); free(b->dO); free(b->dq); free(b->dk); free(b->dv);
}

static int untouched(const float *p, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (p[i] != 42.0f) return 0;
    return 1;
}

typedef struct call {
    attn_sdpa_dims d;
    attn_sdpa_opts o;
    int bwd;
    attn_view q, k, v, out, dO, dq, dk, dv;
} call;

static void call_init(call *c, bufs *b, int64_t S, int64_t hq) {
    attn_sdpa_dims d = {B, S, S, hq, HKV, D, D};
    c->d = d;
    attn_sdpa_opts_init(&c->o);
    c->o.num_threads = 1;
    c->bwd = 0;
    const int64_t Sl = b->Sl;
    c->q = attn_view_bshd(b->q, Sl, hq, D); c->out = attn_view_bshd(b->o, Sl, hq, D);
    c->dO = attn_view_bshd(b->dO, Sl, hq, D); c->dq = attn_view_bshd(b->dq, Sl, hq, D);
    c->k = attn_view_bshd(b->k, Sl, HKV, D); c->v = attn_view_bshd(b->v, Sl, HKV, D);
    c->dk = attn_view_bshd(b->dk, Sl, HKV, D); c->dv = attn_view_bshd(b->dv, Sl, HKV, D);
}

static attn_status run(attn_mpi_ring *ring, call *c, bufs *b) {
    if (c->bwd)
        return attn_mpi_ring_bwd(ring, &c->d, c->q, c->k, c->v, c->out, c->dO, b->lse, c->dq, c->dk, c->dv, &c->o);
    return attn_mpi_ring_fwd(ring, &c->d, c->q, c->k, c->v, c->out, b->lse, &c->o);
}

/* Every rank must see `want`; the failing rank(s) a message containing
 * `needle`, the others one naming a rank. Outputs untouched everywhere. */
static void expect_all(const char *what, attn_status st, attn_status want, int i_failed, const char *needle,
                       const bufs *b, int64_t hq) {
    const char *msg = attn_mpi_last_error();
    CHECK(st == want, "[%s] rank %d: status %d (%s), want %d: %s", what, rank_, (int)st, attn_status_str(st),
          (int)want, msg);
    if (i_failed) CHECK(strstr(msg, needle) != NULL, "[%s] rank %d: message '%s' lacks '%s'", what, rank_, msg, needle);
    else CHECK(strstr(msg, needle) != NULL || strstr(msg, "rank ") != NULL, "[%s] rank %d: message '%s'", what,
               rank_, msg);
    const int64_t nq = B * b->Sl * hq * D, nk = B * b->Sl * HKV * D;
    CHECK(untouched(b->o, nq) && untouched(b->lse, B * hq * b->Sl) && untouched(b->dq, nq) && untouched(b->dk, nk) &&
              untouched(b->dv, nk),
          "[%s] rank %d: an output was written on error", what, rank_);
    int s = (int)st, mn, mx;
    MPI_Allreduce(&s, &mn, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&s, &mx, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    CHECK(mn == mx && mn != ATTN_OK, "[%s] ranks returned different statuses (%d .. %d)", what, mn, mx);
}

static void scenarios(attn_mpi_ring *ring) {
    const int64_t S = (int64_t)N * C;
    const int last = N - 1;
    bufs b;
    call c;
    attn_status st;
    int32_t kl[B] = {(int32_t)S, (int32_t)(S - 1)};

    /* ranks disagree on heads_q: the last rank passes 2 x HQ (its buffers sized for that) */
    bufs_alloc(&b, C, rank_ == last && N > 1 ? 2 * HQ : HQ);
    call_init(&c, &b, S, rank_ == last && N > 1 ? 2 * HQ : HQ);
    if (N > 1) {
        st = run(ring, &c, &b);
        expect_all("heads_q differs", st, ATTN_ERR_SHAPE, 1, "dims->heads_q", &b, c.d.heads_q);
    }
    bufs_free(&b);

    bufs_alloc(&b, C, HQ);
    call_init(&c, &b, S, HQ);
    if (N > 1) {
        c.o.causal = rank_ == 0;
        st = run(ring, &c, &b);
        expect_all("causal differs", st, ATTN_ERR_OPTION, 1, "opts->causal", &b, HQ);
        call_init(&c, &b, S, HQ);
        c.o.window_left = rank_ == last ? 3 : 4;
        st = run(ring, &c, &b);
        expect_all("window differs", st, ATTN_ERR_OPTION, 1, "opts->window_left", &b, HQ);
        call_init(&c, &b, S, HQ);
        c.bwd = 1;
        c.o.softcap = rank_ == last ? 5.0f : 0.0f;
        st = run(ring, &c, &b);
        expect_all("softcap differs (bwd)", st, ATTN_ERR_OPTION, 1, "opts->softcap", &b, HQ);
        call_init(&c, &b, S, HQ);
        int32_t kl2[B] = {kl[0], (int32_t)(kl[1] - (rank_ == 0))};
        c.o.key_lens = kl2;
        st = run(ring, &c, &b);
        expect_all("key_lens values differ", st, ATTN_ERR_OPTION, 1, "key_lens", &b, HQ);
        call_init(&c, &b, S, HQ);
        c.bwd = rank_ == 0; /* fwd on the others */
        st = run(ring, &c, &b);
        expect_all("fwd vs bwd", st, ATTN_ERR_STATE, 1, "the call", &b, HQ);
        call_init(&c, &b, S, HQ);
        c.d.batch = rank_ == last ? 1 : B;
        st = run(ring, &c, &b);
        expect_all("batch differs", st, ATTN_ERR_SHAPE, 1, "dims->batch", &b, HQ);
    }
    /* S that does not split over this communicator */
    call_init(&c, &b, S + 1, HQ);
    if (N > 1) {
        st = run(ring, &c, &b);
        expect_all("S % N != 0", st, ATTN_ERR_SHAPE, 1, "does not split", &b, HQ);
    }
    /* a NULL tensor on the last rank (its own message; the others name it) */
    call_init(&c, &b, S, HQ);
    if (rank_ == last) c.k.data = NULL;
    st = run(ring, &c, &b);
    expect_all("NULL k on one rank", st, ATTN_ERR_NULL, rank_ == last, rank_ == last ? "k" : "refused", &b, HQ);
    call_init(&c, &b, S, HQ);
    c.bwd = 1;
    if (rank_ == 0) c.dq.stride_s = -1;
    st = run(ring, &c, &b);
    expect_all("bad stride on rank 0", st, ATTN_ERR_STRIDE, rank_ == 0, rank_ == 0 ? "stride" : "refused", &b, HQ);
    /* unsupported over the ring (everywhere) */
    call_init(&c, &b, S, HQ);
    c.o.dropout_p = 0.1f;
    st = run(ring, &c, &b);
    expect_all("dropout", st, ATTN_ERR_UNSUPPORTED, 1, "dropout", &b, HQ);
    call_init(&c, &b, S, HQ);
    uint8_t m[1] = {1};
    c.o.mask_kind = ATTN_MASK_BOOL;
    c.o.mask = m;
    st = run(ring, &c, &b);
    expect_all("mask", st, ATTN_ERR_UNSUPPORTED, 1, "mask", &b, HQ);
    call_init(&c, &b, S, HQ);
    c.o.align = ATTN_ALIGN_BOTTOM_RIGHT;
    c.o.key_lens = kl;
    st = run(ring, &c, &b);
    expect_all("bottom-right + key_lens", st, ATTN_ERR_UNSUPPORTED, 1, "bottom-right", &b, HQ);
    call_init(&c, &b, S, HQ);
    c.d.seq_k = S / 2;
    st = run(ring, &c, &b);
    expect_all("seq_q != seq_k", st, ATTN_ERR_SHAPE, 1, "seq_k", &b, HQ);
    call_init(&c, &b, S, HQ);
    c.o.key_lens = kl;
    kl[1] = (int32_t)S + 1;
    st = run(ring, &c, &b);
    expect_all("key_lens > S", st, ATTN_ERR_SHAPE, 1, "key_lens[1]", &b, HQ);
    kl[1] = (int32_t)(S - 1);

    /* the ring still works afterwards: no stray message, same state */
    call_init(&c, &b, S, HQ);
    c.o.causal = 1;
    c.o.key_lens = kl;
    st = run(ring, &c, &b);
    CHECK(st == ATTN_OK, "valid fwd after the errors, rank %d: %s", rank_, attn_mpi_last_error());
    c.bwd = 1;
    st = run(ring, &c, &b);
    CHECK(st == ATTN_OK, "valid bwd after the errors, rank %d: %s", rank_, attn_mpi_last_error());
    CHECK(!untouched(b.o, 1) && !untouched(b.dk, 1), "valid calls must write their outputs");
    bufs_free(&b);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_size(MPI_COMM_WORLD, &N);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    attn_mpi_ring *ring = NULL;
    /* layouts that disagree: an error everywhere, no ring */
    if (N > 1) {
        attn_status st = attn_mpi_ring_create(&ring, MPI_COMM_WORLD, rank_ == 0 ? ATTN_MPI_ZIGZAG : ATTN_MPI_CONTIGUOUS);
        CHECK(st == ATTN_ERR_OPTION && ring == NULL, "create with disagreeing layouts: %d %s", (int)st,
              attn_mpi_last_error());
    }
    CHECK(attn_mpi_ring_create(&ring, MPI_COMM_WORLD, 7) == ATTN_ERR_OPTION, "layout 7 accepted");
    CHECK(attn_mpi_ring_create(NULL, MPI_COMM_WORLD, 0) == ATTN_ERR_NULL, "NULL out accepted");
    attn_status st = attn_mpi_ring_create(&ring, MPI_COMM_WORLD, ATTN_MPI_CONTIGUOUS);
    CHECK(st == ATTN_OK, "create: %s", attn_mpi_last_error());
    if (st == ATTN_OK) scenarios(ring);
    attn_mpi_ring_free(ring);
    attn_mpi_ring_free(NULL);
    int fails = (int)tu_fail, tot = 0;
    MPI_Allreduce(&fails, &tot, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int rc = test_summary(rank_ == 0 ? "test_mpi_badinput (rank 0)" : "test_mpi_badinput (rank > 0)");
    MPI_Finalize();
    return rc != 0 || tot != 0;
}
