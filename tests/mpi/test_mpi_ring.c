/* SPDX-License-Identifier: MIT */
/* test_mpi_ring.c — ring attention over MPI vs the single-process kernels and
 * the float64 reference (run by tests/mpi/run.sh under mpirun -np 1..4).
 *
 * Every rank builds the same global problem (seeded), takes its shard
 * (contiguous or zigzag) and runs attn_mpi_ring_fwd / attn_mpi_ring_bwd. The
 * shards of o, lse, dq, dk, dv are gathered and rank 0 checks, per output:
 *   max|ring - ref64| <= 2 * max|naive fp32 - ref64| + 1e-6 cond + 1e-7 condA
 * (the parity criterion of test_sdpa_parity; the naive backward is fed the
 * ring's own o and lse), non-finite values (lse = -inf of fully padded
 * sequences) matching exactly; the single-process kernels are checked
 * against the same bound and their distance to the ring is reported.
 * Also: the forward with lse = NULL (and, without key_lens, bottom-right
 * alignment) gives the same o bits; with N = 1 (contiguous: a single block)
 * the ring equals the single-process kernels bit for bit (the backward in
 * their bwd_fast mode, the one the ring's blocks use);
 * a second run gives identical bits on every rank (determinism); with a
 * causal or windowed mask on N >= 2 blocks are skipped and pieces are not
 * sent; bytes and steps are consistent.
 * Cases: contiguous and zigzag x causal / not, GQA, Dv != D, key padding,
 * sliding windows (causal and two-sided), ALiBi + softcap, D + Dv > 256,
 * q_pos_offset. */
#include "attn_mpi.h"
#include "sdpa_cases.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int N, rank_;

typedef struct cfg {
    const char *name;
    int64_t B, S, Hq, Hkv, D, Dv;
    int causal;
    int64_t wl, wr;
    int pad;      /* key_lens: sequence b keeps S - pad*(b+1) keys (b = last: 0 keys if pad < 0) */
    int alibi_softcap; /* 1: ALiBi; 2: ALiBi + softcap */
    int64_t qpos;
} cfg;

static const cfg cases[] = {
    {"plain", 2, 48, 2, 2, 16, 16, 0, -1, -1, 0, 0, 0},
    {"causal", 2, 48, 2, 2, 16, 16, 1, -1, -1, 0, 0, 0},
    {"causal gqa dv", 1, 72, 4, 2, 16, 24, 1, -1, -1, 0, 0, 0},
    {"mqa", 2, 48, 3, 1, 8, 8, 0, -1, -1, 0, 0, 0},
    {"padding", 2, 48, 4, 2, 16, 16, 0, -1, -1, 7, 0, 0},
    {"causal padding", 3, 48, 2, 1, 16, 16, 1, -1, -1, 13, 0, 0},
    {"fully padded sequence", 2, 48, 2, 2, 8, 8, 1, -1, -1, -1, 0, 0},
    {"causal window", 2, 48, 4, 2, 16, 16, 1, 5, -1, 0, 0, 0},
    {"two-sided window", 2, 48, 2, 2, 16, 16, 0, 4, 3, 0, 0, 0},
    {"causal window padding gqa", 2, 96, 4, 2, 16, 8, 1, 9, -1, 5, 0, 0},
    {"alibi causal", 1, 48, 4, 4, 16, 16, 1, -1, -1, 0, 1, 0},
    {"alibi softcap causal", 2, 48, 4, 2, 16, 16, 1, -1, -1, 0, 2, 0},
    {"D + Dv > 256, window", 1, 48, 2, 1, 128, 160, 1, 13, -1, 0, 0, 0},
    {"q_pos_offset causal", 2, 48, 2, 2, 16, 16, 1, 11, -1, 0, 0, -6},
};

/* global token of local row l of rank rr (pieces of c tokens) */
static int64_t global_row(int layout, int rr, int64_t c, int64_t l) {
    int p = (int)(l / c);
    int64_t chunk = p == 0 ? rr : 2 * (int64_t)N - 1 - rr;
    return (layout == ATTN_MPI_ZIGZAG ? chunk : rr) * c + l % c;
}

/* local (B, Sl, H, Dh) shard of a global contiguous (B, S, H, Dh) tensor */
static void take_rows(const float *g, int64_t B, int64_t S, int64_t H, int64_t Dh, int layout, float *loc) {
    const int64_t Sl = S / N, c = layout == ATTN_MPI_ZIGZAG ? Sl / 2 : Sl;
    for (int64_t b = 0; b < B; b++)
        for (int64_t l = 0; l < Sl; l++)
            memcpy(loc + (b * Sl + l) * H * Dh, g + (b * S + global_row(layout, rank_, c, l)) * H * Dh,
                   (size_t)(H * Dh) * sizeof(float));
}

/* all ranks' (B, Sl, H, Dh) shards -> global (B, S, H, Dh) */
static void gather_rows(const float *loc, int64_t B, int64_t S, int64_t H, int64_t Dh, int layout, float *g) {
    const int64_t Sl = S / N, c = layout == ATTN_MPI_ZIGZAG ? Sl / 2 : Sl, n = B * Sl * H * Dh;
    float *all = malloc((size_t)(n * N + 1) * sizeof(float));
    MPI_Allgather(loc, (int)n, MPI_FLOAT, all, (int)n, MPI_FLOAT, MPI_COMM_WORLD);
    for (int rr = 0; rr < N; rr++)
        for (int64_t b = 0; b < B; b++)
            for (int64_t l = 0; l < Sl; l++)
                memcpy(g + (b * S + global_row(layout, rr, c, l)) * H * Dh, all + rr * n + (b * Sl + l) * H * Dh,
                       (size_t)(H * Dh) * sizeof(float));
    free(all);
}

/* all ranks' lse (B, H, Sl) -> global (B, H, S) */
static void gather_lse(const float *loc, int64_t B, int64_t S, int64_t H, int layout, float *g) {
    const int64_t Sl = S / N, c = layout == ATTN_MPI_ZIGZAG ? Sl / 2 : Sl, n = B * H * Sl;
    float *all = malloc((size_t)(n * N + 1) * sizeof(float));
    MPI_Allgather(loc, (int)n, MPI_FLOAT, all, (int)n, MPI_FLOAT, MPI_COMM_WORLD);
    for (int rr = 0; rr < N; rr++)
        for (int64_t bh = 0; bh < B * H; bh++)
            for (int64_t l = 0; l < Sl; l++) g[bh * S + global_row(layout, rr, c, l)] = all[rr * n + bh * Sl + l];
    free(all);
}

typedef struct shard {
    float *q, *k, *v, *dO;          /* inputs */
    float *o, *lse, *dq, *dk, *dv;  /* ring outputs */
} shard;

static int run_ring(attn_mpi_ring *ring, const attn_sdpa_dims *d, const attn_sdpa_opts *o, shard *s) {
    const int64_t Sl = d->seq_q / N;
    attn_view q = attn_view_bshd(s->q, Sl, d->heads_q, d->head_dim), k = attn_view_bshd(s->k, Sl, d->heads_kv, d->head_dim);
    attn_view v = attn_view_bshd(s->v, Sl, d->heads_kv, d->head_dim_v), out = attn_view_bshd(s->o, Sl, d->heads_q, d->head_dim_v);
    attn_status st = attn_mpi_ring_fwd(ring, d, q, k, v, out, s->lse, o);
    CHECK(st == ATTN_OK, "rank %d ring fwd: %s", rank_, attn_mpi_last_error());
    if (st) return 0;
    st = attn_mpi_ring_bwd(ring, d, q, k, v, out, attn_view_bshd(s->dO, Sl, d->heads_q, d->head_dim_v), s->lse,
                           attn_view_bshd(s->dq, Sl, d->heads_q, d->head_dim),
                           attn_view_bshd(s->dk, Sl, d->heads_kv, d->head_dim),
                           attn_view_bshd(s->dv, Sl, d->heads_kv, d->head_dim_v), o);
    CHECK(st == ATTN_OK, "rank %d ring bwd: %s", rank_, attn_mpi_last_error());
    return st == ATTN_OK;
}

static void shard_alloc(shard *s, const attn_sdpa_dims *d) {
    const int64_t Sl = d->seq_q / N, B = d->batch;
    const int64_t nq = B * Sl * d->heads_q * d->head_dim, nk = B * Sl * d->heads_kv * d->head_dim;
    const int64_t nv = B * Sl * d->heads_kv * d->head_dim_v, no = B * Sl * d->heads_q * d->head_dim_v;
    s->q = malloc((size_t)nq * 4); s->k = malloc((size_t)nk * 4); s->v = malloc((size_t)nv * 4);
    s->dO = malloc((size_t)no * 4); s->o = malloc((size_t)no * 4); s->lse = malloc((size_t)(B * d->heads_q * Sl) * 4);
    s->dq = malloc((size_t)nq * 4); s->dk = malloc((size_t)nk * 4); s->dv = malloc((size_t)nv * 4);
}

static void shard_free(shard *s) {
    free(s->q); free(s->k); free(s->v); free(s->dO); free(s->o); free(s->lse); free(s->dq); free(s->dk); free(s->dv);
}

static int same_bits_all(const shard *a, const shard *b, const attn_sdpa_dims *d) {
    const int64_t Sl = d->seq_q / N, B = d->batch;
    int ok = sc_bits_equal(a->o, b->o, B * Sl * d->heads_q * d->head_dim_v) &&
             sc_bits_equal(a->lse, b->lse, B * d->heads_q * Sl) &&
             sc_bits_equal(a->dq, b->dq, B * Sl * d->heads_q * d->head_dim) &&
             sc_bits_equal(a->dk, b->dk, B * Sl * d->heads_kv * d->head_dim) &&
             sc_bits_equal(a->dv, b->dv, B * Sl * d->heads_kv * d->head_dim_v);
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return all;
}

static void check_case(const cfg *cf, int layout, attn_mpi_ring *ring, uint64_t seed) {
    attn_sdpa_dims d = {cf->B, cf->S, cf->S, cf->Hq, cf->Hkv, cf->D, cf->Dv};
    int32_t key_lens[8];
    float alibi[8];
    attn_sdpa_opts o;
    attn_sdpa_opts_init(&o);
    o.causal = cf->causal;
    o.window_left = cf->wl;
    o.window_right = cf->wr;
    o.q_pos_offset = cf->qpos;
    if (cf->pad) {
        for (int64_t b = 0; b < cf->B; b++) {
            int64_t l = cf->pad > 0 ? cf->S - cf->pad * (b + 1) : (b == cf->B - 1 ? 0 : cf->S);
            key_lens[b] = (int32_t)(l < 0 ? 0 : l);
        }
        o.key_lens = key_lens;
    }
    if (cf->alibi_softcap) {
        for (int64_t h = 0; h < cf->Hq; h++) alibi[h] = (float)pow(2.0, -2.0 * (double)(h + 1));
        o.alibi_slopes = alibi;
        if (cf->alibi_softcap == 2) o.softcap = 8.0f;
    }
    tu_rng r = {seed};
    sc_case c;
    sc_case_init(&c, &d, &o, &r, 1.0);
    const int64_t B = cf->B, S = cf->S;
    const int64_t nq = sc_nq(&c), nk = sc_nk(&c), nv = sc_nv(&c), no = sc_no(&c), nl = c.nlse;
    float *gq = malloc((size_t)nq * 4), *gk = malloc((size_t)nk * 4), *gv = malloc((size_t)nv * 4);
    float *gdO = malloc((size_t)no * 4);
    sc_to_float(&c.q, gq); sc_to_float(&c.k, gk); sc_to_float(&c.v, gv); sc_to_float(&c.dO, gdO);
    shard s, s2;
    shard_alloc(&s, &d);
    shard_alloc(&s2, &d);
    take_rows(gq, B, S, cf->Hq, cf->D, layout, s.q);
    take_rows(gk, B, S, cf->Hkv, cf->D, layout, s.k);
    take_rows(gv, B, S, cf->Hkv, cf->Dv, layout, s.v);
    take_rows(gdO, B, S, cf->Hq, cf->Dv, layout, s.dO);
    memcpy(s2.q, s.q, (size_t)(nq / N) * 4); memcpy(s2.k, s.k, (size_t)(nk / N) * 4);
    memcpy(s2.v, s.v, (size_t)(nv / N) * 4); memcpy(s2.dO, s.dO, (size_t)(no / N) * 4);

    int ok = run_ring(ring, &d, &o, &s);
    attn_mpi_stats st1;
    attn_mpi_ring_stats(ring, &st1); /* of the backward */
    ok &= run_ring(ring, &d, &o, &s2);
    { /* inference (lse = NULL) and bottom-right alignment (= top-left when Sq = Sk, no key_lens): same o bits */
        const int64_t Sl = S / N;
        attn_sdpa_opts ob = o;
        if (!o.key_lens) ob.align = ATTN_ALIGN_BOTTOM_RIGHT;
        float *o3 = malloc((size_t)(no / N) * 4);
        attn_status st3 = attn_mpi_ring_fwd(ring, &d, attn_view_bshd(s2.q, Sl, cf->Hq, cf->D),
                                            attn_view_bshd(s2.k, Sl, cf->Hkv, cf->D),
                                            attn_view_bshd(s2.v, Sl, cf->Hkv, cf->Dv),
                                            attn_view_bshd(o3, Sl, cf->Hq, cf->Dv), NULL, &ob);
        CHECK(st3 == ATTN_OK && sc_bits_equal(o3, s.o, no / N), "rank %d %s: fwd with lse = NULL%s differs: %s", rank_,
              cf->name, o.key_lens ? "" : ", bottom-right", attn_mpi_last_error());
        free(o3);
    }
    int all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    const char *lay = layout == ATTN_MPI_ZIGZAG ? "zigzag" : "contiguous";
    if (all_ok) {
        CHECK(same_bits_all(&s, &s2, &d), "%s/%s N=%d: second run differs (not deterministic)", cf->name, lay, N);
        /* gather the ring results */
        float *ro = malloc((size_t)no * 4), *rl = malloc((size_t)nl * 4), *rdq = malloc((size_t)nq * 4);
        float *rdk = malloc((size_t)nk * 4), *rdv = malloc((size_t)nv * 4);
        gather_rows(s.o, B, S, cf->Hq, cf->Dv, layout, ro);
        gather_lse(s.lse, B, S, cf->Hq, layout, rl);
        gather_rows(s.dq, B, S, cf->Hq, cf->D, layout, rdq);
        gather_rows(s.dk, B, S, cf->Hkv, cf->D, layout, rdk);
        gather_rows(s.dv, B, S, cf->Hkv, cf->Dv, layout, rdv);
        int64_t skipped = st1.blocks_skipped, nosend = st1.sends_skipped, tot_skip = 0, tot_nosend = 0;
        MPI_Allreduce(&skipped, &tot_skip, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
        MPI_Allreduce(&nosend, &tot_nosend, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
        if (rank_ == 0) {
            double *xo = malloc((size_t)no * 8), *xl = malloc((size_t)nl * 8), *xdq = malloc((size_t)nq * 8);
            double *xdk = malloc((size_t)nk * 8), *xdv = malloc((size_t)nv * 8);
            float *fo = malloc((size_t)no * 4), *fl = malloc((size_t)nl * 4), *fdq = malloc((size_t)nq * 4);
            float *fdk = malloc((size_t)nk * 4), *fdv = malloc((size_t)nv * 4);
            float *so = malloc((size_t)no * 4), *sl = malloc((size_t)nl * 4), *sdq = malloc((size_t)nq * 4);
            float *sdk = malloc((size_t)nk * 4), *sdv = malloc((size_t)nv * 4);
            float *fsdq = malloc((size_t)nq * 4), *fsdk = malloc((size_t)nk * 4), *fsdv = malloc((size_t)nv * 4);
            CHECK(sc_ref_fwd(&c, xo, xl) == ATTN_OK && sc_ref_bwd(&c, xdq, xdk, xdv) == ATTN_OK, "ref");
            double cond[5], condA[5];
            sc_ref_cond(&c, cond, condA);
            sc_naive_fwd(&c, fo, fl);
            sc_naive_bwd(&c, ro, rl, fdq, fdk, fdv);
            /* the single-process kernels over the whole sequence */
            attn_view vq = attn_view_bshd(gq, S, cf->Hq, cf->D), vk = attn_view_bshd(gk, S, cf->Hkv, cf->D);
            attn_view vv = attn_view_bshd(gv, S, cf->Hkv, cf->Dv), vo = attn_view_bshd(so, S, cf->Hq, cf->Dv);
            CHECK(attn_sdpa_fwd(&d, vq, vk, vv, vo, sl, &o, NULL, 0) == ATTN_OK, "single fwd: %s", attn_last_error());
            CHECK(attn_sdpa_bwd(&d, vq, vk, vv, vo, attn_view_bshd(gdO, S, cf->Hq, cf->Dv), sl,
                                attn_view_bshd(sdq, S, cf->Hq, cf->D), attn_view_bshd(sdk, S, cf->Hkv, cf->D),
                                attn_view_bshd(sdv, S, cf->Hkv, cf->Dv), &o, NULL, 0) == ATTN_OK,
                  "single bwd: %s", attn_last_error());
            /* the same in the ring blocks' mode (bwd_fast: the global lse and o as given) */
            attn_sdpa_opts of = o;
            of.bwd_fast = 1;
            CHECK(attn_sdpa_bwd(&d, vq, vk, vv, vo, attn_view_bshd(gdO, S, cf->Hq, cf->Dv), sl,
                                attn_view_bshd(fsdq, S, cf->Hq, cf->D), attn_view_bshd(fsdk, S, cf->Hkv, cf->D),
                                attn_view_bshd(fsdv, S, cf->Hkv, cf->Dv), &of, NULL, 0) == ATTN_OK,
                  "single bwd (bwd_fast): %s", attn_last_error());
            static const char *names[5] = {"o", "lse", "dq", "dk", "dv"};
            const double *ref[5] = {xo, xl, xdq, xdk, xdv};
            const float *ring_[5] = {ro, rl, rdq, rdk, rdv}, *naive[5] = {fo, fl, fdq, fdk, fdv};
            const float *single[5] = {so, sl, sdq, sdk, sdv}, *single_fast[5] = {so, sl, fsdq, fsdk, fsdv};
            const int64_t cnt[5] = {no, nl, nq, nk, nv};
            printf("  %-26s %-10s N=%d:", cf->name, lay, N);
            for (int w = 0; w < 5; w++) {
                sc_err er = sc_err_f(ref[w], ring_[w], cnt[w]), en = sc_err_f(ref[w], naive[w], cnt[w]);
                sc_err es = sc_err_f(ref[w], single[w], cnt[w]);
                double bound = 2.0 * en.max_abs + 1e-6 * cond[w] + 1e-7 * condA[w] + 1e-30;
                CHECK(er.max_abs <= bound && er.bad_nonfinite == 0,
                      "%s/%s N=%d %s: ring err %.3g > bound %.3g (naive %.3g), non-finite mismatches %lld", cf->name,
                      lay, N, names[w], er.max_abs, bound, en.max_abs, (long long)er.bad_nonfinite);
                CHECK(es.max_abs <= bound && es.bad_nonfinite == 0, "%s %s: single-process err %.3g > bound %.3g",
                      cf->name, names[w], es.max_abs, bound);
                if (N == 1 && layout == ATTN_MPI_CONTIGUOUS) /* one block: merged with nothing */
                    CHECK(sc_bits_equal(ring_[w], single_fast[w], cnt[w]),
                          "%s/%s N=1 %s: ring must equal the single-process kernel (backward: bwd_fast) bit for bit",
                          cf->name, lay, names[w]);
                printf(" %s %.2f", names[w], er.max_abs / bound);
            }
            printf("  (err/bound) skipped blocks %lld, unsent pieces %lld\n", (long long)tot_skip,
                   (long long)tot_nosend);
            /* every (query chunk, key chunk) pair no query of which sees a key
             * of the other (brute force over the mask) is skipped, exactly once */
            const int64_t nch = layout == ATTN_MPI_ZIGZAG ? 2 * N : N, cl = S / nch;
            int64_t invisible = 0;
            for (int64_t qc = 0; qc < nch; qc++)
                for (int64_t kc = 0; kc < nch; kc++) {
                    int vis = 0;
                    for (int64_t b = 0; b < B && !vis; b++)
                        for (int64_t i = qc * cl; i < (qc + 1) * cl && !vis; i++)
                            for (int64_t j = kc * cl; j < (kc + 1) * cl && !vis; j++) vis = sc_visible(&c, b, 0, i, j);
                    invisible += !vis;
                }
            CHECK(tot_skip == invisible, "%s/%s N=%d: %lld blocks skipped, %lld invisible", cf->name, lay, N,
                  (long long)tot_skip, (long long)invisible);
            if (N >= 2 && cf->causal && layout == ATTN_MPI_CONTIGUOUS)
                CHECK(tot_nosend > 0, "%s/%s N=%d: causal: pieces must not travel past the last rank needing them",
                      cf->name, lay, N);
            free(xo); free(xl); free(xdq); free(xdk); free(xdv); free(fo); free(fl); free(fdq); free(fdk); free(fdv);
            free(so); free(sl); free(sdq); free(sdk); free(sdv); free(fsdq); free(fsdk); free(fsdv);
        }
        free(ro); free(rl); free(rdq); free(rdk); free(rdv);
    }
    shard_free(&s);
    shard_free(&s2);
    free(gq); free(gk); free(gv); free(gdO);
    sc_case_free(&c);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_size(MPI_COMM_WORLD, &N);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    if (rank_ == 0) printf("test_mpi_ring: %d rank(s)\n", N);
    for (int layout = 0; layout < 2; layout++) {
        attn_mpi_ring *ring = NULL;
        attn_status st = attn_mpi_ring_create(&ring, MPI_COMM_WORLD, layout);
        CHECK(st == ATTN_OK, "create: %s", attn_mpi_last_error());
        if (st) break;
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_case(&cases[i], layout, ring, 1000 + i);
        attn_mpi_ring_free(ring);
    }
    int fails = (int)tu_fail, tot = 0;
    MPI_Allreduce(&fails, &tot, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int rc = test_summary(rank_ == 0 ? "test_mpi_ring (rank 0)" : "test_mpi_ring (rank > 0)");
    MPI_Finalize();
    return rc != 0 || tot != 0;
}
