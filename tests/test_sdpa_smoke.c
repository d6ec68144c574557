/* SPDX-License-Identifier: MIT */
/* test_sdpa_smoke.c — quick self-check of attn_sdpa_fwd / attn_sdpa_bwd against
 * an independent naive float64 implementation written here (every option),
 * on every ISA, plus bit-identity across thread counts. The big parity /
 * FD / bad-input suites live in other test files.
 * ATTN_SMOKE_N=<count> sets the number of random cases (default 60). */
#include "attn.h"
#include "kernels/dropout.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cfg {
    int64_t B, Sq, Sk, Hq, Hkv, D, Dv;
    int causal, align, alibi, mask_kind, varlen, keylens, bhsd;
    int64_t wl, wr;
    float softcap, dropout, scale;
    int64_t msb, msh, msq; /* mask broadcast: 0 or full */
} cfg;

/* per-sequence geometry of the naive reference */
typedef struct nseq { int64_t q0, k0, sq, sk, kl; } nseq;

static nseq seq_of(const cfg *c, const int32_t *cuq, const int32_t *cuk, const int32_t *kl, int64_t b) {
    nseq s;
    if (c->varlen) {
        s.q0 = cuq[b]; s.k0 = cuk[b]; s.sq = cuq[b + 1] - cuq[b]; s.sk = cuk[b + 1] - cuk[b];
    } else {
        s.q0 = b * c->Sq; s.k0 = b * c->Sk; s.sq = c->Sq; s.sk = c->Sk;
    }
    s.kl = kl ? kl[b] : s.sk;
    return s;
}

/* Naive reference on contiguous (rows, H, D) packed tensors (non-varlen rows = b * S + i).
 * Computes o, lse and, if dO != NULL, dq, dk, dv. */
static void naive(const cfg *c, const attn_sdpa_opts *op, const float *q, const float *k, const float *v,
                  const float *dO, double *o, double *lse, double *dq, double *dk, double *dv) {
    const int64_t Hq = c->Hq, Hkv = c->Hkv, G = Hq / Hkv, D = c->D, Dv = c->Dv;
    const int64_t Tq = c->varlen ? c->Sq : c->B * c->Sq, Tk = c->varlen ? c->Sk : c->B * c->Sk;
    double scale = op->scale != 0.0f ? op->scale : 1.0 / sqrt((double)D);
    if (dO) {
        memset(dq, 0, sizeof(double) * (size_t)(Tq * Hq * D));
        memset(dk, 0, sizeof(double) * (size_t)(Tk * Hkv * D));
        memset(dv, 0, sizeof(double) * (size_t)(Tk * Hkv * Dv));
    }
    int64_t maxk = c->Sk + 1;
    double *s = malloc(sizeof(double) * (size_t)maxk), *p = malloc(sizeof(double) * (size_t)maxk);
    double *th = malloc(sizeof(double) * (size_t)maxk), *z = malloc(sizeof(double) * (size_t)maxk);
    int *vis = malloc(sizeof(int) * (size_t)maxk);
    uint32_t thr = attn__dropout_threshold(op->dropout_p);
    double dsc = op->dropout_p > 0 ? 1.0 / (1.0 - (double)op->dropout_p) : 1.0;
    for (int64_t b = 0; b < c->B; b++) {
        nseq sq = seq_of(c, op->cu_seqlens_q, op->cu_seqlens_k, op->key_lens, b);
        for (int64_t h = 0; h < Hq; h++) {
            int64_t hk = h / G;
            for (int64_t i = 0; i < sq.sq; i++) {
                int64_t pos = op->align ? i + sq.kl - sq.sq : i;
                double mx = -INFINITY;
                for (int64_t j = 0; j < sq.sk; j++) {
                    int ok = j < sq.kl;
                    if (op->causal && j > pos) ok = 0;
                    if (op->window_left >= 0 && j < pos - op->window_left) ok = 0;
                    if (op->window_right >= 0 && j > pos + op->window_right) ok = 0;
                    int64_t moff = b * op->mask_stride_b + h * op->mask_stride_h + i * op->mask_stride_q + j;
                    if (op->mask_kind == ATTN_MASK_BOOL && !((const uint8_t *)op->mask)[moff]) ok = 0;
                    vis[j] = ok;
                    if (!ok) { s[j] = -INFINITY; continue; }
                    const float *qi = q + ((sq.q0 + i) * Hq + h) * D, *kj = k + ((sq.k0 + j) * Hkv + hk) * D;
                    double acc = 0;
                    for (int64_t d = 0; d < D; d++) acc += (double)qi[d] * kj[d];
                    double x = scale * acc;
                    th[j] = 0;
                    if (op->softcap > 0) { th[j] = tanh(x / op->softcap); x = op->softcap * th[j]; }
                    if (op->alibi_slopes) x -= op->alibi_slopes[h] * fabs((double)(pos - j));
                    if (op->mask_kind == ATTN_MASK_ADD) x += ((const float *)op->mask)[moff];
                    s[j] = x;
                    if (x > mx) mx = x;
                }
                double l = 0;
                for (int64_t j = 0; j < sq.sk; j++) {
                    p[j] = (mx == -INFINITY || s[j] == -INFINITY) ? 0.0 : exp(s[j] - mx);
                    l += p[j];
                }
                uint64_t rk = attn__dropout_row_key(op->dropout_seed, b, h, i);
                double *orow = o + ((sq.q0 + i) * Hq + h) * Dv;
                for (int64_t e = 0; e < Dv; e++) orow[e] = 0;
                lse[(c->varlen ? h * Tq + sq.q0 + i : (b * Hq + h) * c->Sq + i)] = l > 0 ? mx + log(l) : -INFINITY;
                if (l == 0) continue;
                for (int64_t j = 0; j < sq.sk; j++) {
                    p[j] /= l;
                    z[j] = op->dropout_p > 0 ? (attn__dropout_keep(rk, j, thr) ? dsc : 0.0) : 1.0;
                    const float *vj = v + ((sq.k0 + j) * Hkv + hk) * Dv;
                    for (int64_t e = 0; e < Dv; e++) orow[e] += p[j] * z[j] * vj[e];
                }
                if (!dO) continue;
                const float *dor = dO + ((sq.q0 + i) * Hq + h) * Dv;
                double Di = 0;
                for (int64_t e = 0; e < Dv; e++) Di += dor[e] * orow[e];
                const float *qi = q + ((sq.q0 + i) * Hq + h) * D;
                double *dqi = dq + ((sq.q0 + i) * Hq + h) * D;
                for (int64_t j = 0; j < sq.sk; j++) {
                    if (p[j] == 0) continue;
                    const float *vj = v + ((sq.k0 + j) * Hkv + hk) * Dv, *kj = k + ((sq.k0 + j) * Hkv + hk) * D;
                    double dp = 0;
                    for (int64_t e = 0; e < Dv; e++) dp += dor[e] * vj[e];
                    double ds = p[j] * (z[j] * dp - Di);
                    if (op->softcap > 0) ds *= 1 - th[j] * th[j];
                    double *dkj = dk + ((sq.k0 + j) * Hkv + hk) * D, *dvj = dv + ((sq.k0 + j) * Hkv + hk) * Dv;
                    for (int64_t d = 0; d < D; d++) { dqi[d] += scale * ds * kj[d]; dkj[d] += scale * ds * qi[d]; }
                    for (int64_t e = 0; e < Dv; e++) dvj[e] += p[j] * z[j] * dor[e];
                }
            }
        }
    }
    free(s); free(p); free(th); free(z); free(vis);
}

/* max |a - b| / (1 + max|b|) over n */
static double relerr(const float *a, const double *b, int64_t n) {
    double mb = 0, e = 0;
    for (int64_t i = 0; i < n; i++) mb = fmax(mb, fabs(b[i]));
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= e)) e = d; /* NaN propagates */
    }
    return e / (1.0 + mb);
}

/* Views on contiguous packed (rows, H, Dl) storage, optionally presented via a
 * (B, H, S, D) physical layout (bhsd) to exercise strides. */
static attn_view mkview(const cfg *c, float *p, int64_t S, int64_t H, int64_t Dl) {
    if (c->bhsd && !c->varlen) return attn_view_bhsd(p, S, H, Dl);
    return attn_view_bshd(p, S, H, Dl);
}
/* copy packed (B,S,H,D) -> layout of mkview */
static void to_layout(const cfg *c, const float *src, float *dst, int64_t S, int64_t H, int64_t Dl) {
    int64_t Bn = c->varlen ? 1 : c->B;
    if (!(c->bhsd && !c->varlen)) { memcpy(dst, src, sizeof(float) * (size_t)(Bn * S * H * Dl)); return; }
    for (int64_t b = 0; b < Bn; b++)
        for (int64_t s = 0; s < S; s++)
            for (int64_t h = 0; h < H; h++)
                memcpy(dst + ((b * H + h) * S + s) * Dl, src + ((b * S + s) * H + h) * Dl, sizeof(float) * (size_t)Dl);
}
static void from_layout(const cfg *c, const float *src, float *dst, int64_t S, int64_t H, int64_t Dl) {
    int64_t Bn = c->varlen ? 1 : c->B;
    if (!(c->bhsd && !c->varlen)) { memcpy(dst, src, sizeof(float) * (size_t)(Bn * S * H * Dl)); return; }
    for (int64_t b = 0; b < Bn; b++)
        for (int64_t s = 0; s < S; s++)
            for (int64_t h = 0; h < H; h++)
                memcpy(dst + ((b * S + s) * H + h) * Dl, src + ((b * H + h) * S + s) * Dl, sizeof(float) * (size_t)Dl);
}

static int run_case(const cfg *c, tu_rng *rng, int check_threads, const char *tag) {
    int64_t Tq = c->varlen ? c->Sq : c->B * c->Sq, Tk = c->varlen ? c->Sk : c->B * c->Sk;
    int64_t nq = Tq * c->Hq * c->D, nk = Tk * c->Hkv * c->D, nv = Tk * c->Hkv * c->Dv, no = Tq * c->Hq * c->Dv;
    int64_t nl = c->B * c->Hq * c->Sq;
    if (c->varlen) nl = c->Hq * c->Sq;
    float *q = malloc(4 * (size_t)(nq + 1)), *k = malloc(4 * (size_t)(nk + 1)), *v = malloc(4 * (size_t)(nv + 1));
    float *dO = malloc(4 * (size_t)(no + 1));
    float *ql = malloc(4 * (size_t)(nq + 1)), *kl = malloc(4 * (size_t)(nk + 1)), *vl = malloc(4 * (size_t)(nv + 1));
    float *dOl = malloc(4 * (size_t)(no + 1)), *ol = malloc(4 * (size_t)(no + 1));
    float *o = malloc(4 * (size_t)(no + 1)), *lse = malloc(4 * (size_t)(nl + 1));
    float *dql = malloc(4 * (size_t)(nq + 1)), *dkl = malloc(4 * (size_t)(nk + 1)), *dvl = malloc(4 * (size_t)(nv + 1));
    float *dq = malloc(4 * (size_t)(nq + 1)), *dk = malloc(4 * (size_t)(nk + 1)), *dv = malloc(4 * (size_t)(nv + 1));
    double *ro = malloc(8 * (size_t)(no + 1)), *rl = malloc(8 * (size_t)(nl + 1));
    double *rdq = malloc(8 * (size_t)(nq + 1)), *rdk = malloc(8 * (size_t)(nk + 1)), *rdv = malloc(8 * (size_t)(nv + 1));
    tu_fill(rng, q, nq, 1.0f);
    tu_fill(rng, k, nk, 1.0f);
    tu_fill(rng, v, nv, 1.0f);
    tu_fill(rng, dO, no, 1.0f);

    attn_sdpa_opts op;
    attn_sdpa_opts_init(&op);
    op.scale = c->scale;
    op.causal = c->causal;
    op.align = c->align;
    op.window_left = c->wl;
    op.window_right = c->wr;
    op.softcap = c->softcap;
    op.dropout_p = c->dropout;
    op.dropout_seed = 1234567;
    int32_t *cuq = NULL, *cuk = NULL, *klen = NULL;
    float *slopes = NULL;
    void *mask = NULL;
    if (c->varlen) {
        cuq = malloc(4 * (size_t)(c->B + 1)); cuk = malloc(4 * (size_t)(c->B + 1));
        cuq[0] = cuk[0] = 0;
        for (int64_t b = 1; b < c->B; b++) {
            cuq[b] = (int32_t)tu_int(rng, cuq[b - 1], c->Sq);
            cuk[b] = (int32_t)tu_int(rng, cuk[b - 1], c->Sk);
        }
        cuq[c->B] = (int32_t)c->Sq; cuk[c->B] = (int32_t)c->Sk;
        op.cu_seqlens_q = cuq; op.cu_seqlens_k = cuk;
    }
    if (c->keylens) {
        klen = malloc(4 * (size_t)c->B);
        for (int64_t b = 0; b < c->B; b++) {
            int64_t skb = c->varlen ? cuk[b + 1] - cuk[b] : c->Sk;
            klen[b] = (int32_t)tu_int(rng, 0, skb);
        }
        op.key_lens = klen;
    }
    if (c->alibi) {
        slopes = malloc(4 * (size_t)c->Hq);
        for (int64_t h = 0; h < c->Hq; h++) slopes[h] = (float)pow(2.0, -8.0 * (double)(h + 1) / (double)c->Hq);
        op.alibi_slopes = slopes;
    }
    int64_t mSq = c->Sq, mSk = c->Sk; /* mask over max lengths (varlen: totals bound them) */
    if (c->mask_kind) {
        op.mask_kind = c->mask_kind;
        op.mask_stride_q = c->msq ? mSk : 0;
        op.mask_stride_h = c->msh ? (c->msq ? mSq : 1) * mSk : 0;
        op.mask_stride_b = c->msb ? (c->msh ? c->Hq : 1) * (c->msq ? mSq : 1) * mSk : 0;
        int64_t n = (c->msb ? c->B : 1) * (c->msh ? c->Hq : 1) * (c->msq ? mSq : 1) * mSk + 1;
        if (c->mask_kind == ATTN_MASK_BOOL) {
            uint8_t *m = malloc((size_t)n);
            for (int64_t i = 0; i < n; i++) m[i] = tu_uniform(rng) < 0.8;
            mask = m;
        } else {
            float *m = malloc(4 * (size_t)n);
            for (int64_t i = 0; i < n; i++) m[i] = tu_uniform(rng) < 0.15 ? -INFINITY : (float)tu_normal(rng);
            mask = m;
        }
        op.mask = mask;
    }
    attn_sdpa_dims dims = {c->B, c->Sq, c->Sk, c->Hq, c->Hkv, c->D, c->Dv == c->D ? 0 : c->Dv};
    int64_t Sq_v = c->varlen ? c->Sq : c->Sq, Sk_v = c->Sk;
    to_layout(c, q, ql, Sq_v, c->Hq, c->D);
    to_layout(c, k, kl, Sk_v, c->Hkv, c->D);
    to_layout(c, v, vl, Sk_v, c->Hkv, c->Dv);
    to_layout(c, dO, dOl, Sq_v, c->Hq, c->Dv);
    attn_view vq = mkview(c, ql, Sq_v, c->Hq, c->D), vk = mkview(c, kl, Sk_v, c->Hkv, c->D);
    attn_view vv = mkview(c, vl, Sk_v, c->Hkv, c->Dv), vo = mkview(c, ol, Sq_v, c->Hq, c->Dv);
    attn_view vdo = mkview(c, dOl, Sq_v, c->Hq, c->Dv);
    attn_view vdq = mkview(c, dql, Sq_v, c->Hq, c->D), vdk = mkview(c, dkl, Sk_v, c->Hkv, c->D);
    attn_view vdv = mkview(c, dvl, Sk_v, c->Hkv, c->Dv);

    naive(c, &op, q, k, v, dO, ro, rl, rdq, rdk, rdv);

    int bad = 0;
    size_t wsz = attn_sdpa_fwd_workspace_size(&dims, &op);
    size_t wsb = attn_sdpa_bwd_workspace_size(&dims, &op);
    if (wsb > wsz) wsz = wsb;
    void *ws = NULL;
    if (posix_memalign(&ws, 64, wsz + 64) != 0) ws = NULL;
    for (int isa = 0; isa <= (int)attn_isa_detected(); isa++) {
        attn_isa_set((attn_isa)isa);
        attn_status st = attn_sdpa_fwd(&dims, vq, vk, vv, vo, lse, &op, ws, wsz);
        CHECK(st == ATTN_OK, "%s isa=%d fwd status %d: %s", tag, isa, st, attn_last_error());
        from_layout(c, ol, o, Sq_v, c->Hq, c->Dv);
        double eo = relerr(o, ro, no);
        double el = 0;
        for (int64_t i = 0; i < nl; i++) {
            if (rl[i] == -INFINITY) { if (lse[i] != -INFINITY) el = INFINITY; continue; }
            double d = fabs(lse[i] - rl[i]);
            if (!(d <= el)) el = d;
        }
        CHECK(eo < 2e-5 && el < 2e-5, "%s isa=%d fwd err o %.3g lse %.3g", tag, isa, eo, el);
        st = attn_sdpa_bwd(&dims, vq, vk, vv, vo, vdo, lse, vdq, vdk, vdv, &op, ws, wsz);
        CHECK(st == ATTN_OK, "%s isa=%d bwd status %d: %s", tag, isa, st, attn_last_error());
        from_layout(c, dql, dq, Sq_v, c->Hq, c->D);
        from_layout(c, dkl, dk, Sk_v, c->Hkv, c->D);
        from_layout(c, dvl, dv, Sk_v, c->Hkv, c->Dv);
        double eq = relerr(dq, rdq, nq), ek = relerr(dk, rdk, nk), ev = relerr(dv, rdv, nv);
        CHECK(eq < 5e-5 && ek < 5e-5 && ev < 5e-5, "%s isa=%d bwd err dq %.3g dk %.3g dv %.3g", tag, isa, eq, ek,
              ev);
        if (!(eo < 2e-5 && el < 2e-5 && eq < 5e-5 && ek < 5e-5 && ev < 5e-5)) bad = 1;
        if (getenv("ATTN_SMOKE_V"))
            printf("%s isa=%d: o %.2g lse %.2g dq %.2g dk %.2g dv %.2g\n", tag, isa, eo, el, eq, ek, ev);
        if (check_threads) { /* bit-identity over thread counts */
            float *o1 = malloc(4 * (size_t)(no + 1)), *dq1 = malloc(4 * (size_t)(nq + 1));
            float *dk1 = malloc(4 * (size_t)(nk + 1)), *l1 = malloc(4 * (size_t)(nl + 1));
            memcpy(o1, ol, 4 * (size_t)no); memcpy(dq1, dql, 4 * (size_t)nq); memcpy(dk1, dkl, 4 * (size_t)nk);
            memcpy(l1, lse, 4 * (size_t)nl);
            static const int nts[] = {1, 3, 8};
            for (int ti = 0; ti < 3; ti++) {
                attn_sdpa_opts o2 = op;
                o2.num_threads = nts[ti];
                attn_sdpa_fwd(&dims, vq, vk, vv, vo, lse, &o2, NULL, 0);
                attn_sdpa_bwd(&dims, vq, vk, vv, vo, vdo, lse, vdq, vdk, vdv, &o2, NULL, 0);
                int same = !memcmp(o1, ol, 4 * (size_t)no) && !memcmp(dq1, dql, 4 * (size_t)nq) &&
                           !memcmp(dk1, dkl, 4 * (size_t)nk) && !memcmp(l1, lse, 4 * (size_t)nl);
                CHECK(same, "%s isa=%d threads=%d not bit-identical", tag, isa, nts[ti]);
            }
            free(o1); free(dq1); free(dk1); free(l1);
        }
    }
    attn_isa_set(attn_isa_detected());
    free(ws);
    free(q); free(k); free(v); free(dO); free(ql); free(kl); free(vl); free(dOl); free(ol); free(o); free(lse);
    free(dql); free(dkl); free(dvl); free(dq); free(dk); free(dv);
    free(ro); free(rl); free(rdq); free(rdk); free(rdv);
    free(cuq); free(cuk); free(klen); free(slopes); free(mask);
    return bad;
}

static void describe(const cfg *c, char *buf, size_t n) {
    snprintf(buf, n,
             "B%lld Sq%lld Sk%lld Hq%lld Hkv%lld D%lld Dv%lld causal%d align%d wl%lld wr%lld alibi%d cap%g mask%d "
             "(%lld%lld%lld) varlen%d kl%d drop%g bhsd%d",
             (long long)c->B, (long long)c->Sq, (long long)c->Sk, (long long)c->Hq, (long long)c->Hkv,
             (long long)c->D, (long long)c->Dv, c->causal, c->align, (long long)c->wl, (long long)c->wr, c->alibi,
             (double)c->softcap, c->mask_kind, (long long)c->msb, (long long)c->msh, (long long)c->msq, c->varlen,
             c->keylens, (double)c->dropout, c->bhsd);
}

int main(void) {
    tu_rng rng = {42};
    int ncases = 60;
    const char *env = getenv("ATTN_SMOKE_N");
    if (env) ncases = atoi(env);
    static const int64_t sizes[] = {1, 7, 63, 113, 257, 0, 2, 64, 65};
    static const int64_t dimsz[] = {8, 40, 64, 80, 128, 256, 1, 3, 17};
    /* fixed cases first */
    cfg fixed[] = {
        {1, 7, 7, 1, 1, 8, 8, 0, 0, 0, 0, 0, 0, 0, -1, -1, 0, 0, 0, 0, 0, 0},
        {2, 63, 113, 4, 2, 64, 64, 1, 0, 0, 0, 0, 0, 0, -1, -1, 0, 0, 0, 0, 0, 0},
        {1, 113, 257, 8, 2, 40, 40, 1, 1, 0, 0, 0, 0, 0, -1, -1, 0, 0, 0, 0, 0, 0},
        {1, 1, 257, 32, 8, 128, 128, 1, 1, 0, 0, 0, 0, 0, -1, -1, 0, 0, 0, 0, 0, 0},
        {1, 130, 130, 2, 1, 80, 32, 0, 0, 1, 2, 0, 0, 0, 16, 3, 30.0f, 0.2f, 0, 1, 1, 1},
        {3, 70, 90, 4, 4, 17, 23, 1, 1, 0, 1, 1, 1, 1, -1, -1, 0, 0, 0.3f, 0, 1, 1},
        {1, 5, 0, 2, 1, 8, 8, 0, 0, 0, 0, 0, 0, 0, -1, -1, 0, 0, 0, 0, 0, 0},
        {1, 257, 3, 1, 1, 256, 256, 1, 1, 0, 0, 0, 0, 0, -1, -1, 0, 0, 0, 0, 0, 0},
    };
    char buf[512];
    int nbad = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        describe(&fixed[i], buf, sizeof buf);
        nbad += run_case(&fixed[i], &rng, i < 4, buf);
    }
    for (int t = 0; t < ncases; t++) {
        cfg c;
        memset(&c, 0, sizeof c);
        c.B = tu_int(&rng, 1, 3);
        c.Sq = sizes[tu_int(&rng, 0, 8)];
        c.Sk = sizes[tu_int(&rng, 0, 8)];
        static const int64_t hk[] = {1, 1, 2, 3}, gg[] = {1, 2, 4, 5};
        c.Hkv = hk[tu_int(&rng, 0, 3)];
        c.Hq = c.Hkv * gg[tu_int(&rng, 0, 3)];
        c.D = dimsz[tu_int(&rng, 0, 8)];
        c.Dv = tu_uniform(&rng) < 0.7 ? c.D : dimsz[tu_int(&rng, 0, 8)];
        c.causal = tu_uniform(&rng) < 0.4;
        c.align = tu_uniform(&rng) < 0.5;
        c.wl = tu_uniform(&rng) < 0.2 ? tu_int(&rng, 0, 40) : -1;
        c.wr = tu_uniform(&rng) < 0.2 ? tu_int(&rng, 0, 40) : -1;
        c.alibi = tu_uniform(&rng) < 0.2;
        c.softcap = tu_uniform(&rng) < 0.2 ? 5.0f : 0.0f;
        c.mask_kind = tu_uniform(&rng) < 0.3 ? (int)tu_int(&rng, 1, 2) : 0;
        c.msb = tu_int(&rng, 0, 1); c.msh = tu_int(&rng, 0, 1); c.msq = tu_int(&rng, 0, 1);
        c.varlen = tu_uniform(&rng) < 0.2;
        c.keylens = tu_uniform(&rng) < 0.2;
        c.dropout = tu_uniform(&rng) < 0.15 ? 0.25f : 0.0f;
        c.bhsd = tu_uniform(&rng) < 0.3;
        c.scale = tu_uniform(&rng) < 0.2 ? 0.3f : 0.0f;
        if (c.varlen) { c.Sq *= c.B; c.Sk *= c.B; }
        describe(&c, buf, sizeof buf);
        nbad += run_case(&c, &rng, t % 10 == 0, buf);
    }
    if (nbad) fprintf(stderr, "%d bad cases\n", nbad);
    return test_summary("test_sdpa_smoke");
}
