/* SPDX-License-Identifier: MIT */
/* test_rope_block.c — attn_rope_fwd / attn_rope_bwd (public building block).
 *   - forward and backward against a float64 reference written here from
 *     transformers' modeling_rope_utils formulas (every scaling, both
 *     layouts, partial rotary, per-batch and shared positions, padded
 *     strides): |err| <= 1e-6 * m * (|x1| + |x2|) + 1e-30 per element of a
 *     rotated pair (m the attention factor), passthrough dims and output
 *     padding bit-exact;
 *   - the backward is the exact VJP: central finite differences in double of
 *     L = <G, f(x)> (f the float64 reference) and the adjoint identity
 *     <dy, f(x)> = <g(dy), x> on our fp32 results (1e-6 of sum |terms|);
 *   - in place == out of place, bit-identical with 1, 2 and 3 threads;
 *   - equal, bit for bit, to what attn_mha applies: a layer with identity
 *     projections against attn_sdpa_fwd on our rotated q, k;
 *   - transformers' rotary embeddings (tests/fixtures/rope_block.safetensors,
 *     scripts/gen_rope_fixture.py: default, linear, llama3, dynamic, yarn,
 *     longrope long / short): y and dx within 1e-5 * max(max |torch|, 1);
 *   - bad configs / arguments / struct_size refused with the right status,
 *     the output untouched. */
#include "testutil.h"

#include <attn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SENT 777.0f
#define PI 3.14159265358979323846

/* ─── float64 reference (transformers' formulas, written independently) ─── */

static double ref_yarn_mscale(double scale, double ms) { return scale <= 1 ? 1.0 : 0.1 * ms * log(scale) + 1.0; }

/* inv_freq (R/2) and the attention factor for a call whose largest position is mx */
static double ref_inv_freq(const attn_rope_config *c, int64_t R, int64_t mx, double *f) {
    const int64_t half = R / 2;
    double base = c->theta == 0 ? 10000.0 : c->theta;
    const double seq_len = (double)mx + 1;
    if (c->scaling == ATTN_ROPE_SCALING_DYNAMIC) {
        double L = seq_len > (double)c->max_pos ? seq_len : (double)c->max_pos;
        base = base * pow(c->factor * L / (double)c->max_pos - (c->factor - 1), (double)R / (double)(R - 2));
    }
    for (int64_t i = 0; i < half; i++) f[i] = 1.0 / pow(base, (double)(2 * i) / (double)R);
    double att = 1.0;
    if (c->scaling == ATTN_ROPE_SCALING_LINEAR) {
        for (int64_t i = 0; i < half; i++) f[i] /= c->factor;
    } else if (c->scaling == ATTN_ROPE_SCALING_LLAMA3) {
        const double old = (double)c->original_max_pos;
        const double lo_wl = old / c->low_freq_factor, hi_wl = old / c->high_freq_factor;
        for (int64_t i = 0; i < half; i++) {
            const double wl = 2 * PI / f[i];
            const double scaled = wl > lo_wl ? f[i] / c->factor : f[i];
            const double sm = (old / wl - c->low_freq_factor) / (c->high_freq_factor - c->low_freq_factor);
            const int medium = !(wl < hi_wl) && !(wl > lo_wl);
            f[i] = medium ? (1 - sm) * scaled / c->factor + sm * scaled : scaled;
        }
    } else if (c->scaling == ATTN_ROPE_SCALING_YARN) {
        const double omp = (double)c->original_max_pos, d = (double)R;
        const double bf = c->beta_fast ? c->beta_fast : 32, bs = c->beta_slow ? c->beta_slow : 1;
        double low = d * log(omp / (bf * 2 * PI)) / (2 * log(base));
        double high = d * log(omp / (bs * 2 * PI)) / (2 * log(base));
        if (!c->no_truncate) { low = floor(low); high = ceil(high); }
        low = low > 0 ? low : 0;
        high = high < d - 1 ? high : d - 1;
        if (low == high) high += 0.001;
        for (int64_t i = 0; i < half; i++) {
            double ramp = ((double)i - low) / (high - low);
            ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
            const double extf = 1 - ramp, pf = pow(base, (double)(2 * i) / d);
            f[i] = 1 / (c->factor * pf) * (1 - extf) + 1 / pf * extf;
        }
        if (c->attention_factor) att = c->attention_factor;
        else if (c->mscale && c->mscale_all_dim)
            att = ref_yarn_mscale(c->factor, c->mscale) / ref_yarn_mscale(c->factor, c->mscale_all_dim);
        else att = ref_yarn_mscale(c->factor, 1);
    } else if (c->scaling == ATTN_ROPE_SCALING_LONGROPE) {
        const float *ext = seq_len > (double)c->original_max_pos ? c->long_factor : c->short_factor;
        for (int64_t i = 0; i < half; i++) f[i] /= (double)ext[i];
        att = c->attention_factor ? c->attention_factor
              : c->factor <= 1    ? 1.0
                                  : sqrt(1 + log(c->factor) / log((double)c->original_max_pos));
    }
    return att;
}

typedef struct shape {
    int64_t B, S, H, D, R;
    const int64_t *pos; /* NULL or (B, S) / (S) */
    int64_t psb;
} shape;

static int64_t pos_of(const shape *s, int64_t b, int64_t t) { return s->pos ? s->pos[b * s->psb + t] : t; }

/* y (B, S, H, D) contiguous = ref RoPE of x (contiguous); sign -1: the backward */
static void ref_apply(const attn_rope_config *c, const shape *s, const double *x, double *y, int sign, double *mult) {
    int64_t mx = 0;
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t t = 0; t < s->S; t++) mx = pos_of(s, b, t) > mx ? pos_of(s, b, t) : mx;
    double f[512];
    const double m = ref_inv_freq(c, s->R, mx, f);
    if (mult) *mult = m;
    const int64_t half = s->R / 2;
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t t = 0; t < s->S; t++)
            for (int64_t h = 0; h < s->H; h++) {
                const int64_t o = ((b * s->S + t) * s->H + h) * s->D;
                for (int64_t d = 0; d < s->D; d++) y[o + d] = x[o + d];
                for (int64_t i = 0; i < half; i++) {
                    const int64_t i1 = c->kind == ATTN_ROPE_GPTJ ? 2 * i : i;
                    const int64_t i2 = c->kind == ATTN_ROPE_GPTJ ? 2 * i + 1 : i + half;
                    const double a = (double)pos_of(s, b, t) * f[i];
                    const double cs = m * cos(a), sn = sign * m * sin(a);
                    y[o + i1] = x[o + i1] * cs - x[o + i2] * sn;
                    y[o + i2] = x[o + i2] * cs + x[o + i1] * sn;
                }
            }
}

/* ─── helpers ─── */

/* padded (B, S, H, D) view: heads Dp apart, positions H*Dp + 3 apart */
typedef struct pbuf { float *p; attn_view v; int64_t n; } pbuf;
static pbuf pbuf_new(const shape *s, int64_t Dp, float fill) {
    pbuf b;
    b.v.stride_h = Dp;
    b.v.stride_s = s->H * Dp + 3;
    b.v.stride_b = s->S * b.v.stride_s + 5;
    b.n = s->B * b.v.stride_b + 1;
    b.p = malloc((size_t)b.n * sizeof(float));
    for (int64_t i = 0; i < b.n; i++) b.p[i] = fill;
    b.v.data = b.p;
    return b;
}
static float *at(const pbuf *b, const shape *s, int64_t i) { /* i: contiguous (B, S, H, D) index */
    const int64_t d = i % s->D, h = i / s->D % s->H, t = i / (s->D * s->H) % s->S, bb = i / (s->D * s->H * s->S);
    return b->p + bb * b->v.stride_b + t * b->v.stride_s + h * b->v.stride_h + d;
}
static int64_t numel(const shape *s) { return s->B * s->S * s->H * s->D; }

/* worst error / tolerance over rotated pairs; passthrough dims must be exact */
static double compare(const attn_rope_config *c, const shape *s, const double *x, const double *ref, double m,
                      const pbuf *out, int *exact_ok) {
    const int64_t half = s->R / 2;
    double worst = 0;
    *exact_ok = 1;
    for (int64_t r = 0; r < numel(s) / s->D; r++) {
        const int64_t o = r * s->D;
        for (int64_t d = s->R; d < s->D; d++)
            if (*at(out, s, o + d) != (float)x[o + d]) *exact_ok = 0;
        for (int64_t i = 0; i < half; i++) {
            const int64_t i1 = c->kind == ATTN_ROPE_GPTJ ? 2 * i : i, i2 = c->kind == ATTN_ROPE_GPTJ ? 2 * i + 1 : i + half;
            const double tol = 1e-6 * m * (fabs(x[o + i1]) + fabs(x[o + i2])) + 1e-30;
            const double e1 = fabs(*at(out, s, o + i1) - ref[o + i1]) / tol, e2 = fabs(*at(out, s, o + i2) - ref[o + i2]) / tol;
            if (!(e1 <= worst)) worst = isnan(e1) ? INFINITY : e1;
            if (!(e2 <= worst)) worst = isnan(e2) ? INFINITY : e2;
        }
    }
    return worst;
}

static float short_f[256], long_f[256];

/* config number k of the scaling table (R = rope dims used by longrope's arrays) */
static const char *make_cfg(int k, attn_rope_config *c) {
    attn_rope_config_init(c);
    switch (k) {
    case 0: return "none";
    case 1: c->theta = 500000; c->scaling = ATTN_ROPE_SCALING_LINEAR; c->factor = 2.5; return "linear";
    case 2:
        c->theta = 500000; c->scaling = ATTN_ROPE_SCALING_LLAMA3; c->factor = 8; c->low_freq_factor = 1;
        c->high_freq_factor = 4; c->original_max_pos = 64; return "llama3";
    case 3: c->scaling = ATTN_ROPE_SCALING_DYNAMIC; c->factor = 3; c->max_pos = 20; return "dynamic";
    case 4: c->scaling = ATTN_ROPE_SCALING_YARN; c->factor = 4; c->original_max_pos = 32; return "yarn";
    case 5:
        c->scaling = ATTN_ROPE_SCALING_YARN; c->factor = 16; c->original_max_pos = 128; c->beta_fast = 16;
        c->beta_slow = 2; c->mscale = 1; c->mscale_all_dim = 0.5; c->no_truncate = 1; return "yarn-ds";
    case 6:
        c->scaling = ATTN_ROPE_SCALING_LONGROPE; c->factor = 8; c->original_max_pos = 24; c->short_factor = short_f;
        c->long_factor = long_f; return "longrope";
    default:
        c->theta = 1e6; c->scaling = ATTN_ROPE_SCALING_YARN; c->factor = 2; c->original_max_pos = 16;
        c->attention_factor = 0.75; return "yarn-af";
    }
}
#define NCFG 8

/* One forward + backward case against the reference; padded strides. */
static void run_case(const attn_rope_config *c, const char *name, const shape *s, uint64_t seed) {
    tu_rng rng = {seed};
    const int64_t n = numel(s);
    double *x = malloc((size_t)n * sizeof(double)), *ref = malloc((size_t)n * sizeof(double));
    pbuf px = pbuf_new(s, s->D + 2, NAN), py = pbuf_new(s, s->D + 2, SENT);
    for (int64_t i = 0; i < n; i++) {
        x[i] = (float)(tu_normal(&rng) * 2);
        *at(&px, s, i) = (float)x[i];
    }
    for (int dir = 0; dir < 2; dir++) {
        double m;
        ref_apply(c, s, x, ref, dir ? -1 : 1, &m);
        attn_status st = dir ? attn_rope_bwd(c, s->B, s->S, s->H, s->D, px.v, s->pos, s->psb, py.v)
                             : attn_rope_fwd(c, s->B, s->S, s->H, s->D, px.v, s->pos, s->psb, py.v);
        CHECK(st == ATTN_OK, "%s: %s", name, attn_last_error());
        int exact;
        double w = compare(c, s, x, ref, m, &py, &exact);
        CHECK(w <= 1.0, "%s %s kind %d B%lld S%lld H%lld D%lld R%lld: worst err/tol %.3g", name, dir ? "bwd" : "fwd",
              c->kind, (long long)s->B, (long long)s->S, (long long)s->H, (long long)s->D, (long long)s->R, w);
        CHECK(exact, "%s: passthrough dims changed", name);
        int64_t written = 0; /* padding of y untouched: exactly n elements differ from SENT at most */
        for (int64_t i = 0; i < py.n; i++) written += py.p[i] != SENT;
        int64_t in_view = 0;
        for (int64_t i = 0; i < n; i++) in_view += *at(&py, s, i) != SENT;
        CHECK(written == in_view, "%s: %lld elements written outside the view", name, (long long)(written - in_view));
        /* in place on a copy of x: bit-identical */
        pbuf pz = pbuf_new(s, s->D + 2, NAN);
        for (int64_t i = 0; i < n; i++) *at(&pz, s, i) = (float)x[i];
        st = dir ? attn_rope_bwd(c, s->B, s->S, s->H, s->D, pz.v, s->pos, s->psb, pz.v)
                 : attn_rope_fwd(c, s->B, s->S, s->H, s->D, pz.v, s->pos, s->psb, pz.v);
        int same = st == ATTN_OK;
        for (int64_t i = 0; i < n && same; i++) same = memcmp(at(&pz, s, i), at(&py, s, i), 4) == 0;
        CHECK(same, "%s %s: in place differs from out of place", name, dir ? "bwd" : "fwd");
        free(pz.p);
    }
    free(x); free(ref); free(px.p); free(py.p);
}

static void test_reference(void) {
    for (int i = 0; i < 256; i++) {
        short_f[i] = (float)(1.0 + 0.05 * (i % 7));
        long_f[i] = (float)(1.0 + 0.5 * i);
    }
    static const int64_t pos_bs[2 * 9] = {0, 3, 7, 19, 40, 2, 2, 9, 1, /* b 1 */ 5, 0, 1, 33, 12, 6, 8, 100, 11};
    static const int64_t pos_s[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8};
    static const int64_t pos_small[9] = {4, 0, 9, 3, 2, 8, 1, 5, 7}; /* max + 1 below every length threshold */
    for (int k = 0; k < NCFG; k++)
        for (int kind = ATTN_ROPE_NEOX; kind <= ATTN_ROPE_GPTJ; kind++)
            for (int v = 0; v < 4; v++) {
                attn_rope_config c;
                const char *name = make_cfg(k, &c);
                c.kind = kind;
                shape s = {2, 9, 3, 16, 16, pos_bs, 9};
                if (v == 1) { s.D = 24; s.R = 10; c.rope_dim = 10; }         /* partial rotary */
                if (v == 2) { s.pos = pos_small; s.psb = 0; s.D = 8; s.R = 8; } /* shared, short */
                if (v == 3) { s.pos = NULL; s.psb = 0; s.B = 3; s.S = 40; s.H = 1; s.D = 128; s.R = 96; c.rope_dim = 96; }
                (void)pos_s;
                run_case(&c, name, &s, 100 + (uint64_t)(k * 8 + kind * 4 + v));
            }
}

/* the backward is the exact VJP: finite differences of the reference, and the adjoint identity */
static void test_vjp(void) {
    static const int64_t pos[2 * 5] = {0, 9, 33, 4, 2, 7, 1, 60, 3, 5};
    for (int k = 0; k < NCFG; k++) {
        attn_rope_config c;
        const char *name = make_cfg(k, &c);
        c.kind = k % 2 ? ATTN_ROPE_GPTJ : ATTN_ROPE_NEOX;
        c.rope_dim = 6;
        shape s = {2, 5, 2, 8, 6, pos, 5};
        const int64_t n = numel(&s);
        tu_rng rng = {7 + (uint64_t)k};
        double x[160], G[160], y[160], xp[160];
        float xf[160], Gf[160], yf[160], gf[160];
        for (int64_t i = 0; i < n; i++) {
            xf[i] = (float)tu_normal(&rng); x[i] = xf[i];
            Gf[i] = (float)tu_normal(&rng); G[i] = Gf[i];
        }
        const attn_view vx = attn_view_bshd(xf, s.S, s.H, s.D), vG = attn_view_bshd(Gf, s.S, s.H, s.D);
        CHECK(attn_rope_fwd(&c, s.B, s.S, s.H, s.D, vx, pos, 5, attn_view_bshd(yf, s.S, s.H, s.D)) == ATTN_OK, "%s", attn_last_error());
        CHECK(attn_rope_bwd(&c, s.B, s.S, s.H, s.D, vG, pos, 5, attn_view_bshd(gf, s.S, s.H, s.D)) == ATTN_OK, "%s", attn_last_error());
        double worst = 0;
        const double h = 1e-3;
        for (int64_t j = 0; j < n; j++) { /* dL/dx_j = (L(x + h e_j) - L(x - h e_j)) / 2h, L = <G, f(x)> */
            double L[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                memcpy(xp, x, sizeof x);
                xp[j] += sgn ? -h : h;
                ref_apply(&c, &s, xp, y, 1, NULL);
                L[sgn] = 0;
                for (int64_t i = 0; i < n; i++) L[sgn] += G[i] * y[i];
            }
            const double fd = (L[0] - L[1]) / (2 * h);
            const double e = fabs(gf[j] - fd) / (1e-5 * (fabs(fd) + 1));
            worst = e > worst ? e : worst;
        }
        CHECK(worst <= 1.0, "%s: backward vs finite differences: worst err/tol %.3g", name, worst);
        double lhs = 0, rhs = 0, mag = 0;
        for (int64_t i = 0; i < n; i++) {
            lhs += G[i] * (double)yf[i];
            rhs += (double)gf[i] * x[i];
            mag += fabs(G[i] * (double)yf[i]) + fabs((double)gf[i] * x[i]);
        }
        CHECK(fabs(lhs - rhs) <= 1e-6 * mag, "%s: <dy, f(x)> = %.10g, <g(dy), x> = %.10g", name, lhs, rhs);
    }
}

static void test_threads(void) {
    const int saved = attn_get_num_threads();
    enum { B = 3, S = 70, H = 4, D = 64 };
    static float x[B * S * H * D], y[3][B * S * H * D], g[3][B * S * H * D];
    static int64_t pos[B * S];
    tu_rng rng = {99};
    tu_fill(&rng, x, B * S * H * D, 1.0f);
    for (int i = 0; i < B * S; i++) pos[i] = tu_int(&rng, 0, 5000);
    for (int k = 0; k < NCFG; k++) {
        attn_rope_config c;
        const char *name = make_cfg(k, &c);
        c.kind = k % 2 ? ATTN_ROPE_GPTJ : ATTN_ROPE_NEOX;
        for (int t = 0; t < 3; t++) {
            attn_set_num_threads(t + 1);
            const attn_view vx = attn_view_bshd(x, S, H, D);
            CHECK(attn_rope_fwd(&c, B, S, H, D, vx, pos, S, attn_view_bshd(y[t], S, H, D)) == ATTN_OK, "%s", attn_last_error());
            CHECK(attn_rope_bwd(&c, B, S, H, D, vx, pos, S, attn_view_bshd(g[t], S, H, D)) == ATTN_OK, "%s", attn_last_error());
        }
        CHECK(!memcmp(y[0], y[1], sizeof y[0]) && !memcmp(y[0], y[2], sizeof y[0]), "%s: forward differs across threads", name);
        CHECK(!memcmp(g[0], g[1], sizeof g[0]) && !memcmp(g[0], g[2], sizeof g[0]), "%s: backward differs across threads", name);
        /* shared positions (S) == the same row repeated in (B, S) */
        static int64_t rep[B * S];
        for (int b = 0; b < B; b++) memcpy(rep + b * S, pos, S * sizeof(int64_t));
        CHECK(attn_rope_fwd(&c, B, S, H, D, attn_view_bshd(x, S, H, D), rep, S, attn_view_bshd(y[1], S, H, D)) == ATTN_OK, "x");
        CHECK(attn_rope_fwd(&c, B, S, H, D, attn_view_bshd(x, S, H, D), pos, 0, attn_view_bshd(y[2], S, H, D)) == ATTN_OK, "x");
        CHECK(!memcmp(y[1], y[2], sizeof y[1]), "%s: shared positions differ from repeated rows", name);
    }
    attn_set_num_threads(saved);
}

/* The layer with identity projections feeds sdpa rope(x) as q and k and x as v:
 * attn_sdpa_fwd on our rotated x must give its output bit for bit. */
static void test_layer(void) {
    enum { B = 2, S = 11, H = 2, D = 16, E = H * D };
    static float x[B * S * E], q[B * S * E], o[B * S * E], y[B * S * E];
    static int32_t pos32[B * S];
    static int64_t pos[B * S];
    tu_rng rng = {5};
    tu_fill(&rng, x, B * S * E, 1.0f);
    for (int i = 0; i < B * S; i++) pos[i] = pos32[i] = (int32_t)tu_int(&rng, 0, 300);
    for (int k = 0; k < NCFG; k++)
        for (int kind = ATTN_ROPE_NEOX; kind <= ATTN_ROPE_GPTJ; kind++) {
            attn_rope_config c;
            const char *name = make_cfg(k, &c);
            c.kind = kind;
            c.rope_dim = k % 2 ? 10 : 0;
            attn_mha_config mc;
            attn_mha_config_init(&mc);
            mc.embed_dim = E; mc.num_heads = H; mc.rope = kind; mc.rope_dim = c.rope_dim;
            mc.rope_theta = (float)c.theta; mc.rope_scaling = c.scaling; mc.rope_factor = (float)c.factor;
            mc.rope_low_freq_factor = (float)c.low_freq_factor; mc.rope_high_freq_factor = (float)c.high_freq_factor;
            mc.rope_original_max_pos = c.original_max_pos; mc.rope_max_pos = c.max_pos;
            mc.rope_attention_factor = (float)c.attention_factor; mc.rope_beta_fast = (float)c.beta_fast;
            mc.rope_beta_slow = (float)c.beta_slow; mc.rope_mscale = (float)c.mscale;
            mc.rope_mscale_all_dim = (float)c.mscale_all_dim; mc.rope_no_truncate = c.no_truncate;
            if (c.short_factor) {
                memcpy(mc.rope_short_factor, c.short_factor, sizeof mc.rope_short_factor);
                memcpy(mc.rope_long_factor, c.long_factor, sizeof mc.rope_long_factor);
            }
            attn_mha *m = NULL;
            CHECK(attn_mha_create(&m, &mc) == ATTN_OK, "%s: %s", name, attn_last_error());
            if (!m) continue;
            static const char *const wn[4] = {"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight"};
            for (int p = 0; p < 4; p++) {
                attn_param pr;
                CHECK(attn_mha_find_param(m, wn[p], &pr) == ATTN_OK, "%s", wn[p]);
                memset(pr.data, 0, (size_t)pr.numel * sizeof(float));
                for (int i = 0; i < E; i++) pr.data[i * E + i] = 1.0f;
            }
            attn_mha_input in;
            attn_mha_input_init(&in);
            in.batch = B; in.seq_q = S; in.x = x; in.positions = pos32;
            CHECK(attn_mha_forward(m, &in, y) == ATTN_OK, "%s: %s", name, attn_last_error());
            CHECK(attn_rope_fwd(&c, B, S, H, D, attn_view_bshd(x, S, H, D), pos, S, attn_view_bshd(q, S, H, D)) == ATTN_OK,
                  "%s", attn_last_error());
            attn_sdpa_dims d = {B, S, S, H, H, D, D};
            attn_sdpa_opts so;
            attn_sdpa_opts_init(&so);
            so.scale = attn_mha_get_config(m)->scale;
            const attn_view vq = attn_view_bshd(q, S, H, D);
            CHECK(attn_sdpa_fwd(&d, vq, vq, attn_view_bshd(x, S, H, D), attn_view_bshd(o, S, H, D), NULL, &so, NULL, 0) == ATTN_OK,
                  "%s", attn_last_error());
            CHECK(!memcmp(o, y, sizeof o), "%s kind %d: the layer's RoPE differs from attn_rope_fwd (max rel %.3g)", name,
                  kind, tu_rel_err(y, o, B * S * E));
            attn_mha_free(m);
        }
}

static void test_refusals(void) {
    enum { B = 2, S = 3, H = 2, D = 8, N = B * S * H * D };
    float x[N], y[N], yc[N];
    int64_t pos[B * S] = {0, 1, 2, 3, 4, 5};
    for (int i = 0; i < N; i++) { x[i] = (float)i; y[i] = SENT; }
    memcpy(yc, y, sizeof y);
    const attn_view vx = attn_view_bshd(x, S, H, D), vy = attn_view_bshd(y, S, H, D);
    attn_rope_config c, z;
    memset(&z, 0, sizeof z);
#define FAILS(cfg, xv, p, ps, yv, want, msg)                                                               \
    do {                                                                                                   \
        CHECK_FAILS(attn_rope_fwd(cfg, B, S, H, D, xv, p, ps, yv), want, msg);                            \
        CHECK_FAILS(attn_rope_bwd(cfg, B, S, H, D, xv, p, ps, yv), want, msg);                            \
        CHECK(!memcmp(y, yc, sizeof y), "output written by a refused call (%s)", msg);                    \
    } while (0)
#define BADCFG(stmt, want, msg)                 \
    do {                                        \
        attn_rope_config_init(&c);              \
        stmt;                                   \
        FAILS(&c, vx, pos, S, vy, want, msg);   \
    } while (0)
    FAILS(NULL, vx, pos, S, vy, ATTN_ERR_NULL, "cfg is NULL");
    FAILS(&z, vx, pos, S, vy, ATTN_ERR_OPTION, "initialise the struct with attn_rope_config_init");
    attn_rope_config big[2];
    attn_rope_config_init(&big[0]);
    big[0].struct_size = (uint32_t)sizeof big[0] + 8;
    FAILS(&big[0], vx, pos, S, vy, ATTN_ERR_OPTION, "larger than this library's");
    CHECK_FAILS(attn_rope_config_init_size(&c, 6), ATTN_ERR_OPTION, "attn_rope_config_init: struct_size = 6");
    CHECK_FAILS(attn_rope_config_init_size(NULL, sizeof c), ATTN_ERR_NULL, "cfg is NULL");
    BADCFG(c.kind = 0, ATTN_ERR_OPTION, "kind = 0");
    BADCFG(c.kind = 3, ATTN_ERR_OPTION, "kind = 3");
    BADCFG(c.rope_dim = 5, ATTN_ERR_OPTION, "rope_dim = 5, must be even");
    BADCFG(c.rope_dim = 10, ATTN_ERR_OPTION, "rope_dim = 10");
    BADCFG(c.rope_dim = -2, ATTN_ERR_OPTION, "rope_dim = -2");
    BADCFG(c.theta = 1.0, ATTN_ERR_OPTION, "theta = 1");
    BADCFG(c.theta = NAN, ATTN_ERR_OPTION, "theta = nan");
    BADCFG(c.scaling = 6, ATTN_ERR_OPTION, "scaling = 6");
    BADCFG(c.scaling = ATTN_ROPE_SCALING_LINEAR, ATTN_ERR_OPTION, "factor = 0");
    BADCFG((c.scaling = ATTN_ROPE_SCALING_LINEAR, c.factor = INFINITY), ATTN_ERR_OPTION, "factor = inf");
    BADCFG((c.scaling = ATTN_ROPE_SCALING_LLAMA3, c.factor = 8, c.low_freq_factor = 4, c.high_freq_factor = 1,
            c.original_max_pos = 8), ATTN_ERR_OPTION, "high_freq_factor = 1");
    BADCFG((c.scaling = ATTN_ROPE_SCALING_LLAMA3, c.factor = 8, c.low_freq_factor = 1, c.high_freq_factor = 4),
           ATTN_ERR_OPTION, "original_max_pos = 0");
    BADCFG((c.scaling = ATTN_ROPE_SCALING_DYNAMIC, c.factor = 2), ATTN_ERR_OPTION, "max_pos = 0");
    BADCFG((c.scaling = ATTN_ROPE_SCALING_DYNAMIC, c.factor = 2, c.max_pos = 4, c.rope_dim = 2), ATTN_ERR_OPTION,
           "dynamic rope scaling needs > 2");
    BADCFG((c.scaling = ATTN_ROPE_SCALING_YARN, c.factor = 2), ATTN_ERR_OPTION, "original_max_pos = 0");
    BADCFG((c.scaling = ATTN_ROPE_SCALING_YARN, c.factor = 2, c.original_max_pos = 8, c.beta_fast = -1),
           ATTN_ERR_OPTION, "beta_fast = -1");
    BADCFG((c.scaling = ATTN_ROPE_SCALING_YARN, c.factor = 2, c.original_max_pos = 8, c.no_truncate = 2),
           ATTN_ERR_OPTION, "no_truncate = 2");
    BADCFG((c.scaling = ATTN_ROPE_SCALING_LONGROPE, c.factor = 2, c.original_max_pos = 8), ATTN_ERR_OPTION,
           "short_factor / long_factor is NULL");
    float bad_f[4] = {1, 1, 0, 1};
    BADCFG((c.scaling = ATTN_ROPE_SCALING_LONGROPE, c.factor = 2, c.original_max_pos = 8, c.short_factor = bad_f,
            c.long_factor = bad_f), ATTN_ERR_OPTION, "short_factor[2] = 0");
    attn_rope_config_init(&c);
    int64_t neg[B * S] = {0, 1, -1, 3, 4, 5};
    FAILS(&c, vx, neg, S, vy, ATTN_ERR_OPTION, "positions[0, 2] = -1");
    int64_t huge[B * S] = {0, 1, 2, 3, 4, ((int64_t)1 << 40) + 1};
    FAILS(&c, vx, huge, S, vy, ATTN_ERR_OPTION, "positions[1, 2]");
    FAILS(&c, vx, pos, 2, vy, ATTN_ERR_STRIDE, "pos_stride_b = 2");
    FAILS(&c, vx, pos, -1, vy, ATTN_ERR_STRIDE, "pos_stride_b = -1");
    FAILS(&c, vx, NULL, S, vy, ATTN_ERR_NULL, "positions is NULL with pos_stride_b = 3");
    attn_view bad = vx;
    bad.data = NULL;
    FAILS(&c, bad, pos, S, vy, ATTN_ERR_NULL, ".data is NULL");
    bad = vx;
    bad.stride_h = -8;
    FAILS(&c, bad, pos, S, vy, ATTN_ERR_STRIDE, "must be >= 0");
    bad = vy;
    bad.stride_h = 4; /* heads of y overlap each other */
    FAILS(&c, vx, pos, S, bad, ATTN_ERR_STRIDE, "make elements of shape");
    attn_view shifted = vx;
    shifted.data = x + 1; /* y overlapping x, not in place */
    CHECK_FAILS(attn_rope_fwd(&c, B, S, H, D, vx, pos, S, shifted), ATTN_ERR_ALIAS, "overlaps x");
    CHECK_FAILS(attn_rope_bwd(&c, B, S, H, D, vx, pos, S, shifted), ATTN_ERR_ALIAS, "dx overlaps dy");
    CHECK_FAILS(attn_rope_fwd(&c, B, S, H, 1, vx, pos, S, vy), ATTN_ERR_SHAPE, "head_dim = 1");
    CHECK_FAILS(attn_rope_fwd(&c, -1, S, H, D, vx, pos, S, vy), ATTN_ERR_SHAPE, "batch = -1");
    CHECK(!memcmp(y, yc, sizeof y), "output written by a refused call");
    for (int i = 0; i < N; i++) CHECK(x[i] == (float)i, "input changed at %d", i);
    /* empty shapes are fine, even with NULL data */
    attn_view nul = {NULL, 0, 0, 0};
    CHECK(attn_rope_fwd(&c, 0, S, H, D, nul, NULL, 0, nul) == ATTN_OK, "%s", attn_last_error());
    CHECK(attn_rope_bwd(&c, B, 0, H, D, nul, pos, S, nul) == ATTN_OK, "%s", attn_last_error());
#undef FAILS
#undef BADCFG
}

#ifndef ATTN_SOURCE_DIR
#define ATTN_SOURCE_DIR "."
#endif

static double md_num(const attn_st *st, const char *cs, const char *field) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", cs, field);
    const char *v = attn_st_metadata(st, key);
    return v ? strtod(v, NULL) : 0.0;
}

/* transformers' RotaryEmbedding + apply_rotary_pos_emb (and autograd) against ours */
static void test_transformers_fixture(void) {
    attn_st *st = NULL;
    const char *path = ATTN_SOURCE_DIR "/tests/fixtures/rope_block.safetensors";
    CHECK(attn_st_open(&st, path) == ATTN_OK, "%s: %s", path, attn_last_error());
    if (!st) return;
    enum { B = 2, S = 6, H = 2, D = 16, N = B * S * H * D };
    const char *shp = attn_st_metadata(st, "shape"), *cases = attn_st_metadata(st, "cases");
    CHECK(shp && !strcmp(shp, "2,6,2,16") && cases, "fixture shape %s", shp ? shp : "(none)");
    static const char *const names[] = {"none", "linear", "llama3", "dynamic", "yarn", "longrope"};
    char list[256];
    snprintf(list, sizeof list, "%s", cases ? cases : "");
    int ncase = 0;
    for (char *cs = strtok(list, ","); cs; cs = strtok(NULL, ","), ncase++) {
        float x[N], y[N], dy[N], dx[N], posf[B * S], sf[D / 2], lf[D / 2], got[N], gdx[N];
        int64_t pos[B * S];
        char key[96];
        const int64_t shape4[4] = {B, S, H, D}, shape2[2] = {B, S}, shape1[1] = {D / 2};
        const char *tn[5] = {"x", "y", "dy", "dx", "positions"};
        float *dst[5] = {x, y, dy, dx, posf};
        for (int t = 0; t < 5; t++) {
            snprintf(key, sizeof key, "%s.%s", cs, tn[t]);
            CHECK(attn_st_read_f32(st, key, dst[t], t < 4 ? N : B * S, t < 4 ? 4 : 2, t < 4 ? shape4 : shape2) == ATTN_OK,
                  "%s: %s", key, attn_last_error());
        }
        for (int i = 0; i < B * S; i++) pos[i] = (int64_t)posf[i];
        attn_rope_config c;
        attn_rope_config_init(&c);
        snprintf(key, sizeof key, "%s.scaling", cs);
        const char *sc = attn_st_metadata(st, key);
        for (int k = 0; k < 6; k++)
            if (sc && !strcmp(sc, names[k])) c.scaling = k;
        CHECK(!sc || c.scaling != 0, "%s: unknown scaling %s", cs, sc);
        c.theta = md_num(st, cs, "theta");
        c.factor = md_num(st, cs, "factor");
        c.low_freq_factor = md_num(st, cs, "low_freq_factor");
        c.high_freq_factor = md_num(st, cs, "high_freq_factor");
        c.original_max_pos = (int64_t)md_num(st, cs, "original_max_pos");
        c.max_pos = (int64_t)md_num(st, cs, "max_pos");
        c.beta_fast = md_num(st, cs, "beta_fast");
        c.beta_slow = md_num(st, cs, "beta_slow");
        if (c.scaling == ATTN_ROPE_SCALING_LONGROPE) {
            snprintf(key, sizeof key, "%s.short_factor", cs);
            CHECK(attn_st_read_f32(st, key, sf, D / 2, 1, shape1) == ATTN_OK, "%s", attn_last_error());
            snprintf(key, sizeof key, "%s.long_factor", cs);
            CHECK(attn_st_read_f32(st, key, lf, D / 2, 1, shape1) == ATTN_OK, "%s", attn_last_error());
            c.short_factor = sf;
            c.long_factor = lf;
        }
        CHECK(attn_rope_fwd(&c, B, S, H, D, attn_view_bshd(x, S, H, D), pos, S, attn_view_bshd(got, S, H, D)) == ATTN_OK,
              "%s: %s", cs, attn_last_error());
        CHECK(attn_rope_bwd(&c, B, S, H, D, attn_view_bshd(dy, S, H, D), pos, S, attn_view_bshd(gdx, S, H, D)) == ATTN_OK,
              "%s: %s", cs, attn_last_error());
        double ey = 0, ed = 0, my = 1, md = 1;
        for (int i = 0; i < N; i++) {
            ey = fmax(ey, fabs((double)got[i] - y[i]));
            ed = fmax(ed, fabs((double)gdx[i] - dx[i]));
            my = fmax(my, fabs(y[i]));
            md = fmax(md, fabs(dx[i]));
        }
        printf("  transformers %-15s y max err %.2e, dx max err %.2e\n", cs, ey, ed);
        CHECK(ey <= 1e-5 * my && ed <= 1e-5 * md, "%s: vs transformers: y err %.3g (max %.3g), dx err %.3g (max %.3g)", cs,
              ey, my, ed, md);
    }
    CHECK(ncase == 7, "fixture has %d cases, want 7", ncase);
    attn_st_free(st);
}

int main(void) {
    test_reference();
    test_vjp();
    test_threads();
    test_layer();
    test_refusals();
    test_transformers_fixture();
    return test_summary("test_rope_block");
}
