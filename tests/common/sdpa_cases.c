/* SPDX-License-Identifier: MIT */
/* sdpa_cases.c — see sdpa_cases.h */
#include "sdpa_cases.h"

#include "kernels/dropout.h"
#include "kernels/ref/sdpa_ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ─── misc ──────────────────────────────────────────────────────────────── */
double sc_test_scale(void) {
    static double s = -1.0;
    if (s < 0.0) {
        const char *e = getenv("ATTN_TEST_SCALE");
        s = e ? atof(e) : 1.0;
        if (!(s > 0.0)) s = 1.0;
        if (s < 0.01) s = 0.01;
        if (s > 100.0) s = 100.0;
    }
    return s;
}

int64_t sc_count(int64_t n) {
    int64_t m = (int64_t)llround((double)n * sc_test_scale());
    return m < 1 ? 1 : m;
}

double sc_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) { fprintf(stderr, "sdpa_cases: out of memory (%zu bytes)\n", n); exit(2); }
    return p;
}
static void *xcalloc(size_t n, size_t s) {
    void *p = calloc(n ? n : 1, s ? s : 1);
    if (!p) { fprintf(stderr, "sdpa_cases: out of memory\n"); exit(2); }
    return p;
}

static float sentinel(void) {
    uint32_t u = SC_SENTINEL_BITS;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

const char *sc_layout_name(int layout) {
    static const char *n[SC_NLAYOUTS] = {"bshd", "bhsd", "padded", "padded_hm", "cache", "cache_hm", "packed"};
    return layout >= 0 && layout < SC_NLAYOUTS ? n[layout] : "?";
}

/* ─── tensors ───────────────────────────────────────────────────────────── */
static size_t view_extent(int64_t B, int64_t S, int64_t H, int64_t D, const attn_view *v) {
    if (B == 0 || S == 0 || H == 0 || D == 0) return 0;
    return (size_t)((B - 1) * v->stride_b + (S - 1) * v->stride_s + (H - 1) * v->stride_h + D);
}

void sc_tensor_alloc(sc_tensor *t, int64_t B, int64_t S, int64_t H, int64_t D, int layout, tu_rng *r) {
    memset(t, 0, sizeof *t);
    t->B = B; t->S = S; t->H = H; t->D = D;
    t->layout = layout;
    int64_t sb = 0, ss = 0, sh = 0, lead = 0, tail = 0;
    int64_t ph = tu_int(r, 0, 5), ps = tu_int(r, 0, 7), pb = tu_int(r, 0, 9), cap = S + tu_int(r, 1, 17);
    switch (layout) {
    default:
    case SC_BSHD: sh = D; ss = H * D; sb = S * ss; break;
    case SC_BHSD: ss = D; sh = S * D; sb = H * sh; break;
    case SC_PADDED:
        sh = D + ph; ss = H * sh + ps; sb = S * ss + pb;
        lead = tu_int(r, 0, 3); tail = tu_int(r, 0, 3);
        break;
    case SC_PADDED_HM:
        ss = D + ps; sh = S * ss + ph; sb = H * sh + pb;
        lead = tu_int(r, 0, 3); tail = tu_int(r, 0, 3);
        break;
    case SC_CACHE: sh = D; ss = H * D; sb = cap * ss; tail = (cap - S) * ss; break;
    case SC_CACHE_HM: ss = D; sh = cap * D; sb = H * sh; tail = (cap - S) * ss; break;
    }
    t->v.stride_b = sb; t->v.stride_s = ss; t->v.stride_h = sh;
    t->nbuf = (size_t)(lead + tail) + view_extent(B, S, H, D, &t->v) + 1;
    t->buf = xmalloc(t->nbuf * sizeof(float));
    t->own = 1;
    t->v.data = t->buf + lead;
    sc_fill_sentinel(t);
}

void sc_tensor_free(sc_tensor *t) {
    if (t->own) free(t->buf);
    memset(t, 0, sizeof *t);
}

int64_t sc_numel(const sc_tensor *t) { return t->B * t->S * t->H * t->D; }

float *sc_at(const sc_tensor *t, int64_t b, int64_t s, int64_t h) {
    return t->v.data + b * t->v.stride_b + s * t->v.stride_s + h * t->v.stride_h;
}

#define FOR_ROWS(t, b, s, h)                   \
    for (int64_t b = 0; b < (t)->B; b++)       \
        for (int64_t s = 0; s < (t)->S; s++)   \
            for (int64_t h = 0; h < (t)->H; h++)

void sc_fill_normal(sc_tensor *t, tu_rng *r, double sd) {
    FOR_ROWS(t, b, s, h) {
        float *p = sc_at(t, b, s, h);
        for (int64_t d = 0; d < t->D; d++) p[d] = (float)(tu_normal(r) * sd);
    }
}

void sc_fill_sentinel(sc_tensor *t) {
    float x = sentinel();
    for (size_t i = 0; i < t->nbuf; i++) t->buf[i] = x;
}

int sc_gaps_intact(const sc_tensor *t) {
    float *copy = xmalloc(t->nbuf * sizeof(float));
    memcpy(copy, t->buf, t->nbuf * sizeof(float));
    float x = sentinel();
    FOR_ROWS(t, b, s, h) {
        float *p = copy + (sc_at(t, b, s, h) - t->buf);
        for (int64_t d = 0; d < t->D; d++) p[d] = x;
    }
    int ok = 1;
    for (size_t i = 0; i < t->nbuf; i++) {
        uint32_t u;
        memcpy(&u, &copy[i], sizeof u);
        if (u != SC_SENTINEL_BITS) { ok = 0; break; }
    }
    free(copy);
    return ok;
}

void sc_to_double(const sc_tensor *t, double *dst) {
    FOR_ROWS(t, b, s, h) {
        const float *p = sc_at(t, b, s, h);
        double *q = dst + ((b * t->S + s) * t->H + h) * t->D;
        for (int64_t d = 0; d < t->D; d++) q[d] = (double)p[d];
    }
}

void sc_to_float(const sc_tensor *t, float *dst) {
    FOR_ROWS(t, b, s, h) {
        const float *p = sc_at(t, b, s, h);
        memcpy(dst + ((b * t->S + s) * t->H + h) * t->D, p, (size_t)t->D * sizeof(float));
    }
}

void sc_from_float(sc_tensor *t, const float *src) {
    FOR_ROWS(t, b, s, h) {
        float *p = sc_at(t, b, s, h);
        memcpy(p, src + ((b * t->S + s) * t->H + h) * t->D, (size_t)t->D * sizeof(float));
    }
}

/* ─── sequences ─────────────────────────────────────────────────────────── */
typedef struct sc_seq {
    int64_t q0, k0, sq, skv, skb;
} sc_seq;

static sc_seq seq_of(const sc_case *c, int64_t b) {
    sc_seq s;
    if (c->varlen) {
        s.q0 = c->o.cu_seqlens_q[b]; s.k0 = c->o.cu_seqlens_k[b];
        s.sq = c->o.cu_seqlens_q[b + 1] - s.q0; s.skv = c->o.cu_seqlens_k[b + 1] - s.k0;
    } else {
        s.q0 = b * c->d.seq_q; s.k0 = b * c->d.seq_k;
        s.sq = c->d.seq_q; s.skv = c->d.seq_k;
    }
    s.skb = c->o.key_lens ? c->o.key_lens[b] : s.skv;
    return s;
}

int sc_visible(const sc_case *c, int64_t b, int64_t h, int64_t i, int64_t j) {
    const attn_sdpa_opts *o = &c->o;
    sc_seq sq = seq_of(c, b);
    int64_t p = (o->align == ATTN_ALIGN_BOTTOM_RIGHT ? i + sq.skb - sq.sq : i) + o->q_pos_offset;
    if (j >= sq.skb) return 0;
    if (o->causal && j > p) return 0;
    if (o->window_left >= 0 && j < p - o->window_left) return 0;
    if (o->window_right >= 0 && j > p + o->window_right) return 0;
    int64_t moff = b * o->mask_stride_b + h * o->mask_stride_h + i * o->mask_stride_q + j;
    if (o->mask_kind == ATTN_MASK_BOOL && ((const uint8_t *)o->mask)[moff] == 0) return 0;
    if (o->mask_kind == ATTN_MASK_ADD && ((const float *)o->mask)[moff] == -INFINITY) return 0;
    return 1;
}

void sc_seq_rows(const sc_case *c, int64_t b, int64_t *q0, int64_t *sq, int64_t *k0, int64_t *sk) {
    sc_seq s = seq_of(c, b);
    *q0 = s.q0; *sq = s.sq; *k0 = s.k0; *sk = s.skv;
}

int64_t sc_nq(const sc_case *c) { return c->Bq * c->d.seq_q * c->d.heads_q * c->d.head_dim; }
int64_t sc_nk(const sc_case *c) { return c->Bq * c->d.seq_k * c->d.heads_kv * c->d.head_dim; }
int64_t sc_nv(const sc_case *c) { return c->Bq * c->d.seq_k * c->d.heads_kv * c->Dv; }
int64_t sc_no(const sc_case *c) { return c->Bq * c->d.seq_q * c->d.heads_q * c->Dv; }

static void opts_init(attn_sdpa_opts *o) {
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->window_left = -1;
    o->window_right = -1;
}

/* ─── generator ─────────────────────────────────────────────────────────── */
static int64_t pick(tu_rng *r, const int64_t *a, int n) { return a[tu_int(r, 0, n - 1)]; }

/* largest candidate < x (x / 2 if none) */
static int64_t shrink(const sc_gen *g, int64_t x) {
    int64_t best = -1;
    for (int i = 0; i < g->nseqs; i++)
        if (g->seqs[i] < x && g->seqs[i] > best) best = g->seqs[i];
    return best >= 1 ? best : x / 2;
}

static int64_t case_work(const sc_case *c) {
    int64_t w = 0;
    for (int64_t b = 0; b < c->d.batch; b++) {
        sc_seq s = seq_of(c, b);
        w += c->d.heads_q * s.sq * s.skv * (c->d.head_dim + c->Dv);
    }
    return w;
}

void sc_describe(sc_case *c) {
    const attn_sdpa_opts *o = &c->o;
    char *p = c->desc;
    size_t n = sizeof c->desc;
    int k = snprintf(p, n, "B=%lld Sq=%lld Sk=%lld Hq=%lld Hkv=%lld D=%lld Dv=%lld", (long long)c->d.batch,
                     (long long)c->d.seq_q, (long long)c->d.seq_k, (long long)c->d.heads_q,
                     (long long)c->d.heads_kv, (long long)c->d.head_dim, (long long)c->Dv);
#define APP(...)                                                            \
    do {                                                                    \
        if (k > 0 && (size_t)k < n) k += snprintf(p + k, n - (size_t)k, __VA_ARGS__); \
    } while (0)
    if (o->scale != 0.0f) APP(" scale=%g", (double)o->scale);
    if (o->causal) APP(" causal");
    if (o->causal || o->alibi_slopes || o->window_left >= 0 || o->window_right >= 0)
        APP("/%s", o->align == ATTN_ALIGN_BOTTOM_RIGHT ? "br" : "tl");
    if (o->q_pos_offset) APP(" q_pos_offset=%lld", (long long)o->q_pos_offset);
    if (o->key_lens) {
        APP(" key_lens=[");
        for (int64_t b = 0; b < c->d.batch && b < 6; b++) APP("%s%d", b ? "," : "", (int)o->key_lens[b]);
        APP("]");
    }
    if (o->window_left >= 0 || o->window_right >= 0)
        APP(" window=(%lld,%lld)", (long long)o->window_left, (long long)o->window_right);
    if (o->alibi_slopes) APP(" alibi");
    if (o->softcap > 0.0f) APP(" softcap=%g", (double)o->softcap);
    if (o->mask_kind) {
        static const char *pat[] = {"(B,Hq,Sq,Sk)", "(B,1,Sq,Sk)", "(1,1,Sq,Sk)", "(B,1,1,Sk)", "(1,Hq,Sq,Sk)"};
        APP(" mask=%s%s strides=(%lld,%lld,%lld)", o->mask_kind == ATTN_MASK_BOOL ? "bool" : "add",
            c->mask_pattern >= 0 && c->mask_pattern < 5 ? pat[c->mask_pattern] : "(custom)",
            (long long)o->mask_stride_b, (long long)o->mask_stride_h, (long long)o->mask_stride_q);
    }
    if (c->varlen) {
        APP(" varlen q=[");
        for (int64_t b = 0; b <= c->d.batch && b < 7; b++) APP("%s%d", b ? "," : "", (int)o->cu_seqlens_q[b]);
        APP("] k=[");
        for (int64_t b = 0; b <= c->d.batch && b < 7; b++) APP("%s%d", b ? "," : "", (int)o->cu_seqlens_k[b]);
        APP("]");
    }
    if (o->dropout_p > 0.0f) APP(" dropout=%g seed=%llu", (double)o->dropout_p, (unsigned long long)o->dropout_seed);
    if (o->num_threads) APP(" threads=%d", o->num_threads);
    if (c->sd_qk != 1.0) APP(" qk~N(0,%.3g^2)", c->sd_qk);
    if (c->shared_k) APP(" k=c+e/sd^2");
    APP(" in=%s/%s/%s out=%s/%s", sc_layout_name(c->q.layout), sc_layout_name(c->k.layout),
        sc_layout_name(c->dO.layout), sc_layout_name(c->out.layout), sc_layout_name(c->dq.layout));
#undef APP
}

static void alloc_io(sc_case *c, tu_rng *r, double sd_qk) {
    int64_t B = c->Bq, Sq = c->d.seq_q, Sk = c->d.seq_k, Hq = c->d.heads_q, Hkv = c->d.heads_kv;
    int64_t D = c->d.head_dim, Dv = c->Dv;
    int li = c->layout_in, lo = c->layout_out;
    int packable = Sq == Sk && D == Dv;
    if (!packable && li == SC_PACKED) li = SC_PADDED;
    if (!packable && lo == SC_PACKED) lo = SC_PADDED_HM;
    c->layout_in = li; c->layout_out = lo;

    if (li == SC_PACKED) {
        int64_t Ht = Hq + 2 * Hkv;
        size_t n = (size_t)(B * Sq * Ht * D) + 1;
        c->packed_in = xmalloc(n * sizeof(float));
        attn_view base = attn_view_bshd(c->packed_in, Sq, Ht, D);
        sc_tensor *ts[3] = {&c->q, &c->k, &c->v};
        int64_t H[3] = {Hq, Hkv, Hkv}, off[3] = {0, Hq * D, (Hq + Hkv) * D};
        for (int i = 0; i < 3; i++) {
            sc_tensor *t = ts[i];
            memset(t, 0, sizeof *t);
            t->B = B; t->S = Sq; t->H = H[i]; t->D = D; t->layout = SC_PACKED;
            t->v = base; t->v.data = c->packed_in + off[i];
            t->buf = c->packed_in; t->nbuf = n; t->own = 0;
        }
        c->packed_in[n - 1] = sentinel();
    } else {
        int lq = li == SC_CACHE || li == SC_CACHE_HM ? SC_PADDED : li;
        sc_tensor_alloc(&c->q, B, Sq, Hq, D, lq, r);
        sc_tensor_alloc(&c->k, B, Sk, Hkv, D, li, r);
        int lv = li == SC_CACHE || li == SC_CACHE_HM ? (tu_int(r, 0, 1) ? SC_CACHE : SC_CACHE_HM) : li;
        sc_tensor_alloc(&c->v, B, Sk, Hkv, Dv, lv, r);
    }
    int ldo = c->features & SC_F_VIEWS ? (int)tu_int(r, 0, 3) : SC_BSHD;
    sc_tensor_alloc(&c->dO, B, Sq, Hq, Dv, ldo, r);
    sc_tensor_alloc(&c->out, B, Sq, Hq, Dv, lo == SC_PACKED ? SC_BSHD : lo, r);
    if (lo == SC_PACKED) {
        int64_t Ht = Hq + 2 * Hkv;
        size_t n = (size_t)(B * Sq * Ht * D) + 1;
        c->packed_out = xmalloc(n * sizeof(float));
        attn_view base = attn_view_bshd(c->packed_out, Sq, Ht, D);
        sc_tensor *ts[3] = {&c->dq, &c->dk, &c->dv};
        int64_t H[3] = {Hq, Hkv, Hkv}, off[3] = {0, Hq * D, (Hq + Hkv) * D};
        for (int i = 0; i < 3; i++) {
            sc_tensor *t = ts[i];
            memset(t, 0, sizeof *t);
            t->B = B; t->S = Sq; t->H = H[i]; t->D = D; t->layout = SC_PACKED;
            t->v = base; t->v.data = c->packed_out + off[i];
            t->buf = c->packed_out; t->nbuf = n; t->own = 0;
        }
        float x = sentinel();
        for (size_t i = 0; i < n; i++) c->packed_out[i] = x;
    } else {
        sc_tensor_alloc(&c->dq, B, Sq, Hq, D, lo, r);
        sc_tensor_alloc(&c->dk, B, Sk, Hkv, D, lo, r);
        sc_tensor_alloc(&c->dv, B, Sk, Hkv, Dv, lo, r);
    }
    c->sd_qk = sd_qk;
    sc_fill_normal(&c->q, r, sd_qk);
    sc_fill_normal(&c->k, r, sd_qk);
    sc_fill_normal(&c->v, r, 1.0);
    sc_fill_normal(&c->dO, r, 1.0);
    c->q64 = xmalloc((size_t)sc_nq(c) * sizeof(double));
    c->k64 = xmalloc((size_t)sc_nk(c) * sizeof(double));
    c->v64 = xmalloc((size_t)sc_nv(c) * sizeof(double));
    c->dO64 = xmalloc((size_t)sc_no(c) * sizeof(double));
    sc_case_refresh64(c);
    c->nlse = c->varlen ? c->d.heads_q * c->d.seq_q : c->d.batch * c->d.heads_q * c->d.seq_q;
}

void sc_case_refresh64(sc_case *c) {
    sc_to_double(&c->q, c->q64);
    sc_to_double(&c->k, c->k64);
    sc_to_double(&c->v, c->v64);
    sc_to_double(&c->dO, c->dO64);
}

void sc_case_init(sc_case *c, const attn_sdpa_dims *d, const attn_sdpa_opts *o, tu_rng *r, double sd_qk) {
    memset(c, 0, sizeof *c);
    c->d = *d;
    c->o = *o;
    c->Dv = d->head_dim_v ? d->head_dim_v : d->head_dim;
    c->varlen = o->cu_seqlens_q != NULL;
    c->Bq = c->varlen ? 1 : d->batch;
    c->layout_in = c->layout_out = SC_BSHD;
    c->mask_pattern = -1;
    alloc_io(c, r, sd_qk);
    c->work = case_work(c);
    sc_describe(c);
}

static void gen_mask(sc_case *c, tu_rng *r, int kind, int64_t rows, int64_t cols) {
    int64_t B = c->d.batch, Hq = c->d.heads_q;
    int pat = (int)tu_int(r, 0, 4);
    int64_t rowstride = cols + (tu_int(r, 0, 2) == 0 ? tu_int(r, 1, 5) : 0);
    int64_t sb = 0, sh = 0, sq = 0;
    switch (pat) {
    case 0: sq = rowstride; sh = rows * sq; sb = Hq * sh; break;
    case 1: sq = rowstride; sh = 0; sb = rows * sq; break;
    case 2: sq = rowstride; sh = 0; sb = 0; break;
    case 3: sq = 0; sh = 0; sb = rowstride; break;
    default: sq = rowstride; sh = rows * sq; sb = 0; break;
    }
    size_t n = (size_t)((B - 1) * sb + (Hq - 1) * sh + (rows > 0 ? rows - 1 : 0) * sq + cols) + 1;
    c->mask_pattern = pat;
    c->mask_elems = n;
    c->o.mask_kind = kind;
    c->o.mask_stride_b = sb; c->o.mask_stride_h = sh; c->o.mask_stride_q = sq;
    double p_attend = pat == 3 ? 0.85 : 0.7;
    if (kind == ATTN_MASK_BOOL) {
        uint8_t *m = xmalloc(n);
        for (size_t i = 0; i < n; i++) m[i] = tu_uniform(r) < p_attend ? (uint8_t)tu_int(r, 1, 255) : 0;
        /* some fully masked rows */
        if (sq > 0 && rows > 0 && tu_int(r, 0, 2) == 0) {
            int64_t i0 = tu_int(r, 0, rows - 1);
            memset(m + i0 * sq, 0, (size_t)cols);
        }
        c->mask = m;
    } else {
        float *m = xmalloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) m[i] = tu_uniform(r) < 0.15 ? -INFINITY : (float)(tu_normal(r) * 2.0);
        if (sq > 0 && rows > 0 && tu_int(r, 0, 2) == 0) {
            int64_t i0 = tu_int(r, 0, rows - 1);
            for (int64_t j = 0; j < cols; j++) m[i0 * sq + j] = -INFINITY;
        }
        c->mask = m;
    }
    c->o.mask = c->mask;
}

/* k_j = c + e_j with c ~ N(0, 10^2) per (b, kv head) and e_j = k_j / sd^2
 * (~N(0, 1/sd^2)): logits q.c (up to ~10 sd) shared by the row's keys plus
 * O(1) variation, i.e. flat rows at a large |lse|. */
static void share_keys(sc_case *c, tu_rng *r) {
    const int64_t D = c->d.head_dim;
    const double e = 1.0 / (c->sd_qk * c->sd_qk);
    double *cv = xmalloc((size_t)D * sizeof(double));
    for (int64_t b = 0; b < c->k.B; b++)
        for (int64_t h = 0; h < c->k.H; h++) {
            for (int64_t d = 0; d < D; d++) cv[d] = 10.0 * tu_normal(r);
            for (int64_t j = 0; j < c->k.S; j++) {
                float *kp = sc_at(&c->k, b, j, h);
                for (int64_t d = 0; d < D; d++) kp[d] = (float)(cv[d] + e * kp[d]);
            }
        }
    free(cv);
    c->shared_k = 1;
    sc_case_refresh64(c);
}

void sc_gen_case(sc_case *c, tu_rng *r, const sc_gen *g) {
    memset(c, 0, sizeof *c);
    opts_init(&c->o);
    c->mask_pattern = -1;
    double pf = g->p_feature > 0.0 ? g->p_feature : 0.2;
    unsigned f = 0;
    for (unsigned bit = 1; bit < SC_F_ALL; bit <<= 1)
        if (g->allow & bit && ((g->force & bit) || tu_uniform(r) < pf)) f |= bit;
    if ((f & SC_F_BOOL) && (f & SC_F_ADD)) f &= ~(unsigned)(tu_int(r, 0, 1) ? SC_F_BOOL : SC_F_ADD);
    if (g->max_group < 2 || g->max_hkv < 1) f &= ~(unsigned)SC_F_GQA;

    int64_t D = pick(r, g->dims, g->ndims);
    int dv_apart = g->p_dv > 0.0 ? tu_uniform(r) < g->p_dv : tu_int(r, 0, 3) == 0;
    int64_t Dv = dv_apart ? pick(r, g->dims, g->ndims) : D;
    int64_t Hkv = tu_int(r, 1, g->max_hkv);
    int64_t group = f & SC_F_GQA ? tu_int(r, 2, g->max_group) : 1;
    if (!(f & SC_F_GQA) && tu_int(r, 0, 3) == 0) Hkv = 1; /* plain single-head too */
    int varlen = (f & SC_F_VARLEN) != 0;
    if (f & SC_F_VIEWS) {
        static const int ins[6] = {SC_BHSD, SC_PADDED, SC_PADDED_HM, SC_CACHE, SC_CACHE_HM, SC_PACKED};
        static const int outs[4] = {SC_BHSD, SC_PADDED, SC_PADDED_HM, SC_PACKED};
        c->layout_in = ins[tu_int(r, 0, 5)];
        c->layout_out = outs[tu_int(r, 0, 3)];
    } else {
        c->layout_in = c->layout_out = SC_BSHD;
    }
    int want_packed = c->layout_in == SC_PACKED || c->layout_out == SC_PACKED;
    if (want_packed) Dv = D;
    int64_t B = tu_int(r, 1, g->max_b + (varlen ? 1 : 0));
    int64_t Sq = pick(r, g->seqs, g->nseqs), Sk = tu_int(r, 0, 3) == 0 || want_packed ? Sq : pick(r, g->seqs, g->nseqs);
    int64_t *lq = NULL, *lk = NULL;
    if (varlen) {
        lq = xcalloc((size_t)B, sizeof *lq);
        lk = xcalloc((size_t)B, sizeof *lk);
        int self = tu_int(r, 0, 2) == 0;
        for (int64_t b = 0; b < B; b++) {
            lq[b] = tu_int(r, 0, 9) == 0 ? 0 : pick(r, g->seqs, g->nseqs);
            lk[b] = self || want_packed ? lq[b] : tu_int(r, 0, 9) == 0 ? 0 : pick(r, g->seqs, g->nseqs);
        }
    }
    /* shrink to the work bound */
    for (int guard = 0; guard < 1000; guard++) {
        int64_t w = 0;
        if (varlen)
            for (int64_t b = 0; b < B; b++) w += Hkv * group * lq[b] * lk[b] * (D + Dv);
        else
            w = B * Hkv * group * Sq * Sk * (D + Dv);
        if (w <= g->max_work) break;
        int64_t choice = tu_int(r, 0, 19); /* 25% batch, 15% heads, 60% sequence */
        if (choice < 5 && !varlen && B > 1) { B--; continue; }
        if (choice >= 5 && choice < 8 && Hkv > 1) { Hkv--; continue; }
        if (choice >= 5 && choice < 8 && group > 2) { group--; continue; }
        if (varlen) {
            int64_t *mx = &lq[0];
            for (int64_t b = 0; b < B; b++) {
                if (lq[b] > *mx) mx = &lq[b];
                if (lk[b] > *mx) mx = &lk[b];
            }
            if (*mx <= 1) { D = D > 8 ? 8 : D; Dv = Dv > 8 ? 8 : Dv; break; }
            int64_t nv = shrink(g, *mx);
            if (want_packed) /* keep q and k lengths equal */
                for (int64_t b = 0; b < B; b++) {
                    if (lq[b] == *mx && mx != &lq[b]) lq[b] = nv;
                    if (lk[b] == *mx && mx != &lk[b]) lk[b] = nv;
                }
            *mx = nv;
        } else if (want_packed) {
            if (Sq <= 1) { if (B > 1) B--; else if (Hkv > 1) Hkv--; else break; continue; }
            Sq = Sk = shrink(g, Sq);
        } else {
            if (Sq <= 1 && Sk <= 1) {
                if (B > 1) B--; else if (Hkv > 1) Hkv--; else break;
                continue;
            }
            if (Sq >= Sk) Sq = shrink(g, Sq); else Sk = shrink(g, Sk);
        }
    }
    c->d.batch = B; c->d.heads_kv = Hkv; c->d.heads_q = Hkv * group;
    c->d.head_dim = D; c->d.head_dim_v = (Dv == D && tu_int(r, 0, 1)) ? 0 : Dv;
    c->Dv = Dv;
    c->varlen = varlen;
    if (varlen) {
        c->cu_q = xcalloc((size_t)B + 1, sizeof(int32_t));
        c->cu_k = xcalloc((size_t)B + 1, sizeof(int32_t));
        for (int64_t b = 0; b < B; b++) {
            c->cu_q[b + 1] = c->cu_q[b] + (int32_t)lq[b];
            c->cu_k[b + 1] = c->cu_k[b] + (int32_t)lk[b];
        }
        c->d.seq_q = c->cu_q[B];
        c->d.seq_k = c->cu_k[B];
        c->o.cu_seqlens_q = c->cu_q;
        c->o.cu_seqlens_k = c->cu_k;
        c->Bq = 1;
    } else {
        c->d.seq_q = Sq; c->d.seq_k = Sk;
        c->Bq = B;
    }
    int64_t maxq = varlen ? 0 : Sq, maxk = varlen ? 0 : Sk;
    for (int64_t b = 0; varlen && b < B; b++) {
        if (lq[b] > maxq) maxq = lq[b];
        if (lk[b] > maxk) maxk = lk[b];
    }

    /* options */
    if (f & SC_F_SCALE) {
        double s = tu_int(r, 0, 4) == 0 ? -(0.05 + 0.3 * tu_uniform(r)) : 0.02 + 0.5 * tu_uniform(r);
        c->o.scale = (float)s;
    }
    if (f & SC_F_CAUSAL) c->o.causal = 1;
    if (tu_int(r, 0, 1)) c->o.align = ATTN_ALIGN_BOTTOM_RIGHT;
    if (f & SC_F_KEYLENS) {
        c->key_lens = xcalloc((size_t)B, sizeof(int32_t));
        for (int64_t b = 0; b < B; b++) {
            int64_t skv = varlen ? lk[b] : Sk;
            int64_t kl;
            double u = tu_uniform(r);
            if (u < 0.1) kl = 0;
            else if (u < 0.6) kl = skv - tu_int(r, 0, 3);
            else kl = tu_int(r, 0, skv);
            if (kl < 0) kl = 0;
            c->key_lens[b] = (int32_t)kl;
        }
        c->o.key_lens = c->key_lens;
    }
    if (f & SC_F_WINDOW) {
        int64_t cand[6] = {-1, 0, 1, 2, 5, tu_int(r, 0, maxk > 0 ? maxk : 1)};
        c->o.window_left = cand[tu_int(r, 0, 5)];
        c->o.window_right = cand[tu_int(r, 0, 5)];
        if (c->o.window_left < 0 && c->o.window_right < 0) c->o.window_left = tu_int(r, 0, 8);
    }
    if (f & SC_F_ALIBI) {
        int64_t Hq = c->d.heads_q;
        c->alibi = xcalloc((size_t)Hq, sizeof(float));
        int geo = tu_int(r, 0, 1) == 0;
        for (int64_t h = 0; h < Hq; h++)
            c->alibi[h] = geo ? (float)pow(2.0, -8.0 * (double)(h + 1) / (double)Hq) : (float)(0.5 * tu_uniform(r));
        c->o.alibi_slopes = c->alibi;
    }
    if (f & SC_F_SOFTCAP) {
        static const float caps[4] = {1.0f, 3.0f, 10.0f, 50.0f};
        c->o.softcap = caps[tu_int(r, 0, 3)];
    }
    if (f & (SC_F_BOOL | SC_F_ADD)) gen_mask(c, r, f & SC_F_BOOL ? ATTN_MASK_BOOL : ATTN_MASK_ADD, maxq, maxk);
    if (f & SC_F_DROPOUT) {
        static const float ps[4] = {0.1f, 0.3f, 0.5f, 0.9f};
        c->o.dropout_p = ps[tu_int(r, 0, 3)];
        c->o.dropout_seed = tu_next(r);
    }
    if (tu_int(r, 0, 3) == 0) c->o.num_threads = (int)tu_int(r, 1, 3);
    /* drawn only when allowed (outside SC_F_ALL): other suites' streams are unchanged */
    if (g->allow & SC_F_QPOS && ((g->force & SC_F_QPOS) || tu_uniform(r) < pf)) {
        int64_t span = maxq + maxk + 2;
        c->o.q_pos_offset = tu_int(r, 0, 15) == 0 ? (tu_int(r, 0, 1) ? 1 : -1) * ((int64_t)1 << 40)
                                                   : tu_int(r, -span, span);
        f |= SC_F_QPOS;
    }
    c->features = f;

    /* data */
    double sd = 1.0;
    if (tu_int(r, 0, 4) == 0) sd = 2.5;
    if ((f & SC_F_SOFTCAP) && tu_int(r, 0, 2) == 0) sd = 3.0;
    if (g->sd_max > 0.0) sd = g->sd_min * pow(g->sd_max / g->sd_min, tu_uniform(r));
    alloc_io(c, r, sd);
    if (g->p_shared_k > 0.0 && tu_uniform(r) < g->p_shared_k) share_keys(c, r);
    c->work = case_work(c);
    free(lq);
    free(lk);
    sc_describe(c);
}

void sc_case_free(sc_case *c) {
    sc_tensor *ts[8] = {&c->q, &c->k, &c->v, &c->dO, &c->out, &c->dq, &c->dk, &c->dv};
    for (int i = 0; i < 8; i++) sc_tensor_free(ts[i]);
    free(c->packed_in);
    free(c->packed_out);
    free(c->key_lens); free(c->cu_q); free(c->cu_k);
    free(c->alibi);
    free(c->mask);
    free(c->q64); free(c->k64); free(c->v64); free(c->dO64);
    free(c->stats);
    memset(c, 0, sizeof *c);
}

/* ─── reference ─────────────────────────────────────────────────────────── */
attn_status sc_ref_fwd(const sc_case *c, double *o, double *lse) {
    return attn_ref_sdpa_fwd(&c->d, c->q64, c->k64, c->v64, o, lse, &c->o);
}

attn_status sc_ref_bwd(const sc_case *c, double *dq, double *dk, double *dv) {
    return attn_ref_sdpa_bwd(&c->d, c->q64, c->k64, c->v64, c->dO64, dq, dk, dv, &c->o);
}

/* ─── condition (term magnitudes) in float64 ─────────────────────────────── */
static double cond_row(const sc_case *c, const sc_seq *sq, int64_t b, int64_t h, int64_t i, double scale, double *t,
                       double *s) {
    const attn_sdpa_opts *o = &c->o;
    int64_t p = (o->align == ATTN_ALIGN_BOTTOM_RIGHT ? i + sq->skb - sq->sq : i) + o->q_pos_offset;
    int64_t Hq = c->d.heads_q, Hkv = c->d.heads_kv, D = c->d.head_dim, hk = h / (Hq / Hkv);
    const double *q_i = c->q64 + ((sq->q0 + i) * Hq + h) * D;
    double m = -INFINITY;
    for (int64_t j = 0; j < sq->skv; j++) {
        int vis = j < sq->skb;
        if (o->causal && j > p) vis = 0;
        if (o->window_left >= 0 && j < p - o->window_left) vis = 0;
        if (o->window_right >= 0 && j > p + o->window_right) vis = 0;
        int64_t moff = b * o->mask_stride_b + h * o->mask_stride_h + i * o->mask_stride_q + j;
        if (o->mask_kind == ATTN_MASK_BOOL && vis && ((const uint8_t *)o->mask)[moff] == 0) vis = 0;
        t[j] = 0.0;
        if (!vis) { s[j] = -INFINITY; continue; }
        const double *k_j = c->k64 + ((sq->k0 + j) * Hkv + hk) * D;
        double dot = 0.0;
        for (int64_t d = 0; d < D; d++) dot += q_i[d] * k_j[d];
        double x = scale * dot;
        t[j] = x;
        if (o->softcap > 0.0f) x = (double)o->softcap * tanh(x / (double)o->softcap);
        if (o->alibi_slopes) x -= (double)o->alibi_slopes[h] * (double)llabs(p - j);
        if (o->mask_kind == ATTN_MASK_ADD) x += (double)((const float *)o->mask)[moff];
        s[j] = x;
        if (x > m) m = x;
    }
    return m;
}

void sc_ref_cond(const sc_case *c, double cond[5], double condA[5]) {
    int64_t Hq = c->d.heads_q, Hkv = c->d.heads_kv, D = c->d.head_dim, Dv = c->Dv, G = Hq / Hkv;
    double scale = c->o.scale != 0.0f ? (double)c->o.scale : 1.0 / sqrt((double)D);
    int64_t mk = 1;
    for (int64_t b = 0; b < c->d.batch; b++) {
        sc_seq s = seq_of(c, b);
        if (s.skv > mk) mk = s.skv;
    }
    double *t = xmalloc((size_t)mk * sizeof(double)), *s = xmalloc((size_t)mk * sizeof(double));
    double *co = xcalloc((size_t)sc_no(c) + 1, sizeof(double));
    double *cq = xcalloc((size_t)sc_nq(c) + 1, sizeof(double));
    double *ck = xcalloc((size_t)sc_nk(c) + 1, sizeof(double));
    double *cv = xcalloc((size_t)sc_nv(c) + 1, sizeof(double));
    double *coA = xcalloc((size_t)sc_no(c) + 1, sizeof(double));
    double *cqA = xcalloc((size_t)sc_nq(c) + 1, sizeof(double));
    double *ckA = xcalloc((size_t)sc_nk(c) + 1, sizeof(double));
    double *cvA = xcalloc((size_t)sc_nv(c) + 1, sizeof(double));
    double *oa = xcalloc((size_t)Dv + 1, sizeof(double));
    double lmax = 0.0, lmaxA = 0.0;
    uint32_t thr = attn__dropout_threshold(c->o.dropout_p);
    double dsc = c->o.dropout_p > 0.0f ? 1.0 / (1.0 - (double)c->o.dropout_p) : 1.0;
    for (int64_t b = 0; b < c->d.batch; b++) {
        sc_seq sq = seq_of(c, b);
        for (int64_t h = 0; h < Hq; h++) {
            int64_t hk = h / G;
            for (int64_t i = 0; i < sq.sq; i++) {
                double m = cond_row(c, &sq, b, h, i, scale, t, s);
                if (!(m > -INFINITY)) continue;
                double sum = 0.0;
                for (int64_t j = 0; j < sq.skv; j++) sum += s[j] == -INFINITY ? 0.0 : exp(s[j] - m);
                double lse = m + log(sum);
                int64_t row = (sq.q0 + i) * Hq + h;
                const double *dO_i = c->dO64 + row * Dv, *q_i = c->q64 + row * D;
                uint64_t rk = attn__dropout_row_key(c->o.dropout_seed, b, h, i);
                /* A_j = |scale| sum_d |q_id k_jd| (1 - tanh^2) + |s_j| + |lse|: the
                 * size of the rounding error of logit j (dot product, softcap /
                 * alibi / mask additions, s - lse) in units of eps */
                for (int64_t j = 0; j < sq.skv; j++) {
                    if (s[j] == -INFINITY) continue;
                    const double *k_j = c->k64 + ((sq.k0 + j) * Hkv + hk) * D;
                    double a = 0.0;
                    for (int64_t d = 0; d < D; d++) a += fabs(q_i[d] * k_j[d]);
                    a *= fabs(scale);
                    if (c->o.softcap > 0.0f) {
                        double th = tanh(t[j] / (double)c->o.softcap);
                        a *= 1.0 - th * th;
                    }
                    t[j] = a + fabs(s[j]) + fabs(lse); /* t is only needed through A from here on */
                }
                /* o_i (true) and the o / lse conditions */
                memset(oa, 0, (size_t)Dv * sizeof(double));
                double *co_i = co + row * Dv, clse = fabs(lse) + 1.0, clseA = 0.0;
                for (int64_t j = 0; j < sq.skv; j++) {
                    if (s[j] == -INFINITY) continue;
                    double P = exp(s[j] - lse);
                    double mj = c->o.dropout_p > 0.0f ? (attn__dropout_keep(rk, j, thr) ? dsc : 0.0) : 1.0;
                    const double *v_j = c->v64 + ((sq.k0 + j) * Hkv + hk) * Dv;
                    for (int64_t d = 0; d < Dv; d++) oa[d] += P * mj * v_j[d];
                    clseA += P * t[j];
                }
                if (clse > lmax) lmax = clse;
                if (clseA > lmaxA) lmaxA = clseA;
                for (int64_t j = 0; j < sq.skv; j++) {
                    if (s[j] == -INFINITY) continue;
                    double P = exp(s[j] - lse);
                    double mj = c->o.dropout_p > 0.0f ? (attn__dropout_keep(rk, j, thr) ? dsc : 0.0) : 1.0;
                    const double *v_j = c->v64 + ((sq.k0 + j) * Hkv + hk) * Dv;
                    for (int64_t d = 0; d < Dv; d++) {
                        co_i[d] += P * mj * fabs(v_j[d]);
                        coA[row * Dv + d] += P * mj * fabs(v_j[d]) * t[j];
                    }
                }
                double adi = 0.0, ado = 0.0;
                for (int64_t d = 0; d < Dv; d++) {
                    adi += fabs(dO_i[d] * oa[d]);
                    ado += fabs(dO_i[d]);
                }
                (void)ado;
                for (int64_t j = 0; j < sq.skv; j++) {
                    if (s[j] == -INFINITY) continue;
                    double P = exp(s[j] - lse);
                    double mj = c->o.dropout_p > 0.0f ? (attn__dropout_keep(rk, j, thr) ? dsc : 0.0) : 1.0;
                    const double *v_j = c->v64 + ((sq.k0 + j) * Hkv + hk) * Dv;
                    const double *k_j = c->k64 + ((sq.k0 + j) * Hkv + hk) * D;
                    double *cv_j = cv + ((sq.k0 + j) * Hkv + hk) * Dv, *ck_j = ck + ((sq.k0 + j) * Hkv + hk) * D;
                    double adp = 0.0;
                    for (int64_t d = 0; d < Dv; d++) {
                        adp += fabs(dO_i[d] * v_j[d]);
                        cv_j[d] += P * mj * fabs(dO_i[d]);
                        cvA[((sq.k0 + j) * Hkv + hk) * Dv + d] += P * mj * fabs(dO_i[d]) * t[j];
                    }
                    double ads = P * (mj * adp + adi) * fabs(scale);
                    for (int64_t d = 0; d < D; d++) {
                        cq[row * D + d] += ads * fabs(k_j[d]);
                        ck_j[d] += ads * fabs(q_i[d]);
                        cqA[row * D + d] += ads * t[j] * fabs(k_j[d]);
                        ckA[((sq.k0 + j) * Hkv + hk) * D + d] += ads * t[j] * fabs(q_i[d]);
                    }
                }
            }
        }
    }
    double *arr[5] = {co, NULL, cq, ck, cv}, *arrA[5] = {coA, NULL, cqA, ckA, cvA};
    int64_t len[5] = {sc_no(c), 0, sc_nq(c), sc_nk(c), sc_nv(c)};
    for (int w = 0; w < 5; w++) {
        double mx = 0.0, mxA = 0.0;
        for (int64_t x = 0; x < len[w]; x++) {
            if (arr[w][x] > mx) mx = arr[w][x];
            if (arrA[w] && arrA[w][x] > mxA) mxA = arrA[w][x];
        }
        cond[w] = mx;
        condA[w] = mxA;
    }
    cond[1] = lmax;
    condA[1] = lmaxA;
    free(t); free(s); free(co); free(cq); free(ck); free(cv); free(oa); free(coA); free(cqA); free(ckA); free(cvA);
}

/* ─── naive fp32 ────────────────────────────────────────────────────────── */
typedef struct naive_ctx {
    const sc_case *c;
    float *q, *k, *v, *dO; /* contiguous fp32 */
    float scale;
    int64_t Hq, Hkv, D, Dv, group;
} naive_ctx;

int sc_naive_reversed = 0;

/* Reverses the innermost dimension (rows of length d) of a contiguous array. */
static void reverse_rows(float *x, int64_t n, int64_t d) {
    for (int64_t r = 0; r < n / d; r++)
        for (int64_t a = 0, b = d - 1; a < b; a++, b--) {
            float t = x[r * d + a];
            x[r * d + a] = x[r * d + b];
            x[r * d + b] = t;
        }
}

static void naive_init(naive_ctx *n, const sc_case *c) {
    n->c = c;
    n->Hq = c->d.heads_q; n->Hkv = c->d.heads_kv; n->D = c->d.head_dim; n->Dv = c->Dv;
    n->group = n->Hq / n->Hkv;
    n->scale = c->o.scale != 0.0f ? c->o.scale : 1.0f / sqrtf((float)n->D);
    n->q = xmalloc((size_t)sc_nq(c) * sizeof(float));
    n->k = xmalloc((size_t)sc_nk(c) * sizeof(float));
    n->v = xmalloc((size_t)sc_nv(c) * sizeof(float));
    n->dO = xmalloc((size_t)sc_no(c) * sizeof(float));
    sc_to_float(&c->q, n->q);
    sc_to_float(&c->k, n->k);
    sc_to_float(&c->v, n->v);
    sc_to_float(&c->dO, n->dO);
    if (sc_naive_reversed) { /* the same math with every dot product summed the other way */
        reverse_rows(n->q, sc_nq(c), n->D);
        reverse_rows(n->k, sc_nk(c), n->D);
        reverse_rows(n->v, sc_nv(c), n->Dv);
        reverse_rows(n->dO, sc_no(c), n->Dv);
    }
}

static void naive_free(naive_ctx *n) {
    free(n->q); free(n->k); free(n->v); free(n->dO);
}

/* float score row: t (pre-softcap), s (final, -inf when invisible); returns max */
static float naive_row(const naive_ctx *n, const sc_seq *sq, int64_t b, int64_t h, int64_t i, float *t, float *s) {
    const attn_sdpa_opts *o = &n->c->o;
    int64_t p = (o->align == ATTN_ALIGN_BOTTOM_RIGHT ? i + sq->skb - sq->sq : i) + o->q_pos_offset;
    const float *q_i = n->q + ((sq->q0 + i) * n->Hq + h) * n->D;
    int64_t hk = h / n->group;
    float m = -INFINITY;
    for (int64_t j = 0; j < sq->skv; j++) {
        int vis = j < sq->skb;
        if (o->causal && j > p) vis = 0;
        if (o->window_left >= 0 && j < p - o->window_left) vis = 0;
        if (o->window_right >= 0 && j > p + o->window_right) vis = 0;
        int64_t moff = b * o->mask_stride_b + h * o->mask_stride_h + i * o->mask_stride_q + j;
        if (o->mask_kind == ATTN_MASK_BOOL && vis && ((const uint8_t *)o->mask)[moff] == 0) vis = 0;
        t[j] = 0.0f;
        if (!vis) { s[j] = -INFINITY; continue; }
        const float *k_j = n->k + ((sq->k0 + j) * n->Hkv + hk) * n->D;
        float dot = 0.0f;
        for (int64_t d = 0; d < n->D; d++) dot += q_i[d] * k_j[d];
        float x = n->scale * dot;
        t[j] = x;
        if (o->softcap > 0.0f) x = o->softcap * tanhf(x / o->softcap);
        if (o->alibi_slopes) x -= o->alibi_slopes[h] * (float)llabs(p - j);
        if (o->mask_kind == ATTN_MASK_ADD) x += ((const float *)o->mask)[moff];
        s[j] = x;
        if (x > m) m = x;
    }
    return m;
}

static float naive_drop(const sc_case *c, uint64_t rk, uint32_t thr, int64_t j) {
    if (c->o.dropout_p <= 0.0f) return 1.0f;
    return attn__dropout_keep(rk, j, thr) ? 1.0f / (1.0f - c->o.dropout_p) : 0.0f;
}

static int64_t max_keys(const sc_case *c) {
    int64_t m = 1;
    for (int64_t b = 0; b < c->d.batch; b++) {
        sc_seq s = seq_of(c, b);
        if (s.skv > m) m = s.skv;
    }
    return m;
}

static int64_t lse_index(const sc_case *c, const sc_seq *s, int64_t b, int64_t h, int64_t i) {
    return c->varlen ? h * c->d.seq_q + s->q0 + i : (b * c->d.heads_q + h) * c->d.seq_q + i;
}

void sc_naive_fwd(const sc_case *c, float *o, float *lse) {
    naive_ctx n;
    naive_init(&n, c);
    int64_t mk = max_keys(c);
    float *t = xmalloc((size_t)mk * sizeof(float)), *s = xmalloc((size_t)mk * sizeof(float));
    memset(o, 0, (size_t)sc_no(c) * sizeof(float));
    for (int64_t x = 0; x < c->nlse; x++) lse[x] = -INFINITY;
    uint32_t thr = attn__dropout_threshold(c->o.dropout_p);
    for (int64_t b = 0; b < c->d.batch; b++) {
        sc_seq sq = seq_of(c, b);
        for (int64_t h = 0; h < n.Hq; h++) {
            int64_t hk = h / n.group;
            for (int64_t i = 0; i < sq.sq; i++) {
                float m = naive_row(&n, &sq, b, h, i, t, s);
                float *o_i = o + ((sq.q0 + i) * n.Hq + h) * n.Dv;
                if (m == -INFINITY) { lse[lse_index(c, &sq, b, h, i)] = -INFINITY; continue; }
                float sum = 0.0f;
                for (int64_t j = 0; j < sq.skv; j++) {
                    s[j] = s[j] == -INFINITY ? 0.0f : expf(s[j] - m);
                    sum += s[j];
                }
                uint64_t rk = attn__dropout_row_key(c->o.dropout_seed, b, h, i);
                for (int64_t j = 0; j < sq.skv; j++) {
                    float pj = s[j] / sum * naive_drop(c, rk, thr, j);
                    if (pj == 0.0f) continue;
                    const float *v_j = n.v + ((sq.k0 + j) * n.Hkv + hk) * n.Dv;
                    for (int64_t d = 0; d < n.Dv; d++) o_i[d] += pj * v_j[d];
                }
                lse[lse_index(c, &sq, b, h, i)] = m + logf(sum);
            }
        }
    }
    free(t); free(s);
    if (sc_naive_reversed) reverse_rows(o, sc_no(c), n.Dv);
    naive_free(&n);
}

/* Naive backward over every row. P_j = exp(s_j - lse_i) from the given lse,
 * or (lse == NULL) the row's own softmax exp(s_j - m) / sum; Di = <dO_i, o_i>. */
static void naive_bwd_rows(const sc_case *c, const float *o_in, const float *lse, float *dq, float *dk, float *dv) {
    naive_ctx n;
    naive_init(&n, c);
    float *orev = NULL; /* o in the reversed dimension order (sc_naive_reversed) */
    const float *o = o_in;
    if (sc_naive_reversed) {
        orev = xmalloc(((size_t)sc_no(c) + 1) * sizeof(float));
        memcpy(orev, o_in, (size_t)sc_no(c) * sizeof(float));
        reverse_rows(orev, sc_no(c), n.Dv);
        o = orev;
    }
    int64_t mk = max_keys(c);
    float *t = xmalloc((size_t)mk * sizeof(float)), *s = xmalloc((size_t)mk * sizeof(float));
    memset(dq, 0, (size_t)sc_nq(c) * sizeof(float));
    memset(dk, 0, (size_t)sc_nk(c) * sizeof(float));
    memset(dv, 0, (size_t)sc_nv(c) * sizeof(float));
    uint32_t thr = attn__dropout_threshold(c->o.dropout_p);
    float cap = c->o.softcap;
    for (int64_t b = 0; b < c->d.batch; b++) {
        sc_seq sq = seq_of(c, b);
        for (int64_t h = 0; h < n.Hq; h++) {
            int64_t hk = h / n.group;
            for (int64_t i = 0; i < sq.sq; i++) {
                float l = lse ? lse[lse_index(c, &sq, b, h, i)] : 0.0f, sum = 1.0f;
                if (l == -INFINITY) continue;
                float m = naive_row(&n, &sq, b, h, i, t, s);
                if (!lse) {
                    if (m == -INFINITY) continue;
                    sum = 0.0f;
                    for (int64_t j = 0; j < sq.skv; j++) sum += s[j] == -INFINITY ? 0.0f : expf(s[j] - m);
                    l = m;
                }
                int64_t row = (sq.q0 + i) * n.Hq + h;
                const float *q_i = n.q + row * n.D, *dO_i = n.dO + row * n.Dv, *o_i = o + row * n.Dv;
                float *dq_i = dq + row * n.D;
                float Di = 0.0f;
                for (int64_t d = 0; d < n.Dv; d++) Di += dO_i[d] * o_i[d];
                uint64_t rk = attn__dropout_row_key(c->o.dropout_seed, b, h, i);
                for (int64_t j = 0; j < sq.skv; j++) {
                    if (s[j] == -INFINITY) continue;
                    float P = lse ? expf(s[j] - l) : expf(s[j] - l) / sum, mj = naive_drop(c, rk, thr, j);
                    const float *v_j = n.v + ((sq.k0 + j) * n.Hkv + hk) * n.Dv;
                    float *dv_j = dv + ((sq.k0 + j) * n.Hkv + hk) * n.Dv;
                    float dP = 0.0f;
                    for (int64_t d = 0; d < n.Dv; d++) {
                        dP += dO_i[d] * v_j[d];
                        dv_j[d] += P * mj * dO_i[d];
                    }
                    float ds = P * (mj * dP - Di);
                    if (cap > 0.0f) {
                        float th = tanhf(t[j] / cap);
                        ds *= 1.0f - th * th;
                    }
                    ds *= n.scale;
                    const float *k_j = n.k + ((sq.k0 + j) * n.Hkv + hk) * n.D;
                    float *dk_j = dk + ((sq.k0 + j) * n.Hkv + hk) * n.D;
                    for (int64_t d = 0; d < n.D; d++) {
                        dq_i[d] += ds * k_j[d];
                        dk_j[d] += ds * q_i[d];
                    }
                }
            }
        }
    }
    free(t); free(s);
    free(orev);
    if (sc_naive_reversed) {
        reverse_rows(dq, sc_nq(c), n.D);
        reverse_rows(dk, sc_nk(c), n.D);
        reverse_rows(dv, sc_nv(c), n.Dv);
    }
    naive_free(&n);
}

void sc_naive_bwd(const sc_case *c, const float *o, const float *lse, float *dq, float *dk, float *dv) {
    naive_bwd_rows(c, o, lse, dq, dk, dv);
}

/* The naive backward of the naive forward: its own probabilities
 * P = exp(s - m) / sum (the softmax the naive forward used, not recomputed
 * from a saved lse) and Di = <dO_i, o_i> with the naive forward's own o. */
void sc_naive_bwd_own(const sc_case *c, float *dq, float *dk, float *dv) {
    float *o = xmalloc(((size_t)sc_no(c) + 1) * sizeof(float)), *lse = xmalloc(((size_t)c->nlse + 1) * sizeof(float));
    sc_naive_fwd(c, o, lse);
    naive_bwd_rows(c, o, NULL, dq, dk, dv);
    free(o); free(lse);
}

/* ─── metrics ───────────────────────────────────────────────────────────── */
static void err_acc(sc_err *e, double r, double g, int64_t i) {
    if (!isfinite(r)) {
        int same = isnan(r) ? isnan(g) : g == r;
        if (!same) { e->bad_nonfinite++; e->max_abs = INFINITY; e->worst = i; }
        return;
    }
    if (!isfinite(g)) { e->bad_nonfinite++; e->max_abs = INFINITY; e->worst = i; return; }
    double a = fabs(g - r);
    if (a > e->max_abs) { e->max_abs = a; e->worst = i; }
    if (fabs(r) > e->scale) e->scale = fabs(r);
}

sc_err sc_err_f(const double *ref, const float *got, int64_t n) {
    sc_err e = {0.0, 0.0, -1, 0};
    for (int64_t i = 0; i < n; i++) err_acc(&e, ref[i], (double)got[i], i);
    return e;
}

sc_err sc_err_d(const double *ref, const double *got, int64_t n) {
    sc_err e = {0.0, 0.0, -1, 0};
    for (int64_t i = 0; i < n; i++) err_acc(&e, ref[i], got[i], i);
    return e;
}

int sc_bits_equal(const float *a, const float *b, int64_t n) {
    return n <= 0 || memcmp(a, b, (size_t)n * sizeof(float)) == 0;
}
