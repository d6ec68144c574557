/* SPDX-License-Identifier: MIT */
/* fuzz_sdpa_typed.c — libFuzzer target for attn_sdpa_fwd_typed /
 * attn_sdpa_bwd_typed and their workspace size queries.
 *
 * The input decodes into small dims (sometimes invalid), an element type per
 * tensor (F32 / BF16 / F16, sometimes an invalid value), a layout per tensor
 * (BSHD, BHSD, padded, or a broadcast output), options (causal, alignment,
 * windows, softcap, key_lens, dropout, threads), a workspace mode (NULL,
 * exact, one byte short) and data (moderate values, or raw 16-bit patterns
 * with NaN / Inf). Every tensor is its own exact allocation, so a read or
 * write past a view is an ASan report.
 *
 * Invariants:
 *  - no crash, no sanitizer report; an error status has a message and
 *    changes no output; inputs never change;
 *  - an invalid dtype is ATTN_ERR_DTYPE;
 *  - a call of valid arguments succeeds (exact or NULL workspace);
 *  - outside the bf16 fast path the typed call equals, bit for bit, the fp32
 *    call on the widened inputs with its outputs rounded to their types
 *    (the staging contract of attn.h); in the fast path, with moderate data,
 *    o is finite.
 * tests/test_fuzz_replay.c includes this file (FUZZ_NO_MAIN, FUZZ_CHECK). */
#include "attn.h"
#include "fuzz_util.h"
#include "io/half.h"
#include "core/core.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_CHECK
#define FUZZ_CHECK(c) \
    do { if (!(c)) { fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)
#endif

enum { TF_Q, TF_K, TF_V, TF_O, TF_DO, TF_DQ, TF_DK, TF_DV, TF_N };

typedef struct tf_tensor {
    int64_t S, H, Dl;
    attn_tview v;     /* typed view (data: exact allocation of ext elements) */
    int64_t ext;      /* elements allocated */
    int es;           /* bytes per element (4 or 2; 4 for an invalid dtype) */
    int bad_dtype;
    float *f;         /* contiguous (B, S, H, Dl) fp32 values as the kernel sees them */
} tf_tensor;

static int64_t tf_off(const tf_tensor *t, int64_t b, int64_t s, int64_t h) {
    return b * t->v.stride_b + s * t->v.stride_s + h * t->v.stride_h;
}

static float tf_get(const tf_tensor *t, int64_t i) {
    const attn_dtype dt = t->v.dtype;
    if (dt == ATTN_DTYPE_F32) return ((const float *)t->v.data)[i];
    const uint16_t h = ((const uint16_t *)t->v.data)[i];
    return dt == ATTN_DTYPE_BF16 ? attn__bf16_to_f32(h) : attn__f16_to_f32(h);
}

/* layout: 0 BSHD, 1 BHSD, 2 padded; output broadcast (3) is refused by validation */
static void tf_layout(tf_tensor *t, int64_t B, unsigned m, unsigned pad) {
    const int64_t S = t->S, H = t->H, D = t->Dl;
    int64_t sh = D, ss = H * D, sb = S * H * D;
    if (m % 4 == 1) { ss = D; sh = S * D; sb = H * S * D; }
    else if (m % 4 == 2) { sh = D + pad % 3; ss = H * sh + pad % 5; sb = S * ss + pad % 7; }
    else if (m % 4 == 3) { ss = 0; }
    t->v.stride_b = sb; t->v.stride_s = ss; t->v.stride_h = sh;
    int64_t ext = 0;
    if (B > 0 && S > 0 && H > 0 && D > 0) ext = (B - 1) * sb + (S - 1) * ss + (H - 1) * sh + D;
    t->ext = ext;
}

static int fuzz_sdpa_typed_one(const uint8_t *data, size_t size) {
    fz_in in = {data, size, 0}, *r = &in;
    const unsigned flags = fz_u8(r);
    attn_sdpa_dims d;
    d.batch = fz_u8(r) % 3;
    d.seq_q = fz_u8(r) % 20;
    d.seq_k = fz_u8(r) % 20;
    d.heads_kv = 1 + fz_u8(r) % 2;
    d.heads_q = d.heads_kv * (1 + fz_u8(r) % 3);
    unsigned db = fz_u8(r);
    d.head_dim = db >= 250 ? (db == 250 ? 0 : 300) : 1 + db % 33;
    d.head_dim_v = fz_u8(r) % 4 == 0 ? 1 + fz_u8(r) % 20 : 0;
    const int dims_ok = d.head_dim >= 1 && d.head_dim <= 256;
    const int64_t B = d.batch, D = d.head_dim, Dv = d.head_dim_v ? d.head_dim_v : D;
    const int bwd = flags & 1;

    attn_sdpa_opts o;
    attn_sdpa_opts_init(&o);
    o.causal = (flags >> 1) & 1;
    o.align = (flags >> 2) & 1;
    unsigned ob = fz_u8(r);
    if (ob & 1) o.window_left = fz_u8(r) % 6;
    if (ob & 2) o.window_right = fz_u8(r) % 6;
    if (ob & 4) o.softcap = 5.0f;
    if (ob & 8) o.dropout_p = 0.25f, o.dropout_seed = fz_u8(r);
    if (ob & 16) o.bwd_fast = 1;
    o.num_threads = 1 + fz_u8(r) % 3;
    int32_t kl[3];
    if ((ob & 32) && B > 0) {
        for (int64_t b = 0; b < B; b++) kl[b] = (int32_t)(fz_u8(r) % (d.seq_k + 1));
        o.key_lens = kl;
    }

    tf_tensor t[TF_N];
    memset(t, 0, sizeof t);
    const int64_t S[TF_N] = {d.seq_q, d.seq_k, d.seq_k, d.seq_q, d.seq_q, d.seq_q, d.seq_k, d.seq_k};
    const int64_t H[TF_N] = {d.heads_q, d.heads_kv, d.heads_kv, d.heads_q, d.heads_q, d.heads_q, d.heads_kv, d.heads_kv};
    const int64_t Dl[TF_N] = {D, D, Dv, Dv, Dv, D, D, Dv};
    int bad_dtype = 0, bcast_out = 0, clean = dims_ok;
    const int raw = (flags >> 3) & 1; /* raw 16-bit patterns (NaN / Inf) instead of moderate values */
    uint64_t seed = fz_u64(r);
    const int nt = bwd ? TF_N : 4;
    for (int i = 0; i < nt; i++) {
        tf_tensor *x = &t[i];
        x->S = S[i]; x->H = H[i]; x->Dl = dims_ok ? Dl[i] : 1;
        unsigned tb = fz_u8(r);
        static const attn_dtype dts[8] = {ATTN_DTYPE_F32, ATTN_DTYPE_BF16, ATTN_DTYPE_F16, ATTN_DTYPE_BF16,
                                          ATTN_DTYPE_F16, ATTN_DTYPE_BF16, ATTN_DTYPE_I32, (attn_dtype)99};
        x->v.dtype = dts[tb % 8];
        x->bad_dtype = tb % 8 >= 6;
        bad_dtype |= x->bad_dtype;
        x->es = x->v.dtype == ATTN_DTYPE_BF16 || x->v.dtype == ATTN_DTYPE_F16 ? 2 : 4;
        const int output = bwd ? i >= TF_DQ : i == TF_O;
        unsigned lay = fz_u8(r);
        if (!output && lay % 4 == 3) lay = 0; /* broadcasts only as (invalid) outputs */
        tf_layout(x, B, lay, fz_u8(r));
        if (lay % 4 == 3 && x->S > 1) clean = 0, bcast_out = 1;
        x->v.data = malloc((size_t)(x->ext > 0 ? x->ext : 1) * (size_t)x->es);
        for (int64_t e = 0; e < x->ext; e++) {
            const uint64_t u = fz_rng(&seed);
            const float val = fz_unif(&seed, -2.0f, 2.0f);
            if (x->es == 4) ((float *)x->v.data)[e] = output ? -7.0f : val;
            else if (output) ((uint16_t *)x->v.data)[e] = 0x7e5a;
            else ((uint16_t *)x->v.data)[e] = raw ? (uint16_t)u
                                              : x->v.dtype == ATTN_DTYPE_BF16 ? attn__f32_to_bf16(val)
                                                                              : attn__f32_to_f16(val);
        }
    }
    clean &= !bad_dtype;
    float *lse = malloc(sizeof(float) * (size_t)(B * d.heads_q * d.seq_q + 1));
    for (int64_t i = 0; i < B * d.heads_q * d.seq_q; i++) lse[i] = 0.5f;

    /* snapshots: inputs must never change; outputs only on success */
    void *snap[TF_N];
    for (int i = 0; i < nt; i++) {
        snap[i] = malloc((size_t)(t[i].ext + 1) * (size_t)t[i].es);
        memcpy(snap[i], t[i].v.data, (size_t)t[i].ext * (size_t)t[i].es);
    }
    const unsigned wm = fz_u8(r) % 3; /* 0 NULL, 1 exact, 2 one byte short */
    size_t need = bwd ? attn_sdpa_bwd_typed_workspace_size(&d, t[0].v, t[1].v, t[2].v, t[3].v, t[4].v, t[5].v,
                                                           t[6].v, t[7].v, &o)
                      : attn_sdpa_fwd_typed_workspace_size(&d, t[0].v, t[1].v, t[2].v, t[3].v, &o);
    if (bad_dtype) FUZZ_CHECK(need == 0);
    size_t wsz = wm == 0 || need == 0 ? 0 : need - (wm == 2);
    void *ws = wsz ? aligned_alloc(64, (wsz + 63) & ~(size_t)63) : NULL;
    if (ws) memset(ws, 0x5a, wsz);
    attn_status st;
    if (bwd) {
        /* the backward reads lse; give it the forward's when the forward works (else 0.5) */
        attn_sdpa_fwd_typed(&d, t[0].v, t[1].v, t[2].v, t[3].v, lse, &o, NULL, 0);
        memcpy(snap[TF_O], t[TF_O].v.data, (size_t)t[TF_O].ext * (size_t)t[TF_O].es);
        st = attn_sdpa_bwd_typed(&d, t[0].v, t[1].v, t[2].v, t[3].v, t[4].v, lse, t[5].v, t[6].v, t[7].v, &o, ws,
                                 wsz);
    } else {
        st = attn_sdpa_fwd_typed(&d, t[0].v, t[1].v, t[2].v, t[3].v, lse, &o, ws, wsz);
    }
    const int first_out = bwd ? TF_DQ : TF_O;
    for (int i = 0; i < nt; i++) {
        const int changed = memcmp(snap[i], t[i].v.data, (size_t)t[i].ext * (size_t)t[i].es) != 0;
        if (i < first_out || st != ATTN_OK) FUZZ_CHECK(!changed);
    }
    if (st != ATTN_OK) FUZZ_CHECK(attn_last_error()[0] != 0);
    if (bad_dtype) FUZZ_CHECK(dims_ok && !bcast_out ? st == ATTN_ERR_DTYPE : st != ATTN_OK);
    if (clean && wm != 2) FUZZ_CHECK(st == ATTN_OK);

    /* staging contract: equal to the fp32 call on widened inputs, outputs rounded */
    /* the bf16 fast path (attn.h "Reduced precision") computes differently: forward q, k, v
     * BF16, D even; backward also dO BF16, Dv even */
    const int fast = t[0].v.dtype == ATTN_DTYPE_BF16 && t[1].v.dtype == ATTN_DTYPE_BF16 &&
                     t[2].v.dtype == ATTN_DTYPE_BF16 && D % 2 == 0 && attn_isa_active() == ATTN_ISA_AVX512 &&
                     attn__cpu()->avx512bf16 && (!bwd || (t[TF_DO].v.dtype == ATTN_DTYPE_BF16 && Dv % 2 == 0));
    if (st == ATTN_OK && !fast) {
        float *w[TF_N];
        attn_view fv[TF_N];
        for (int i = 0; i < nt; i++) { /* same strides, fp32 */
            w[i] = malloc(sizeof(float) * (size_t)(t[i].ext + 1));
            for (int64_t e = 0; e < t[i].ext; e++) w[i][e] = i >= first_out ? 0.0f : tf_get(&t[i], e);
            fv[i] = (attn_view){w[i], t[i].v.stride_b, t[i].v.stride_s, t[i].v.stride_h};
        }
        float *lse2 = malloc(sizeof(float) * (size_t)(B * d.heads_q * d.seq_q + 1));
        memcpy(lse2, lse, sizeof(float) * (size_t)(B * d.heads_q * d.seq_q));
        attn_status s2 = bwd ? attn_sdpa_bwd(&d, fv[0], fv[1], fv[2], fv[3], fv[4], lse2, fv[5], fv[6], fv[7], &o,
                                             NULL, 0)
                             : attn_sdpa_fwd(&d, fv[0], fv[1], fv[2], fv[3], lse2, &o, NULL, 0);
        FUZZ_CHECK(s2 == ATTN_OK);
        for (int i = first_out; i < nt; i++)
            for (int64_t b = 0; b < B; b++)
                for (int64_t s = 0; s < t[i].S; s++)
                    for (int64_t h = 0; h < t[i].H; h++)
                        for (int64_t e = 0; e < t[i].Dl; e++) {
                            const int64_t x = tf_off(&t[i], b, s, h) + e;
                            const float want = w[i][x], got = tf_get(&t[i], x);
                            float rw = want;
                            if (t[i].v.dtype == ATTN_DTYPE_BF16) rw = attn__bf16_to_f32(attn__f32_to_bf16(want));
                            if (t[i].v.dtype == ATTN_DTYPE_F16) rw = attn__f16_to_f32(attn__f32_to_f16(want));
                            FUZZ_CHECK((isnan(rw) && isnan(got)) || attn__f32_bits(rw) == attn__f32_bits(got));
                        }
        for (int i = 0; i < nt; i++) free(w[i]);
        free(lse2);
    } else if (st == ATTN_OK && fast && !raw) { /* moderate inputs: finite outputs (0 where nothing is seen) */
        for (int i = first_out; i < nt; i++)
            for (int64_t b = 0; b < B; b++)
                for (int64_t s = 0; s < t[i].S; s++)
                    for (int64_t h = 0; h < t[i].H; h++)
                        for (int64_t e = 0; e < t[i].Dl; e++)
                            FUZZ_CHECK(isfinite(tf_get(&t[i], tf_off(&t[i], b, s, h) + e)));
    }
    for (int i = 0; i < nt; i++) { free(snap[i]); free(t[i].v.data); }
    free(lse);
    free(ws);
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_sdpa_typed_one(data, size); }
#endif
