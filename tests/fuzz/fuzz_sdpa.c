/* SPDX-License-Identifier: MIT */
/* fuzz_sdpa.c — libFuzzer target for attn_sdpa_fwd / attn_sdpa_bwd (and the
 * workspace size queries), driven by fuzzed shapes, strides and options at
 * small sizes.
 *
 * The input decodes (tests/fuzz/fuzz_util.h reader: bytes past the end read
 * as 0) into dims (B <= 3, S <= 40, H <= 4, D <= 40, rarely 0, negative or
 * huge), per-tensor strides (contiguous, BHSD, padded, broadcast, arbitrary,
 * overflowing), every attn_sdpa_opts field, a workspace mode and tensor data.
 * The float tensors (q k v o lse dO dq dk dv) live in ONE arena sized exactly
 * to the furthest view, either side by side or at fuzzed (overlapping)
 * offsets; every arena byte outside the element lattices of the views is
 * ASan-poisoned, so a read or write of anything the kernel may not touch is
 * reported. Option arrays (mask, key_lens, cu_seqlens, alibi) are exact
 * allocations of their own.
 *
 * Invariants:
 *  - no crash, no sanitizer report, no hang;
 *  - an error status is a valid attn_status, attn_last_error() is non-empty
 *    and no output element changed; inputs never change;
 *  - a call made only of valid arguments (no deliberately bad value, views
 *    side by side) succeeds;
 *  - on success, when every input and option is finite and moderate (for the
 *    backward: as it reads them, after the forward's writes): no NaN
 *    or Inf in o / dq / dk / dv, lse is never NaN or +Inf; a query row with
 *    no visible key (recomputed here from the documented position model)
 *    has o = 0, lse = -inf and dq = 0; a key no query sees has dk = dv = 0;
 *    a visible row has a finite lse;
 *  - (optionally) the forward is bit-identical for another thread count.
 * tests/test_fuzz_replay.c includes this file (FUZZ_NO_MAIN, FUZZ_CHECK). */
#include "attn.h"
#include "fuzz_util.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_CHECK
#define FUZZ_CHECK(c) \
    do { if (!(c)) { fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)
#endif

#define SF_CAP ((int64_t)1 << 17)    /* arena elements */
#define SF_WORK ((int64_t)200000)   /* B*Hq*Sq*Sk*(D+Dv) budget of one call */

enum { SF_Q, SF_K, SF_V, SF_O, SF_LSE, SF_DO, SF_DQ, SF_DK, SF_DV, SF_NT };
/* sf_case.mark[e]: bit (1 << tensor) for every view whose lattice holds element e */
#define SF_BIT(k) (1u << (k))
#define SF_IN_F (SF_BIT(SF_Q) | SF_BIT(SF_K) | SF_BIT(SF_V))
#define SF_OUT_F (SF_BIT(SF_O) | SF_BIT(SF_LSE))
#define SF_IN_B (SF_IN_F | SF_OUT_F | SF_BIT(SF_DO))
#define SF_OUT_B (SF_BIT(SF_DQ) | SF_BIT(SF_DK) | SF_BIT(SF_DV))

typedef struct sf_tensor {
    int64_t n[4];     /* Bn, S, H, Dl (lse: 1, 1, 1, nlse) */
    int64_t s[3];     /* stride_b, stride_s, stride_h */
    int64_t numel;    /* -1: overflow */
    int64_t ext;      /* element extent, -1: overflow */
    int64_t off;
    int placed;       /* has exact memory in the arena */
    int sure_fail;    /* validation must refuse it (negative stride, overflow, NULL data) */
    int too_big;      /* valid-looking but larger than the arena cap: skip the calls */
    int null_data;
    int clean;
    float *data;
} sf_tensor;

typedef struct sf_case {
    attn_sdpa_dims d;
    attn_sdpa_opts o;
    int small;              /* dims valid and tiny: the calls may run */
    int dims_bad;           /* dims certainly invalid */
    int opt_bad;            /* an option certainly invalid */
    int clean;              /* every argument valid: the call must succeed */
    int finite;             /* inputs / options finite and moderate */
    int mask_sane;          /* no NaN / +Inf in an additive mask */
    int64_t Dv, maxq, maxk;
    int varlen;
    int32_t *cu_q, *cu_k, *key_lens;
    float *alibi;
    void *mask;
    sf_tensor t[SF_NT];
    float *arena, *ref;
    uint16_t *mark;
    int64_t arena_n;
    int poisoned;
} sf_case;

static int64_t sf_mul(int64_t a, int64_t b) { /* saturating, for stride guesses */
    int64_t r;
    return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}
static int64_t sf_add(int64_t a, int64_t b) {
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

static void sf_strides(fz_in *r, sf_tensor *t, int output) {
    const int64_t H = t->n[2], S = t->n[1], Dl = t->n[3];
    unsigned m = fz_u8(r) % 16;
    int64_t sh = Dl, ss = sf_mul(H, Dl), sb = sf_mul(S, sf_mul(H, Dl));
    t->clean = 1;
    if (m >= 7 && m <= 8) { /* BHSD */
        ss = Dl; sh = sf_mul(S, Dl); sb = sf_mul(H, sh);
    } else if (m <= 11 && m >= 9) { /* padded */
        sh = sf_add(Dl, fz_u8(r) % 5);
        ss = sf_add(sf_mul(H, sh), fz_u8(r) % 5);
        sb = sf_add(sf_mul(S, ss), fz_u8(r) % 7);
    } else if (m == 12) { /* broadcast (fine for inputs, overlapping for outputs) */
        unsigned z = fz_u8(r);
        if (z & 1) sb = 0;
        if (z & 2) ss = 0;
        if (z & 4) sh = 0;
        if (output && (z & 7)) t->clean = 0;
    } else if (m == 13) { /* arbitrary small, possibly negative */
        sb = (int8_t)fz_u8(r); ss = (int8_t)fz_u8(r); sh = (int8_t)fz_u8(r);
        t->clean = 0;
    } else if (m == 14) { /* arbitrary non-negative, overlapping or interleaved */
        sh = fz_u8(r) % (Dl > 0 && Dl < 256 ? Dl + 2 : 2);
        ss = fz_u8(r) % 64;
        sb = fz_u16(r) % 2048;
        t->clean = 0;
    } else if (m == 15) { /* extreme */
        static const int64_t ex[8] = {INT64_MAX, INT64_MAX / 2, INT64_MIN, -1,
                                      (int64_t)1 << 40, (int64_t)1 << 61, INT64_MAX / 8, -((int64_t)1 << 40)};
        unsigned w = fz_u8(r);
        int64_t v = ex[w % 8];
        if ((w >> 3) % 3 == 0) sb = v;
        else if ((w >> 3) % 3 == 1) ss = v;
        else sh = v;
        t->clean = 0;
    }
    t->s[0] = sb; t->s[1] = ss; t->s[2] = sh;
    t->null_data = fz_u8(r) >= 250;
    if (t->null_data) t->clean = 0;
}

/* numel / extent / whether validation must refuse the view */
static void sf_measure(sf_tensor *t, int varlen_b) {
    int64_t nm = t->n[0];
    t->numel = -1;
    for (int i = 1; i < 4; i++)
        if (__builtin_mul_overflow(nm, t->n[i], &nm)) { t->sure_fail = 1; return; }
    if (nm > INT64_MAX / 8 || nm < 0) { t->sure_fail = 1; return; }
    t->numel = nm;
    if (nm == 0) { t->ext = 0; return; }
    if (t->null_data) { t->sure_fail = 1; return; }
    if ((!varlen_b && t->s[0] < 0) || t->s[1] < 0 || t->s[2] < 0) { t->sure_fail = 1; return; }
    t->ext = fz_extent(t->n[0], t->n[1], t->n[2], t->n[3], varlen_b ? 0 : t->s[0], t->s[1], t->s[2]);
    if (t->ext < 0) { t->sure_fail = 1; return; }
    if (t->ext > SF_CAP) { t->too_big = 1; return; }
    t->placed = 1;
}

/* calls fn(c, element offset of the start of each innermost run) for a placed view */
#define SF_FOR_RUNS(t, varlen_b, BODY)                                                              \
    for (int64_t b_ = 0; b_ < (t)->n[0]; b_++)                                                      \
        for (int64_t s_ = 0; s_ < (t)->n[1]; s_++)                                                  \
            for (int64_t h_ = 0; h_ < (t)->n[2]; h_++) {                                            \
                const int64_t run = (t)->off + ((varlen_b) ? 0 : b_ * (t)->s[0]) + s_ * (t)->s[1] + \
                                    h_ * (t)->s[2];                                                 \
                BODY                                                                                \
            }

FZ_NO_COV static int sf_row_visible(const sf_case *c, int64_t b, int64_t h, int64_t i, int64_t j, int64_t sq, int64_t sk) {
    int64_t kl = c->key_lens ? c->key_lens[b] : sk;
    int64_t p = i + (c->o.align == ATTN_ALIGN_BOTTOM_RIGHT ? kl - sq : 0);
    if (j >= kl) return 0;
    if (c->o.causal && j > p) return 0;
    int64_t wl = c->o.window_left, wr = c->o.window_right;
    if (wl >= 0 && wl < ((int64_t)1 << 41) && j < p - wl) return 0;
    if (wr >= 0 && wr < ((int64_t)1 << 41) && j > p + wr) return 0;
    if (c->o.mask_kind != ATTN_MASK_NONE && c->mask) {
        int64_t off = b * c->o.mask_stride_b + h * c->o.mask_stride_h + i * c->o.mask_stride_q + j;
        if (c->o.mask_kind == ATTN_MASK_BOOL) return ((const uint8_t *)c->mask)[off] != 0;
        return ((const float *)c->mask)[off] != -INFINITY;
    }
    return 1;
}

static float *sf_at(const sf_case *c, int k, int64_t b, int64_t row, int64_t h) {
    const sf_tensor *t = &c->t[k];
    return c->arena + t->off + (c->varlen ? 0 : b * t->s[0]) + row * t->s[1] + h * t->s[2];
}

/* after a successful forward (fwd = 1) or backward (fwd = 0): the mask-model oracle */
FZ_NO_COV static void sf_check_rows(const sf_case *c, int fwd, const float *lse) {
    const int64_t B = c->d.batch, Hq = c->d.heads_q, Hkv = c->d.heads_kv, G = Hq / Hkv, D = c->d.head_dim;
    const int64_t Dv = c->Dv;
    int64_t q0 = 0, k0 = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t sq = c->varlen ? c->cu_q[b + 1] - c->cu_q[b] : c->d.seq_q;
        int64_t sk = c->varlen ? c->cu_k[b + 1] - c->cu_k[b] : c->d.seq_k;
        if (c->varlen) { q0 = c->cu_q[b]; k0 = c->cu_k[b]; }
        /* keys seen by some query of each kv head (bwd) */
        unsigned char seen[4][64];
        memset(seen, 0, sizeof seen);
        for (int64_t h = 0; h < Hq; h++)
            for (int64_t i = 0; i < sq; i++) {
                int64_t cnt = 0;
                for (int64_t j = 0; j < sk; j++)
                    if (sf_row_visible(c, b, h, i, j, sq, sk)) { cnt++; seen[h / G][j] = 1; }
                if (fwd) {
                    const float *orow = sf_at(c, SF_O, b, q0 + i, h);
                    float l = 0.0f;
                    if (lse) l = lse[c->varlen ? h * c->d.seq_q + q0 + i : (b * Hq + h) * c->d.seq_q + i];
                    if (cnt == 0) {
                        for (int64_t x = 0; x < Dv; x++) FUZZ_CHECK(orow[x] == 0.0f);
                        if (lse) FUZZ_CHECK(l == -INFINITY);
                    } else if (c->finite) {
                        for (int64_t x = 0; x < Dv; x++) FUZZ_CHECK(isfinite(orow[x]));
                        if (lse) FUZZ_CHECK(isfinite(l));
                    }
                } else if (c->finite) {
                    const float *dq = sf_at(c, SF_DQ, b, q0 + i, h);
                    for (int64_t x = 0; x < D; x++) FUZZ_CHECK(isfinite(dq[x]) && (cnt > 0 || dq[x] == 0.0f));
                }
            }
        if (!fwd && c->finite)
            for (int64_t hk = 0; hk < Hkv; hk++)
                for (int64_t j = 0; j < sk; j++) {
                    const float *dk = sf_at(c, SF_DK, b, k0 + j, hk), *dv = sf_at(c, SF_DV, b, k0 + j, hk);
                    for (int64_t x = 0; x < D; x++) FUZZ_CHECK(isfinite(dk[x]) && (seen[hk][j] || dk[x] == 0.0f));
                    for (int64_t x = 0; x < Dv; x++) FUZZ_CHECK(isfinite(dv[x]) && (seen[hk][j] || dv[x] == 0.0f));
                }
    }
}

/* arena elements that must equal `ref`: every legal element after an error;
 * after a success, every one outside the outputs (outbits), and no output
 * element may belong to an input or to a second output (the call should
 * have refused such views with ATTN_ERR_ALIAS / ATTN_ERR_STRIDE) */
FZ_NO_COV static void sf_check_unchanged(const sf_case *c, unsigned inbits, unsigned outbits, int all) {
    if (!c->poisoned) { /* nothing marked: compare the whole arena on error */
        if (all) FUZZ_CHECK(memcmp(c->arena, c->ref, (size_t)c->arena_n * sizeof(float)) == 0);
        return;
    }
    for (int64_t e = 0; e < c->arena_n; e++) {
        const unsigned m = c->mark[e], outs = m & outbits;
        if (!m) continue;
        if (all || !outs) FUZZ_CHECK(memcmp(&c->arena[e], &c->ref[e], sizeof(float)) == 0);
        if (!all && outs) FUZZ_CHECK((outs & (outs - 1)) == 0 && !(m & inbits));
    }
}

FZ_NO_COV static void sf_snapshot(sf_case *c) {
    if (!c->poisoned) { memcpy(c->ref, c->arena, (size_t)c->arena_n * sizeof(float)); return; }
    for (int64_t e = 0; e < c->arena_n; e++)
        if (c->mark[e]) c->ref[e] = c->arena[e];
}

static void sf_check_status(attn_status s) {
    FUZZ_CHECK(s < 0 && s > -ATTN_STATUS_COUNT);
    FUZZ_CHECK(attn_last_error()[0] != 0);
    FUZZ_CHECK(attn_status_str(s) != NULL);
}

FZ_NO_COV static void sf_fill(float *x, int64_t n, uint64_t seed, float amp) {
    for (int64_t e = 0; e < n; e++) x[e] = fz_unif(&seed, -amp, amp);
}

/* bool: nonzero (1..3) with probability dn / 256; additive: finite in [-4, 4) or -inf */
FZ_NO_COV static void sf_fill_mask(void *mask, int64_t ext, size_t es, uint64_t ms, unsigned dn) {
    for (int64_t e = 0; e < ext; e++) {
        unsigned x = (unsigned)(fz_rng(&ms) & 255);
        if (es == 1) ((uint8_t *)mask)[e] = x < dn ? (uint8_t)(1 + x % 3) : 0;
        else ((float *)mask)[e] = x < dn ? fz_unif(&ms, -4.0f, 4.0f) : -INFINITY;
    }
}

FZ_NO_COV static void sf_mark_view(uint16_t *mark, const sf_tensor *t, int vl, unsigned bit) {
    SF_FOR_RUNS(t, vl, { for (int64_t x = 0; x < t->n[3]; x++) mark[run + x] |= (uint16_t)bit; })
}

FZ_NO_COV static void sf_unpoison_marked(const sf_case *c) {
    for (int64_t e = 0; e < c->arena_n;) { /* unpoison maximal marked spans */
        if (!c->mark[e]) { e++; continue; }
        int64_t f = e;
        while (f < c->arena_n && c->mark[f]) f++;
        FZ_UNPOISON(&c->arena[e], (size_t)(f - e) * sizeof(float));
        e = f;
    }
}

/* FUZZ_SDPA_DEBUG=1: print the decoded case (triage of a reproducer) */
static void sf_dump(const sf_case *c, const attn_view *V) {
    static const char *names[SF_NT] = {"q", "k", "v", "o", "lse", "dO", "dq", "dk", "dv"};
    const attn_sdpa_opts *o = &c->o;
    fprintf(stderr, "dims B=%lld Sq=%lld Sk=%lld Hq=%lld Hkv=%lld D=%lld Dv=%lld varlen=%d\n",
            (long long)c->d.batch, (long long)c->d.seq_q, (long long)c->d.seq_k, (long long)c->d.heads_q,
            (long long)c->d.heads_kv, (long long)c->d.head_dim, (long long)c->d.head_dim_v, c->varlen);
    fprintf(stderr, "opts scale=%g causal=%d align=%d wl=%lld wr=%lld softcap=%g mask=%d (%lld,%lld,%lld) "
                    "key_lens=%d alibi=%d dropout=%g threads=%d\n",
            (double)o->scale, o->causal, o->align, (long long)o->window_left, (long long)o->window_right,
            (double)o->softcap, o->mask_kind, (long long)o->mask_stride_b, (long long)o->mask_stride_h,
            (long long)o->mask_stride_q, o->key_lens != NULL, o->alibi_slopes != NULL, (double)o->dropout_p,
            o->num_threads);
    for (int k = 0; k < SF_NT; k++)
        fprintf(stderr, "%-3s n=(%lld,%lld,%lld,%lld) strides=(%lld,%lld,%lld) off=%lld ext=%lld data=%s%s\n",
                names[k], (long long)c->t[k].n[0], (long long)c->t[k].n[1], (long long)c->t[k].n[2],
                (long long)c->t[k].n[3], (long long)V[k].stride_b, (long long)V[k].stride_s,
                (long long)V[k].stride_h, (long long)c->t[k].off, (long long)c->t[k].ext,
                V[k].data ? "ptr" : "NULL", c->t[k].sure_fail ? " sure_fail" : "");
}

static void *sf_workspace(unsigned mode, size_t need, size_t need1, size_t *size, void **to_free, int *clean) {
    *to_free = NULL;
    *size = 0;
    switch (mode % 8) {
    case 0: case 1: case 2: return NULL;
    case 3: case 4: *size = need; break;
    case 5: *size = need1; break;           /* one thread's worth: fewer threads, still valid */
    case 6: *size = need1 ? need1 - 1 - (mode / 8) % 64 % need1 : 0; *clean = 0; break; /* too small */
    default: { /* misaligned */
        *size = need;
        *clean = 0;
        void *p = NULL;
        if (posix_memalign(&p, 64, need + 16) != 0) return NULL;
        *to_free = p;
        return (char *)p + 4 + 4 * (mode / 8 % 3);
    }
    }
    if (*size == 0) { /* a non-NULL pointer with size 0 */
        static _Alignas(64) unsigned char zero_ws[64];
        if (need1) *clean = 0;
        return zero_ws;
    }
    void *p = NULL;
    if (posix_memalign(&p, 64, *size) != 0) return NULL;
    *to_free = p;
    return p;
}

static void sf_free_case(sf_case *c) {
    if (c->arena) FZ_UNPOISON(c->arena, (size_t)c->arena_n * sizeof(float));
    free(c->arena);
    free(c->ref);
    free(c->mark);
    free(c->cu_q);
    free(c->cu_k);
    free(c->key_lens);
    free(c->alibi);
    free(c->mask);
}

static int fuzz_sdpa_one(const uint8_t *data, size_t size) {
    fz_in in = {data, size, 0}, *r = &in;
    sf_case C, *c = &C;
    memset(c, 0, sizeof *c);
    c->clean = 1;
    c->finite = 1;
    c->mask_sane = 1;
    int sp = 0;
    const unsigned flags = fz_u8(r);

    /* ── dims ── */
    static const int64_t sp_b[8] = {-1, 4, (int64_t)1 << 40, INT64_MAX, INT64_MIN, 100000, -5, 64};
    static const int64_t sp_s[8] = {-1, 41, (int64_t)1 << 40, ((int64_t)1 << 40) + 1, INT64_MAX, (int64_t)1 << 31,
                                    INT32_MAX, 1000};
    static const int64_t sp_h[8] = {0, -1, 5, 8, INT32_MAX, (int64_t)INT32_MAX + 1, INT64_MAX, 64};
    static const int64_t sp_d[8] = {0, -1, 256, 257, 64, 128, INT64_MAX, 41};
    static const int64_t sp_dv[8] = {-1, 257, 256, 1, INT64_MAX, INT64_MIN, 64, 41};
    c->d.batch = fz_pick(r, 0, 3, sp_b, &sp);
    c->d.seq_q = fz_pick_small(r, 0, 40, sp_s, &sp);
    c->d.seq_k = fz_pick_small(r, 0, 40, sp_s, &sp);
    c->d.heads_q = fz_pick(r, 1, 4, sp_h, &sp);
    {
        unsigned hb = fz_u8(r);
        static const int64_t sp_hkv[8] = {0, -1, 3, 5, INT64_MAX, INT64_MIN, 7, 64};
        if (hb >= 248) c->d.heads_kv = sp_hkv[hb - 248];
        else { /* a divisor of Hq (or anything when Hq is odd-sized) */
            int64_t hq = c->d.heads_q, divs[8], nd = 0;
            for (int64_t x = 1; x <= 8 && hq > 0 && hq <= 64; x++)
                if (hq % x == 0) divs[nd++] = x;
            c->d.heads_kv = nd ? divs[hb % nd] : 1;
        }
    }
    c->d.head_dim = fz_pick_small(r, 1, 40, sp_d, &sp);
    {
        unsigned vb = fz_u8(r);
        if (vb >= 248) { c->d.head_dim_v = sp_dv[vb - 248]; sp = 1; }
        else c->d.head_dim_v = vb < 140 ? 0 : 1 + (vb - 140) * (vb - 140) * 40 / (108 * 108);
    }
    const int64_t B = c->d.batch, Hq = c->d.heads_q, Hkv = c->d.heads_kv, D = c->d.head_dim;
    c->dims_bad = B < 0 || c->d.seq_q < 0 || c->d.seq_q > ((int64_t)1 << 40) || c->d.seq_k < 0 ||
                  c->d.seq_k > ((int64_t)1 << 40) || Hq < 1 || Hq > INT32_MAX || Hkv < 1 || Hkv > INT32_MAX ||
                  Hq % Hkv != 0 || D < 1 || D > 256 || c->d.head_dim_v < 0 || c->d.head_dim_v > 256 ||
                  B > ((int64_t)1 << 40) || sf_mul(Hq, sf_add(c->d.seq_q, B)) > ((int64_t)1 << 61);
    c->Dv = c->d.head_dim_v ? c->d.head_dim_v : D;
    c->small = !c->dims_bad && B <= 3 && c->d.seq_q <= 60 && c->d.seq_k <= 60 && Hq <= 8 && D <= 256 &&
               c->Dv <= 256;

    /* ── varlen ── */
    {
        unsigned vb = fz_u8(r);
        if (vb >= 170 && B >= 0 && B <= 3) {
            c->varlen = 1;
            c->cu_q = (int32_t *)malloc((size_t)(B + 1) * sizeof(int32_t));
            c->cu_k = (int32_t *)malloc((size_t)(B + 1) * sizeof(int32_t));
            c->cu_q[0] = c->cu_k[0] = 0;
            for (int64_t b = 0; b < B; b++) {
                unsigned lq = fz_u8(r), lk = fz_u8(r);
                c->cu_q[b + 1] = c->cu_q[b] + (int32_t)(lq * lq * 21u / 65536u);
                c->cu_k[b + 1] = c->cu_k[b] + (int32_t)(lk * lk * 21u / 65536u);
            }
            if (!sp) { c->d.seq_q = c->cu_q[B]; c->d.seq_k = c->cu_k[B]; }
            if (vb >= 248) { /* corrupt */
                c->opt_bad = 1;
                switch (vb - 248) {
                case 0: c->cu_q[0] = 1; break;
                case 1: c->cu_k[0] = -1; break;
                case 2: c->cu_q[B] = sp ? -1 : c->cu_q[B] + 1; break;
                case 3: c->cu_k[B] = sp ? -1 : c->cu_k[B] ? c->cu_k[B] - 1 : 1; break;
                case 4: if (B >= 2) { c->cu_q[1] = c->cu_q[2] + 1; } else c->cu_q[0] = 5; break;
                case 5: free(c->cu_k); c->cu_k = NULL; break;
                case 6: free(c->cu_q); c->cu_q = NULL; break;
                default: c->cu_k[B] = -1; break;
                }
            }
        }
    }
    c->maxq = c->d.seq_q;
    c->maxk = c->d.seq_k;
    if (c->varlen && c->cu_q && c->cu_k && !c->opt_bad) {
        c->maxq = c->maxk = 0;
        for (int64_t b = 0; b < B; b++) {
            if (c->cu_q[b + 1] - c->cu_q[b] > c->maxq) c->maxq = c->cu_q[b + 1] - c->cu_q[b];
            if (c->cu_k[b + 1] - c->cu_k[b] > c->maxk) c->maxk = c->cu_k[b + 1] - c->cu_k[b];
        }
    }
    if (B == 0) c->maxq = c->maxk = 0;
    if (c->dims_bad || sp) c->clean = 0;
    c->small = c->small && c->d.seq_q <= 60 && c->d.seq_k <= 60;

    /* ── options ── */
    attn_sdpa_opts *o = &c->o;
    attn_sdpa_opts_init(o);
    o->cu_seqlens_q = c->cu_q;
    o->cu_seqlens_k = c->cu_k;
    {
        unsigned b = fz_u8(r);
        static const float sp_scale[8] = {NAN, INFINITY, -INFINITY, 1e30f, FLT_MAX, -0.0f, FLT_MIN, 1e-30f};
        if (b < 128) o->scale = 0.0f;
        else if (b < 248) o->scale = (float)(b - 128) / 30.0f - 2.0f;
        else {
            o->scale = sp_scale[b - 248];
            if (!isfinite(o->scale)) c->opt_bad = 1;
            if (b - 248 == 3 || b - 248 == 4) c->finite = 0; /* finite but overflows the logits */
        }
    }
    {
        unsigned b = fz_u8(r);
        static const int sp_i[8] = {2, -1, INT32_MAX, INT32_MIN, 3, 100, -2, 1 << 16};
        o->causal = b < 248 ? (int)(b & 1) : sp_i[b - 248];
        if (b >= 248) c->opt_bad = 1;
        b = fz_u8(r);
        o->align = b < 248 ? (int)(b & 1) : sp_i[b - 248];
        if (b >= 248) c->opt_bad = 1;
    }
    for (int w = 0; w < 2; w++) {
        unsigned b = fz_u8(r);
        static const int64_t sp_w[8] = {-2, INT64_MIN, INT64_MAX, (int64_t)1 << 40, -1, 0,
                                        ((int64_t)1 << 41) + 3, INT64_MAX - 1};
        int64_t v = b < 120 ? -1 : b < 248 ? (int64_t)((b - 120) % 46) : sp_w[b - 248];
        if (v < -1) c->opt_bad = 1;
        if (w == 0) o->window_left = v;
        else o->window_right = v;
    }
    {
        unsigned b = fz_u8(r);
        static const float tab[8] = {0.5f, 1.0f, 2.0f, 5.0f, 10.0f, 30.0f, 50.0f, 1e-3f};
        static const float sp_cap[8] = {-1.0f, NAN, INFINITY, -0.0f, FLT_MAX, 1e-30f, -INFINITY, FLT_MIN};
        if (b < 160) o->softcap = 0.0f;
        else if (b < 248) o->softcap = tab[b % 8];
        else {
            o->softcap = sp_cap[b - 248];
            if (!(o->softcap >= 0.0f) || !isfinite(o->softcap)) c->opt_bad = 1;
        }
    }
    {
        unsigned b = fz_u8(r);
        static const float tab[8] = {0.1f, 0.25f, 0.5f, 0.75f, 0.9f, 0.99f, 0.5f, 0.01f};
        static const float sp_p[8] = {1.0f, -0.1f, NAN, INFINITY, 1.5f, -0.0f, 0.9999999f, 0.99999994f};
        if (b < 170) o->dropout_p = 0.0f;
        else if (b < 248) o->dropout_p = tab[b % 8];
        else {
            o->dropout_p = sp_p[b - 248];
            if (!(o->dropout_p >= 0.0f && o->dropout_p < 1.0f)) c->opt_bad = 1;
        }
        o->dropout_seed = fz_u64(r);
    }
    {
        unsigned b = fz_u8(r);
        static const int sp_t[8] = {-1, INT32_MIN, -2, -100, 1, 2, 3, 0};
        o->num_threads = b < 248 ? (int)(b % 4) : sp_t[b - 248];
        if (o->num_threads < 0) c->opt_bad = 1;
    }
    /* key_lens */
    {
        unsigned b = fz_u8(r);
        if (b >= 180 && B >= 0 && B <= 3 && !c->dims_bad) {
            c->key_lens = (int32_t *)malloc((size_t)(B ? B : 1) * sizeof(int32_t));
            for (int64_t x = 0; x < B; x++) {
                int64_t skb = c->varlen && c->cu_k ? c->cu_k[x + 1] - c->cu_k[x] : c->d.seq_k;
                if (skb < 0 || skb > INT32_MAX - 2) skb = 0;
                c->key_lens[x] = (int32_t)(fz_u8(r) % (skb + 1));
            }
            if (b >= 248 && B > 0) {
                int64_t skb = c->varlen && c->cu_k ? c->cu_k[1] - c->cu_k[0] : c->d.seq_k;
                c->key_lens[0] = (b & 1) ? -1 : (int32_t)(skb < INT32_MAX ? skb + 1 : -1);
                c->opt_bad = 1;
            }
            o->key_lens = c->key_lens;
        }
    }
    /* alibi */
    {
        unsigned b = fz_u8(r);
        if (b >= 180 && Hq >= 1 && Hq <= 8) {
            c->alibi = (float *)malloc((size_t)Hq * sizeof(float));
            for (int64_t h = 0; h < Hq; h++) c->alibi[h] = (float)((int)fz_u8(r) - 64) / 64.0f;
            if (b >= 248) {
                static const float sp_a[8] = {NAN, INFINITY, -INFINITY, 1e30f, -1e30f, FLT_MAX, NAN, 1e20f};
                c->alibi[fz_u8(r) % Hq] = sp_a[b - 248];
                c->finite = 0;
            }
            o->alibi_slopes = c->alibi;
        }
    }
    /* mask */
    {
        unsigned b = fz_u8(r), sb = fz_u8(r), db = fz_u8(r);
        int null_mask = 0;
        if (b < 128) o->mask_kind = ATTN_MASK_NONE;
        else if (b < 188) o->mask_kind = ATTN_MASK_BOOL;
        else if (b < 248) o->mask_kind = ATTN_MASK_ADD;
        else {
            static const int sp_k[8] = {3, -1, 1, 2, 100, INT32_MIN, 1, 2};
            o->mask_kind = sp_k[b - 248];
            if (o->mask_kind < 0 || o->mask_kind > 2) c->opt_bad = 1;
            else null_mask = 1;
        }
        if (o->mask_kind == ATTN_MASK_BOOL || o->mask_kind == ATTN_MASK_ADD) {
            const int64_t mq = c->maxq, mk = c->maxk;
            int64_t msq = sf_add(mk, (sb >> 3) % 3), msh = sf_add(sf_mul(mq, msq), (sb >> 5) % 2), msb = sf_mul(Hq, msh);
            if (sb & 1) msb = 0;
            if (sb & 2) msh = 0;
            if (sb & 4) msq = 0;
            if (sb >= 248) {
                static const int64_t sp_m[8] = {-1, INT64_MIN, INT64_MAX, INT64_MAX / 4, -1, (int64_t)1 << 62, -7, INT64_MAX};
                int64_t v = sp_m[sb - 248];
                if (sb % 3 == 0) msb = v;
                else if (sb % 3 == 1) msh = v;
                else msq = v;
            }
            o->mask_stride_b = msb;
            o->mask_stride_h = msh;
            o->mask_stride_q = msq;
            int needed = B > 0 && mq > 0 && mk > 0;
            if (msb < 0 || msh < 0 || msq < 0) c->opt_bad = 1;
            else if (needed && !null_mask && c->small && !c->opt_bad) {
                int64_t ext = fz_extent(B, Hq, mq, mk, msb, msh, msq);
                if (ext < 0) c->opt_bad = 1; /* NOMEM */
                else if (ext <= SF_CAP) {
                    size_t es = o->mask_kind == ATTN_MASK_BOOL ? 1 : sizeof(float);
                    c->mask = malloc((size_t)ext * es);
                    uint64_t ms = fz_u64(r);
                    static const unsigned dens[8] = {0, 26, 128, 230, 256, 200, 250, 5}; /* of 256 */
                    unsigned dn = dens[db % 8];
                    sf_fill_mask(c->mask, ext, es, ms, dn);
                    if (es == 4 && db >= 248 && ext > 0) { /* NaN / +Inf / huge entries */
                        static const float sp_v[8] = {NAN, INFINITY, 1e30f, -1e30f, -FLT_MAX, FLT_MAX, NAN, 3e38f};
                        ((float *)c->mask)[fz_u16(r) % ext] = sp_v[db - 248];
                        c->finite = 0;
                        c->mask_sane = 0;
                    }
                    o->mask = c->mask;
                }
            } else if (needed && null_mask) {
                c->opt_bad = 1; /* NULL mask with a mask kind */
            }
            if (needed && !o->mask && !c->opt_bad) c->small = 0; /* could not build it: do not run */
        }
    }
    if (c->opt_bad) c->clean = 0;

    /* ── tensors ── */
    const int vl = c->varlen;
    const int64_t Bn = vl ? 1 : B, Sq = c->d.seq_q, Sk = c->d.seq_k;
    const int64_t shp[SF_NT][4] = {
        {Bn, Sq, Hq, D}, {Bn, Sk, Hkv, D}, {Bn, Sk, Hkv, c->Dv}, {Bn, Sq, Hq, c->Dv}, {1, 1, 1, 0},
        {Bn, Sq, Hq, c->Dv}, {Bn, Sq, Hq, D}, {Bn, Sk, Hkv, D}, {Bn, Sk, Hkv, c->Dv}};
    int fwd_sure_fail = c->dims_bad || c->opt_bad, bwd_sure_fail = fwd_sure_fail, too_big = 0;
    for (int k = 0; k < SF_NT; k++) {
        sf_tensor *t = &c->t[k];
        memcpy(t->n, shp[k], sizeof t->n);
        if (k == SF_LSE) {
            int64_t nl = 0;
            if (c->small) nl = Bn * Hq * Sq;
            t->n[3] = nl;
            t->s[0] = t->s[1] = t->s[2] = 0;
            t->null_data = fz_u8(r) >= 200; /* forward without lse */
            t->numel = nl;
            t->ext = nl;
            t->placed = 1;
            t->clean = 1;
            continue;
        }
        int output = k == SF_O || k == SF_DQ || k == SF_DK || k == SF_DV;
        sf_strides(r, t, output);
        sf_measure(t, vl);
        if (!t->clean) c->clean = 0;
        int in_fwd = k <= SF_O;
        if (t->sure_fail) {
            if (in_fwd) fwd_sure_fail = 1;
            bwd_sure_fail = 1;
        }
        if (t->too_big) too_big = 1;
    }
    /* a call that could succeed must be small enough to run */
    int64_t work = 0;
    if (c->small) {
        int64_t pairs = 0;
        if (vl && c->cu_q && c->cu_k)
            for (int64_t b = 0; b < B; b++) pairs += (int64_t)(c->cu_q[b + 1] - c->cu_q[b]) * (c->cu_k[b + 1] - c->cu_k[b]);
        else pairs = B * Sq * Sk;
        work = pairs * Hq * (D + c->Dv);
    }
    int run_fwd = fwd_sure_fail || (c->small && !too_big && work <= SF_WORK);
    int run_bwd_ok = bwd_sure_fail || (c->small && !too_big && work <= SF_WORK);
    if (!c->small || too_big || work > SF_WORK) c->clean = 0;

    /* size queries take any dims */
    size_t ws_f = attn_sdpa_fwd_workspace_size(&c->d, o), ws_b = attn_sdpa_bwd_workspace_size(&c->d, o);
    (void)attn_sdpa_fwd_workspace_size(&c->d, NULL);
    (void)attn_sdpa_bwd_workspace_size(NULL, o);

    /* ── arena ── */
    unsigned layout = fz_u8(r);
    int64_t total = 0;
    for (int k = 0; k < SF_NT; k++)
        if (c->t[k].placed) total += c->t[k].ext + 8;
    for (int k = 0; k < SF_NT; k++) {
        sf_tensor *t = &c->t[k];
        if (!t->placed) continue;
        if (layout < 200) {
            int64_t gap = fz_u8(r) % 9;
            t->off = c->arena_n + gap;
        } else {
            t->off = (int64_t)(fz_u16(r) % (uint64_t)(total + 1));
            c->clean = 0;
        }
        if (t->off + t->ext > c->arena_n) c->arena_n = t->off + t->ext;
    }
    if (c->arena_n > 4 * SF_CAP) run_fwd = run_bwd_ok = 0;
    if (c->arena_n < 1) c->arena_n = 1;
    c->arena = (float *)malloc((size_t)c->arena_n * sizeof(float));
    c->ref = (float *)malloc((size_t)c->arena_n * sizeof(float));
    if (!c->arena || !c->ref) { sf_free_case(c); return 0; }
    {
        uint64_t ds = fz_u64(r);
        static const float amps[4] = {1.0f, 2.0f, 0.25f, 4.0f};
        sf_fill(c->arena, c->arena_n, ds, amps[fz_u8(r) % 4]);
        unsigned ns = fz_u8(r);
        if (ns >= 248) {
            static const float sp_v[8] = {NAN, INFINITY, -INFINITY, 1e30f, -1e30f, FLT_MAX, 1e-40f, -NAN};
            for (unsigned x = 0; x < ns - 247; x++) c->arena[fz_u16(r) % c->arena_n] = sp_v[fz_u8(r) % 8];
            c->finite = 0;
        }
    }
    for (int k = 0; k < SF_NT; k++) {
        sf_tensor *t = &c->t[k];
        t->data = c->arena + (t->placed ? t->off : 0);
        if (t->null_data || (t->numel == 0 && (layout & 1))) t->data = NULL;
    }
    /* poison everything no view may touch (only when every view has memory) */
    int all_placed = run_fwd && c->small && !too_big;
    for (int k = 0; k < SF_NT; k++)
        if (!c->t[k].placed) all_placed = 0;
    if (all_placed) {
        c->mark = (uint16_t *)calloc((size_t)c->arena_n, sizeof(uint16_t));
        for (int k = 0; k < SF_NT; k++) {
            const sf_tensor *t = &c->t[k];
            if (t->numel == 0 || t->null_data) continue;
            sf_mark_view(c->mark, t, vl, SF_BIT(k));
        }
        FZ_POISON(c->arena, (size_t)c->arena_n * sizeof(float));
        sf_unpoison_marked(c);
        c->poisoned = 1;
    }
    attn_view V[SF_NT];
    for (int k = 0; k < SF_NT; k++) {
        V[k].data = c->t[k].data;
        V[k].stride_b = c->t[k].s[0];
        V[k].stride_s = c->t[k].s[1];
        V[k].stride_h = c->t[k].s[2];
    }
    float *lse = c->t[SF_LSE].data;
    if (getenv("FUZZ_SDPA_DEBUG")) sf_dump(c, V);
    if (!run_fwd) { sf_free_case(c); return 0; }

    /* ── forward ── */
    attn_isa_set((flags & 1) ? ATTN_ISA_AVX2 : ATTN_ISA_GENERIC); /* UNSUPPORTED is fine */
    size_t ws1;
    {
        attn_sdpa_opts o1 = *o;
        o1.num_threads = 1;
        ws1 = attn_sdpa_fwd_workspace_size(&c->d, &o1);
    }
    void *ws_free = NULL;
    size_t wsz;
    int ws_clean = 1;
    void *ws = sf_workspace(fz_u8(r), ws_f, ws1, &wsz, &ws_free, &ws_clean);
    if (!ws_clean) c->clean = 0;
    sf_snapshot(c);
    attn_clear_error();
    attn_status s = attn_sdpa_fwd(&c->d, V[SF_Q], V[SF_K], V[SF_V], V[SF_O], lse, o, ws, wsz);
    free(ws_free);
    if (s != ATTN_OK) {
        sf_check_status(s);
        sf_check_unchanged(c, 0, 0, 1);
        FUZZ_CHECK(!c->clean);
        sf_free_case(c);
        return 0;
    }
    FUZZ_CHECK(!fwd_sure_fail);
    sf_check_unchanged(c, SF_IN_F, lse ? SF_OUT_F : SF_BIT(SF_O), 0);
    const int oracle = c->mask_sane && c->poisoned && !c->dims_bad && B <= 3 && c->maxk <= 64 && Hq <= 4;
    if (oracle) sf_check_rows(c, 1, lse);

    /* determinism across thread counts */
    if ((flags & 2) && c->poisoned) {
        float *o1 = (float *)malloc((size_t)c->arena_n * sizeof(float));
        for (int64_t e = 0; e < c->arena_n; e++)
            if (c->mark[e] & SF_OUT_F) o1[e] = c->arena[e];
        attn_sdpa_opts ot = *o;
        ot.num_threads = o->num_threads == 1 ? 3 : 1;
        FUZZ_CHECK(attn_sdpa_fwd(&c->d, V[SF_Q], V[SF_K], V[SF_V], V[SF_O], lse, &ot, NULL, 0) == ATTN_OK);
        for (int64_t e = 0; e < c->arena_n; e++)
            if (c->mark[e] & SF_OUT_F) FUZZ_CHECK(memcmp(&o1[e], &c->arena[e], sizeof(float)) == 0);
        free(o1);
    }

    /* ── backward ── */
    if (run_bwd_ok) {
        const float *blse = (flags & 4) && fz_u8(r) >= 240 ? NULL : lse; /* rarely: lse missing */
        {
            attn_sdpa_opts o1 = *o;
            o1.num_threads = 1;
            ws1 = attn_sdpa_bwd_workspace_size(&c->d, &o1);
        }
        ws_clean = 1;
        ws = sf_workspace(fz_u8(r), ws_b, ws1, &wsz, &ws_free, &ws_clean);
        int bclean = c->clean && ws_clean && blse != NULL && !c->t[SF_LSE].null_data;
        sf_snapshot(c);
        attn_clear_error();
        s = attn_sdpa_bwd(&c->d, V[SF_Q], V[SF_K], V[SF_V], V[SF_O], V[SF_DO], blse, V[SF_DQ], V[SF_DK], V[SF_DV],
                          o, ws, wsz);
        free(ws_free);
        if (s != ATTN_OK) {
            sf_check_status(s);
            sf_check_unchanged(c, 0, 0, 1);
            FUZZ_CHECK(!bclean);
        } else {
            FUZZ_CHECK(!bwd_sure_fail);
            sf_check_unchanged(c, SF_IN_B, SF_OUT_B, 0);
            if (oracle && blse) {
                /* dO is read only by the backward, so the forward's o / lse may
                 * share its memory: the finiteness premise is re-read now (an
                 * lse of -inf written over dO makes dq = NaN, correctly) */
                int dofin = 1;
                for (int64_t e = 0; e < c->arena_n; e++)
                    if ((c->mark[e] & SF_BIT(SF_DO)) && !isfinite(c->arena[e])) dofin = 0;
                const int fin = c->finite;
                c->finite = fin && dofin;
                sf_check_rows(c, 0, NULL);
                c->finite = fin;
            }
        }
    }
    sf_free_case(c);
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_sdpa_one(data, size); }
#endif
