/* SPDX-License-Identifier: MIT */
/* fuzz_mha.c — libFuzzer target for the attention layer: a fuzzed
 * attn_mha_config (tiny sizes, invalid values too), create / init / LoRA,
 * forward (self- and cross-attention, layouts, positions, key padding and
 * explicit masks with broadcast strides), backward, and the KV-cache path
 * (attn_mha_forward_cached with fuzzed capacity and append lengths, truncate,
 * reset).
 *
 * Every caller buffer is an exact allocation (ASan sees any access past it).
 * Invariants:
 *  - no crash, no sanitizer report, no hang;
 *  - an error is a valid attn_status with a non-empty attn_last_error(), and
 *    changes no output buffer (y / dx / dkey / dvalue) and no cache length;
 *  - inputs are never written;
 *  - create fails exactly when a config value was chosen out of range, and
 *    then sets *out = NULL;
 *  - backward without a saved training-mode forward fails (ATTN_ERR_STATE);
 *  - forward_cached succeeds iff batch / capacity allow it (layer self-
 *    attention with a matching cache), and then the lengths grow by seq_q;
 *  - with finite, moderate inputs and options: y, dx, dkey, dvalue and every
 *    parameter gradient are finite.
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

typedef struct mf_buf {
    void *p;
    size_t bytes;
    void *copy; /* contents before a call */
} mf_buf;

FZ_NO_COV static void mf_alloc_f(mf_buf *b, int64_t n, uint64_t *seed, float amp) {
    b->bytes = n > 0 ? (size_t)n * sizeof(float) : 0;
    b->p = malloc(b->bytes ? b->bytes : 1);
    b->copy = NULL;
    float *f = (float *)b->p;
    for (int64_t i = 0; i < n; i++) f[i] = fz_unif(seed, -amp, amp);
}
static void mf_save(mf_buf *b) {
    free(b->copy);
    b->copy = malloc(b->bytes ? b->bytes : 1);
    memcpy(b->copy, b->p, b->bytes);
}
static int mf_same(const mf_buf *b) { return !b->copy || memcmp(b->p, b->copy, b->bytes) == 0; }
static void mf_free(mf_buf *b) {
    free(b->p);
    free(b->copy);
    b->p = b->copy = NULL;
}
FZ_NO_COV static int mf_finite(const mf_buf *b) {
    const float *f = (const float *)b->p;
    for (size_t i = 0; i < b->bytes / sizeof(float); i++)
        if (!isfinite(f[i])) return 0;
    return 1;
}

static void mf_check_status(attn_status s) {
    FUZZ_CHECK(s < 0 && s > -ATTN_STATUS_COUNT);
    FUZZ_CHECK(attn_last_error()[0] != 0);
}

static int fuzz_mha_one(const uint8_t *data, size_t size) {
    fz_in in_ = {data, size, 0}, *r = &in_;
    int sp = 0;          /* a config value was deliberately out of range */
    int finite = 1;      /* inputs and options moderate */
    const unsigned flags = fz_u8(r);

    /* ── config ── */
    attn_mha_config cfg;
    attn_mha_config_init(&cfg);
    static const int64_t sp_e[8] = {0, -1, ((int64_t)1 << 24) + 1, INT64_MAX, INT64_MIN, 3, 7, 64};
    static const int64_t sp_h[8] = {0, -1, 65537, INT64_MAX, 3, 5, 7, 64};
    static const int64_t sp_d[8] = {-1, 257, INT64_MAX, 3, 5, 256, 7, INT64_MIN};
    static const int64_t sp_w[8] = {-1, -2, INT64_MAX, INT64_MIN, ((int64_t)1 << 24) + 1, 1, 3, 100};
    int e_sp = 0, h_sp = 0, d_sp = 0, kv_sp = 0, kd_sp = 0;
    cfg.num_heads = fz_pick(r, 1, 4, sp_h, &h_sp);
    {
        unsigned b = fz_u8(r);
        if (b >= 248) { static const int64_t s8[8] = {-1, 3, 5, 8, INT64_MAX, INT64_MIN, 64, 65536}; cfg.num_kv_heads = s8[b - 248]; kv_sp = 1; }
        else if (b % 3 == 0) cfg.num_kv_heads = 0;
        else {
            int64_t hq = cfg.num_heads, divs[8], nd = 0;
            for (int64_t x = 1; x <= 8 && hq > 0 && hq <= 64; x++)
                if (hq % x == 0) divs[nd++] = x;
            cfg.num_kv_heads = nd ? divs[b % nd] : 1;
        }
    }
    {
        unsigned b = fz_u8(r);
        if (b >= 248) { cfg.head_dim = sp_d[b - 248]; d_sp = 1; }
        else cfg.head_dim = b < 120 ? 0 : 1 + (b - 120) % 12;
    }
    {
        /* embed_dim: a multiple of num_heads when head_dim = 0 (unless special) */
        unsigned b = fz_u8(r);
        if (b >= 248) { cfg.embed_dim = sp_e[b - 248]; e_sp = 1; }
        else if (cfg.head_dim == 0 && cfg.num_heads >= 1 && cfg.num_heads <= 8)
            cfg.embed_dim = cfg.num_heads * (1 + b % 8);
        else cfg.embed_dim = 1 + b % 24;
    }
    for (int w = 0; w < 2; w++) { /* kdim, vdim: 0 mostly (= embed_dim / kdim) */
        unsigned b = fz_u8(r);
        int64_t v = b < 170 ? 0 : b < 248 ? 1 + b % 20 : sp_w[b - 248];
        if (b >= 248) kd_sp = 1;
        if (w == 0) cfg.kdim = v;
        else cfg.vdim = v;
    }
    {
        unsigned b = fz_u8(r);
        cfg.bias_q = b & 1; cfg.bias_k = (b >> 1) & 1; cfg.bias_v = (b >> 2) & 1; cfg.bias_o = (b >> 3) & 1;
        cfg.causal = (b >> 4) & 1;
        cfg.qk_norm = (b >> 5) & 1;
        if (b >= 248) { /* one flag out of range */
            int v = (b & 1) ? 2 : -1;
            switch ((b >> 1) & 3) {
            case 0: cfg.bias_v = v; break;
            case 1: cfg.causal = v; break;
            case 2: cfg.qk_norm = v; break;
            default: cfg.bias_o = v; break;
            }
            sp = 1;
        }
    }
    {
        unsigned b = fz_u8(r);
        static const float s8[8] = {NAN, INFINITY, -1.0f, -0.0f, 1e30f, FLT_MIN, -INFINITY, 1e-30f};
        if (b < 150) cfg.scale = 0.0f;
        else if (b < 248) cfg.scale = (float)(b - 150) / 40.0f;
        else {
            cfg.scale = s8[b - 248];
            if (!isfinite(cfg.scale) || cfg.scale < 0.0f) sp = 1;
            if (cfg.scale > 1e3f) finite = 0;
        }
    }
    {
        unsigned b = fz_u8(r);
        static const float s8[8] = {1.0f, -0.5f, NAN, INFINITY, 0.999f, -0.0f, 2.0f, 0.5f};
        cfg.dropout = b < 170 ? 0.0f : b < 248 ? (float)(b - 170) / 100.0f : s8[b - 248];
        if (!(cfg.dropout >= 0.0f && cfg.dropout < 1.0f)) sp = 1;
        cfg.dropout_seed = fz_u8(r);
    }
    {
        unsigned b = fz_u8(r);
        static const float s8[8] = {-1.0f, NAN, INFINITY, FLT_MAX, 1e-30f, -0.0f, -INFINITY, 0.5f};
        cfg.softcap = b < 170 ? 0.0f : b < 248 ? (float)(b - 169) / 4.0f : s8[b - 248];
        if (!isfinite(cfg.softcap) || cfg.softcap < 0.0f) sp = 1;
    }
    for (int w = 0; w < 2; w++) {
        unsigned b = fz_u8(r);
        static const int64_t s8[8] = {-2, INT64_MIN, INT64_MAX, (int64_t)1 << 40, 0, -1, INT64_MAX - 1, 1};
        int64_t v = b < 140 ? -1 : b < 248 ? (int64_t)(b % 12) : s8[b - 248];
        if (v < -1) sp = 1;
        if (w == 0) cfg.window_left = v;
        else cfg.window_right = v;
    }
    {
        unsigned b = fz_u8(r), t = fz_u8(r), rd = fz_u8(r), sc = fz_u8(r);
        cfg.rope = b < 100 ? ATTN_ROPE_NONE : b < 174 ? ATTN_ROPE_NEOX : b < 248 ? ATTN_ROPE_GPTJ : (b & 1 ? 3 : -1);
        if (b >= 248) sp = 1;
        static const float th8[8] = {0.5f, 1.0f, NAN, INFINITY, -1.0f, 1.0000001f, FLT_MAX, 2.0f};
        cfg.rope_theta = t < 120 ? 0.0f : t < 248 ? (float)(t * 100) : th8[t - 248];
        cfg.rope_dim = rd < 150 ? 0 : rd < 248 ? (int64_t)(2 * (1 + rd % 6)) : (rd & 1 ? 3 : -2);
        cfg.rope_scaling = sc < 150 ? 0 : sc < 200 ? 1 : sc < 248 ? 2 : (sc & 1 ? 3 : -1);
        if (cfg.rope == ATTN_ROPE_NONE && rd < 248) cfg.rope_dim = 0;
        if (cfg.rope == ATTN_ROPE_NONE && sc < 248) cfg.rope_scaling = 0;
        cfg.rope_factor = sc < 150 ? 0.0f : 1.0f + (float)(sc % 8);
        cfg.rope_low_freq_factor = 1.0f;
        cfg.rope_high_freq_factor = (sc & 1) ? 4.0f : 0.5f; /* 0.5 < low: invalid for llama3 */
        cfg.rope_original_max_pos = (sc & 2) ? 8192 : 0;
        /* validity of the rope fields mirrors attn.h */
        if (cfg.rope != ATTN_ROPE_NONE && cfg.rope >= 0 && cfg.rope <= 2) {
            if (!(isfinite(cfg.rope_theta) && (cfg.rope_theta == 0.0f || cfg.rope_theta > 1.0f))) sp = 1;
            if (cfg.rope_dim < 0 || (cfg.rope_dim & 1)) sp = 1;
            if (cfg.rope_scaling < 0 || cfg.rope_scaling > 2) sp = 1;
            if (cfg.rope_scaling == 2 && (!(cfg.rope_high_freq_factor > cfg.rope_low_freq_factor) ||
                                          cfg.rope_original_max_pos < 1))
                sp = 1;
        } else if (cfg.rope == ATTN_ROPE_NONE) {
            if (cfg.rope_dim != 0 || cfg.rope_scaling != 0) sp = 1;
        }
        if (cfg.rope_theta == FLT_MAX) finite = 0;
    }
    {
        unsigned b = fz_u8(r);
        static const float s8[8] = {-1.0f, NAN, INFINITY, 1e-30f, 1.0f, -0.0f, FLT_MAX, 0.5f};
        cfg.qk_norm_eps = b < 200 ? 0.0f : b < 248 ? 1e-5f : s8[b - 248];
        if (!isfinite(cfg.qk_norm_eps) || cfg.qk_norm_eps < 0.0f) sp = 1;
    }
    /* what create must decide (attn.h rules) */
    int64_t E = cfg.embed_dim, Hq = cfg.num_heads, Hkv = cfg.num_kv_heads ? cfg.num_kv_heads : cfg.num_heads;
    int64_t D = cfg.head_dim;
    int cfg_bad = sp || E < 1 || E > ((int64_t)1 << 24) || Hq < 1 || Hq > 65536 || cfg.num_kv_heads < 0 ||
                  Hkv > Hq || (Hkv > 0 && Hq % Hkv != 0) || D < 0 || D > 256 || (D == 0 && Hq > 0 && E % Hq != 0) ||
                  cfg.kdim < 0 || cfg.kdim > ((int64_t)1 << 24) || cfg.vdim < 0 || cfg.vdim > ((int64_t)1 << 24);
    if (!cfg_bad && D == 0) D = E / Hq;
    if (!cfg_bad && (D < 1 || D > 256 || Hq * D > ((int64_t)1 << 24))) cfg_bad = 1;
    if (!cfg_bad && cfg.rope != ATTN_ROPE_NONE) {
        int64_t rdim = cfg.rope_dim ? cfg.rope_dim : D;
        if (rdim > D || rdim < 2 || (rdim & 1)) cfg_bad = 1;
    }
    (void)e_sp; (void)h_sp; (void)d_sp; (void)kv_sp; (void)kd_sp;

    attn_mha *m = (attn_mha *)&cfg; /* sentinel: create must overwrite it */
    attn_clear_error();
    attn_status s = attn_mha_create(&m, &cfg);
    if (s != ATTN_OK) {
        mf_check_status(s);
        FUZZ_CHECK(m == NULL);
        FUZZ_CHECK(cfg_bad);
        return 0;
    }
    FUZZ_CHECK(!cfg_bad);
    FUZZ_CHECK(m != NULL);
    if (!m) return 0;
    const attn_mha_config *rc = attn_mha_get_config(m);
    const int64_t kdim = rc->kdim, vdim = rc->vdim;
    FUZZ_CHECK(rc->embed_dim == E && rc->head_dim == D && rc->num_kv_heads == Hkv);
    /* keep every exec small: big layers only get the checks above */
    if (E > 64 || Hq * D > 128 || kdim > 64 || vdim > 64) { attn_mha_free(m); return 0; }

    {
        unsigned b = fz_u8(r);
        int scheme = b < 248 ? (int)(b & 1) : (b & 1 ? 2 : -1);
        s = attn_mha_init_weights(m, (attn_init_scheme)scheme, fz_u64(r));
        FUZZ_CHECK((s == ATTN_OK) == (scheme == 0 || scheme == 1));
        if (s != ATTN_OK) mf_check_status(s);
    }
    /* LoRA */
    {
        unsigned b = fz_u8(r);
        if (b >= 180) {
            int which = b < 248 ? (int)(1 + b % 15) : (b & 1 ? 0 : 16);
            unsigned rb = fz_u8(r);
            int64_t rank = rb < 248 ? (int64_t)(1 + rb % 4) : (rb & 1 ? 0 : -1);
            float alpha = (float)(1 + fz_u8(r) % 16);
            s = attn_mha_lora_attach(m, which, rank, alpha, fz_u64(r));
            int ok = which >= 1 && which <= 15 && rank >= 1;
            FUZZ_CHECK((s == ATTN_OK) == ok);
            if (s != ATTN_OK) mf_check_status(s);
            if (s == ATTN_OK) { /* B = 0 after attach: make the adapters do something */
                attn_param p;
                for (int64_t i = 0; i < attn_mha_num_params(m); i++)
                    if (attn_mha_param(m, i, &p) == ATTN_OK && strstr(p.name, "lora_B"))
                        for (int64_t k = 0; k < p.numel; k++) p.data[k] = 0.01f * (float)((k % 7) - 3);
                if (fz_u8(r) >= 200) FUZZ_CHECK(attn_mha_lora_merge(m) == ATTN_OK);
            }
        }
    }
    /* parameter API */
    {
        int64_t np = attn_mha_num_params(m);
        FUZZ_CHECK(np >= 4);
        attn_param p;
        for (int64_t i = 0; i < np; i++) {
            FUZZ_CHECK(attn_mha_param(m, i, &p) == ATTN_OK && p.name && p.data && p.grad && p.numel > 0);
            attn_param q;
            FUZZ_CHECK(attn_mha_find_param(m, p.name, &q) == ATTN_OK && q.data == p.data);
        }
        FUZZ_CHECK(attn_mha_param(m, np, &p) != ATTN_OK);
        FUZZ_CHECK(attn_mha_param(m, -1, &p) != ATTN_OK);
        FUZZ_CHECK(attn_mha_find_param(m, "no_such.weight", &p) != ATTN_OK);
    }
    int training;
    {
        unsigned b = fz_u8(r);
        int t = b < 248 ? (int)(b & 1) : (b & 1 ? 2 : -1);
        s = attn_mha_set_training(m, t);
        FUZZ_CHECK((s == ATTN_OK) == (t == 0 || t == 1));
        training = s == ATTN_OK ? t : 0;
    }

    /* ── one forward / backward ── */
    attn_mha_input in;
    attn_mha_input_init(&in);
    int in_bad = 0;
    {
        unsigned b = fz_u8(r);
        in.layout = b < 248 ? (int)(b & 1) : (b & 1 ? 2 : -1);
        if (b >= 248) in_bad = 1;
    }
    static const int64_t sp_b[8] = {-1, INT64_MIN, 4, 0, 1, 2, 3, -7};
    static const int64_t sp_s[8] = {-1, INT64_MIN, 17, 0, 1, 12, 16, -3};
    int bs = 0;
    int64_t B = fz_pick(r, 0, 3, sp_b, &bs), Sq = fz_pick_small(r, 0, 12, sp_s, &bs);
    int64_t Skv = fz_pick_small(r, 0, 12, sp_s, &bs);
    in.batch = B;
    in.seq_q = Sq;
    if (B < 0 || Sq < 0) in_bad = 1;
    const unsigned xb = fz_u8(r); /* cross / value / positions / masks */
    const int need_cross = kdim != E || vdim != E;
    const int cross = need_cross ? (xb & 3) != 0 : (xb & 3) == 3; /* sometimes the wrong kind */
    const int sep_value = cross && ((xb >> 2) & 1);
    if (cross) {
        in.seq_kv = Skv;
        if (Skv < 0) in_bad = 1;
        if (!sep_value && vdim != kdim) in_bad = 1;
    } else {
        Skv = Sq;
        if (kdim != E || vdim != E) in_bad = 1;
    }
    const int64_t Bp = B > 0 ? B : 0, Sqp = Sq > 0 ? Sq : 0, Skp = Skv > 0 ? Skv : 0;
    uint64_t seed = fz_u64(r);
    mf_buf x, key = {0}, value = {0}, y, dy, dx, dkey = {0}, dvalue = {0}, pos = {0}, pad = {0}, mask = {0};
    mf_alloc_f(&x, Bp * Sqp * E, &seed, 1.0f);
    mf_alloc_f(&y, Bp * Sqp * E, &seed, 7.0f);
    mf_alloc_f(&dy, Bp * Sqp * E, &seed, 1.0f);
    mf_alloc_f(&dx, Bp * Sqp * E, &seed, 7.0f);
    in.x = (const float *)x.p;
    if (cross) {
        mf_alloc_f(&key, Bp * Skp * kdim, &seed, 1.0f);
        mf_alloc_f(&dkey, Bp * Skp * kdim, &seed, 7.0f);
        in.key = (const float *)key.p;
        if (sep_value) {
            mf_alloc_f(&value, Bp * Skp * vdim, &seed, 1.0f);
            mf_alloc_f(&dvalue, Bp * Skp * vdim, &seed, 7.0f);
            in.value = (const float *)value.p;
        }
    }
    if ((xb >> 3) & 1) { /* explicit positions (may be negative or huge) */
        pos.bytes = (size_t)(Bp * Sqp) * sizeof(int32_t);
        pos.p = malloc(pos.bytes ? pos.bytes : 1);
        int32_t *pp = (int32_t *)pos.p;
        unsigned pb = fz_u8(r);
        for (int64_t i = 0; i < Bp * Sqp; i++)
            pp[i] = pb < 248 ? (int32_t)((i * 3 + pb) % 50) - (pb & 1 ? 5 : 0) : (pb & 1 ? INT32_MAX : INT32_MIN);
        in.positions = (const int32_t *)pos.p;
    } else {
        unsigned pb = fz_u8(r);
        static const int64_t s8[8] = {INT64_MAX, INT64_MIN, INT64_MAX - 5, -((int64_t)1 << 40), (int64_t)1 << 40,
                                      -1, INT32_MAX, (int64_t)1 << 62};
        in.pos_offset = pb < 248 ? (int64_t)(pb % 40) : s8[pb - 248];
        if (pb >= 248) finite = 0; /* huge positions: RoPE angles lose all precision */
        if (Sq > 0 && in.pos_offset > INT64_MAX - Sq) in_bad = 1; /* pos_offset + i overflows */
    }
    if ((xb >> 4) & 1) { /* key_padding_mask (B, Skv), nonzero = ignore */
        pad.bytes = (size_t)(Bp * Skp);
        pad.p = malloc(pad.bytes ? pad.bytes : 1);
        unsigned pb = fz_u8(r);
        uint8_t *pp = (uint8_t *)pad.p;
        for (int64_t b = 0; b < Bp; b++)
            for (int64_t j = 0; j < Skp; j++)
                pp[b * Skp + j] = (pb & 1) ? (uint8_t)(j >= Skp - (int64_t)(pb >> 1) % (Skp + 1)) /* right padding */
                                           : (uint8_t)((fz_rng(&seed) & 3) == 0);
        in.key_padding_mask = (const uint8_t *)pad.p;
    }
    {
        unsigned kb = fz_u8(r), sb = fz_u8(r);
        in.mask_kind = kb < 150 ? 0 : kb < 200 ? 1 : kb < 248 ? 2 : (kb & 1 ? 3 : -1);
        if (kb >= 248) in_bad = 1;
        if (in.mask_kind == 1 || in.mask_kind == 2) {
            int64_t msq = Skp + (sb >> 4) % 2, msh = Sqp * msq, msb = Hq * msh;
            if (sb & 1) msb = 0;
            if (sb & 2) msh = 0;
            if (sb & 4) msq = 0;
            if (sb >= 248) {
                static const int64_t s8[8] = {-1, INT64_MAX, INT64_MAX / 2, INT64_MIN, (int64_t)1 << 62, -5,
                                              INT64_MAX / 3, (int64_t)1 << 61};
                int64_t v = s8[sb - 248];
                if (sb % 3 == 0) msb = v;
                else if (sb % 3 == 1) msh = v;
                else msq = v;
            }
            in.mask_stride_b = msb; in.mask_stride_h = msh; in.mask_stride_q = msq;
            if (msb < 0 || msh < 0 || msq < 0) in_bad = 1;
            int64_t ext = fz_extent(Bp, Hq, Sqp, Skp, msb < 0 ? 0 : msb, msh < 0 ? 0 : msh, msq < 0 ? 0 : msq);
            if (ext < 0 || ext > (1 << 20)) {
                in_bad = 2; /* the layer must refuse a mask it cannot address (no memory behind it) */
                mask.p = malloc(16);
                memset(mask.p, 0, 16);
                mask.bytes = 16;
            } else {
                size_t es = in.mask_kind == 1 ? 1 : sizeof(float);
                mask.bytes = (size_t)ext * es;
                mask.p = malloc(mask.bytes ? mask.bytes : 1);
                unsigned dn = fz_u8(r);
                for (int64_t e = 0; e < ext; e++) {
                    unsigned v = (unsigned)(fz_rng(&seed) & 255);
                    if (es == 1) ((uint8_t *)mask.p)[e] = v < dn ? 1 : 0;
                    else ((float *)mask.p)[e] = v < dn ? fz_unif(&seed, -3.0f, 3.0f) : -INFINITY;
                }
            }
            in.mask = (fz_u8(r) >= 250) ? NULL : mask.p;
            if (!in.mask) in_bad = 1;
        }
    }
    mf_buf *ins[6] = {&x, &key, &value, &pos, &pad, &mask};
    for (int i = 0; i < 6; i++)
        if (ins[i]->p) mf_save(ins[i]);
    mf_save(&y);
    if (fz_u8(r) >= 252) in.x = NULL;
    attn_clear_error();
    s = attn_mha_forward(m, &in, (float *)y.p);
    for (int i = 0; i < 6; i++) FUZZ_CHECK(mf_same(ins[i]));
    if (s != ATTN_OK) {
        mf_check_status(s);
        FUZZ_CHECK(mf_same(&y));
        FUZZ_CHECK(in_bad || bs || !in.x);
    } else {
        FUZZ_CHECK(in_bad != 2);
        if (finite && !bs) FUZZ_CHECK(mf_finite(&y));
    }
    /* backward */
    if (fz_u8(r) < 200) {
        mf_save(&dx);
        if (dkey.p) mf_save(&dkey);
        if (dvalue.p) mf_save(&dvalue);
        const unsigned bb = fz_u8(r);
        float *pdx = (bb & 1) ? NULL : (float *)dx.p;
        float *pdk = (bb & 2) ? NULL : (float *)dkey.p, *pdv = (bb & 4) ? NULL : (float *)dvalue.p;
        const float *pdy = bb >= 250 ? NULL : (const float *)dy.p;
        attn_clear_error();
        attn_status sb = attn_mha_backward(m, pdy, pdx, pdk, pdv);
        if (sb != ATTN_OK) {
            mf_check_status(sb);
            FUZZ_CHECK(mf_same(&dx) && mf_same(&dkey) && mf_same(&dvalue));
        } else {
            FUZZ_CHECK(training && s == ATTN_OK);
            if (finite && !bs) {
                if (pdx) FUZZ_CHECK(mf_finite(&dx));
                if (pdk) FUZZ_CHECK(mf_finite(&dkey));
                if (pdv) FUZZ_CHECK(mf_finite(&dvalue));
                attn_param p;
                for (int64_t i = 0; i < attn_mha_num_params(m); i++)
                    if (attn_mha_param(m, i, &p) == ATTN_OK)
                        for (int64_t k = 0; k < p.numel; k++) FUZZ_CHECK(isfinite(p.grad[k]));
            }
            /* one backward per forward */
            FUZZ_CHECK(attn_mha_backward(m, (const float *)dy.p, NULL, NULL, NULL) == ATTN_ERR_STATE);
        }
        if (!training) FUZZ_CHECK(sb == ATTN_ERR_STATE || (sb == ATTN_ERR_NULL && !pdy));
        FUZZ_CHECK(attn_mha_zero_grad(m) == ATTN_OK);
    }
    for (int i = 0; i < 6; i++) mf_free(ins[i]);
    mf_free(&y); mf_free(&dy); mf_free(&dx); mf_free(&dkey); mf_free(&dvalue);

    /* ── KV cache ── */
    if (flags & 1) {
        static const int64_t sp_c[8] = {0, -1, (int64_t)INT32_MAX + 1, INT64_MAX, 1, 2, 40, INT64_MIN};
        int cs = 0;
        int64_t cb = fz_pick(r, 1, 3, sp_b, &cs), cap = fz_pick_small(r, 1, 24, sp_c, &cs);
        unsigned hb = fz_u8(r);
        int64_t chkv = hb < 230 ? Hkv : 1 + hb % 4, cd = hb < 230 ? D : 1 + (hb >> 2) % 16;
        if (cap > 64 || cb > 4) { attn_mha_free(m); return 0; } /* would allocate a lot; create's checks are enough */
        /* the element type from the same byte (no extra input consumed): the KV types, and
         * (with the mismatched shapes) types a cache does not hold */
        static const attn_dtype kvt[8] = {ATTN_DTYPE_F32, ATTN_DTYPE_BF16, ATTN_DTYPE_F16, ATTN_DTYPE_I8,
                                          ATTN_DTYPE_F32, ATTN_DTYPE_F64, ATTN_DTYPE_U8, (attn_dtype)77};
        const attn_dtype cdt = kvt[hb < 230 ? hb % 5 : hb % 8];
        const int dt_ok = cdt == ATTN_DTYPE_F32 || cdt == ATTN_DTYPE_BF16 || cdt == ATTN_DTYPE_F16 || cdt == ATTN_DTYPE_I8;
        attn_kvcache *kc = NULL;
        attn_clear_error();
        s = attn_kvcache_create_typed(&kc, cb, cap, chkv, cd, cdt);
        int cache_ok = cb >= 1 && cap >= 1 && cap <= (cdt == ATTN_DTYPE_F32 ? INT32_MAX : (int64_t)1 << 30) && chkv >= 1 &&
                       chkv <= 65536 && cd >= 1 && cd <= 256 && dt_ok;
        FUZZ_CHECK((s == ATTN_OK) == cache_ok);
        if (s != ATTN_OK) {
            mf_check_status(s);
            FUZZ_CHECK(kc == NULL);
        } else {
            FUZZ_CHECK(attn_kvcache_capacity(kc) == cap && attn_kvcache_dtype(kc) == cdt);
            int64_t len[8] = {0};
            int cached_ok = 0;
            unsigned steps = 1 + fz_u8(r) % 4;
            for (unsigned st = 0; st < steps; st++) {
                unsigned op = fz_u8(r);
                if (op >= 224) { /* truncate / reset */
                    int64_t tb = (int64_t)(op % 5) - 1; /* -1 .. 3 */
                    int64_t tl = fz_u8(r) % 30;
                    attn_status ts = (op & 8) ? attn_kvcache_reset(kc) : attn_kvcache_truncate(kc, tb, tl);
                    if (op & 8) { FUZZ_CHECK(ts == ATTN_OK); memset(len, 0, sizeof len); }
                    else {
                        int ok = tb < cb && tl >= 0;
                        for (int64_t b = 0; b < cb && ok; b++)
                            if ((tb < 0 || tb == b) && tl > len[b]) ok = 0;
                        FUZZ_CHECK((ts == ATTN_OK) == ok);
                        if (ok) for (int64_t b = 0; b < cb; b++) if (tb < 0 || tb == b) len[b] = tl;
                    }
                    continue;
                }
                int64_t cbatch = (op & 64) ? cb + ((op >> 3) & 1 ? 1 : -1) : cb;
                int64_t sq = op >= 200 ? (int64_t)(op % 3) - 2 : (int64_t)(op % 9); /* -2 .. 8 */
                int64_t rows = (cbatch > 0 ? cbatch : 0) * (sq > 0 ? sq : 0);
                mf_buf cx, cy;
                mf_alloc_f(&cx, rows * E, &seed, 1.0f);
                mf_alloc_f(&cy, rows * E, &seed, 7.0f);
                mf_save(&cx);
                mf_save(&cy);
                attn_clear_error();
                attn_status fs = attn_mha_forward_cached(m, kc, (const float *)cx.p, cbatch, sq, (float *)cy.p);
                FUZZ_CHECK(mf_same(&cx));
                int ok = kdim == E && vdim == E && cbatch == cb && chkv == Hkv && cd == D && sq >= 0;
                for (int64_t b = 0; b < cb && ok; b++)
                    if (len[b] + sq > cap) ok = 0;
                if (fs != ATTN_OK) {
                    mf_check_status(fs);
                    FUZZ_CHECK(mf_same(&cy));
                    FUZZ_CHECK(!ok);
                } else {
                    FUZZ_CHECK(ok);
                    cached_ok = 1;
                    for (int64_t b = 0; b < cb; b++) len[b] += sq;
                    if (finite && cdt != ATTN_DTYPE_F16) FUZZ_CHECK(mf_finite(&cy)); /* f16 K/V may overflow to Inf */
                    if (len[0] > 0) { /* the stored rows read back (fp32), finite as the projections were */
                        float kr[256], vr[256];
                        if (chkv * cd <= 256) {
                            FUZZ_CHECK(attn_kvcache_read(kc, 0, len[0] - 1, 1, kr, vr) == ATTN_OK);
                            if (finite && cdt != ATTN_DTYPE_F16)
                                for (int64_t e = 0; e < chkv * cd; e++) FUZZ_CHECK(isfinite(kr[e]) && isfinite(vr[e]));
                        }
                        FUZZ_CHECK(attn_kvcache_read(kc, 0, len[0], 1, kr, vr) == ATTN_ERR_SHAPE);
                    }
                }
                for (int64_t b = 0; b < cb; b++) FUZZ_CHECK(attn_kvcache_len(kc, b) == len[b]);
                mf_free(&cx);
                mf_free(&cy);
            }
            /* a cached forward leaves nothing for backward */
            const float dummy[1] = {0.0f};
            if (cached_ok) FUZZ_CHECK(attn_mha_backward(m, dummy, NULL, NULL, NULL) == ATTN_ERR_STATE);
        }
        attn_kvcache_free(kc);
    }
    attn_mha_free(m);
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_mha_one(data, size); }
#endif
