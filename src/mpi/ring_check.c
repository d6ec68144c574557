/* SPDX-License-Identifier: MIT */
/* ring_check.c — argument checks of the ring calls.
 *
 * 1. Locally: what the ring supports, that S splits over the communicator,
 *    and this rank's shard views, checked by the core library itself
 *    (attn_sdpa_fwd_check / attn_sdpa_bwd_check on the local (S/N) shape).
 * 2. Collectively, ONE MPI_Allreduce(MAX) of
 *      [failure code, signature[K], -signature[K]]
 *    where the failure code encodes the lowest failing rank and its status,
 *    and the signature holds every dims / option value that must be the
 *    same everywhere (option arrays by hash). Every rank reaches the same
 *    verdict from the same reduced values, so either all proceed or all
 *    return an error: no rank is left waiting in a transfer. */
#include "mpi/ring_internal.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

static int pieces_of(int layout) { return layout == ATTN_MPI_ZIGZAG ? 2 : 1; }

static attn_status check_supported(const char *fn, const attn_sdpa_dims *d, const attn_sdpa_opts *o, int bwd) {
    if (o->mask_kind != ATTN_MASK_NONE || o->mask)
        return ring_fail(ATTN_ERR_UNSUPPORTED, "%s: explicit masks (opts->mask) are not supported over the ring", fn);
    if (o->cu_seqlens_q || o->cu_seqlens_k)
        return ring_fail(ATTN_ERR_UNSUPPORTED, "%s: varlen (opts->cu_seqlens_*) is not supported over the ring", fn);
    if (o->dropout_p != 0.0f)
        return ring_fail(ATTN_ERR_UNSUPPORTED, "%s: opts->dropout_p = %g: dropout is not supported over the ring",
                         fn, (double)o->dropout_p);
    if (o->row_stats)
        return ring_fail(ATTN_ERR_UNSUPPORTED, "%s: opts->row_stats is not supported over the ring (each block's "
                         "backward takes the global lse with bwd_fast numerics)", fn);
    if (o->align == ATTN_ALIGN_BOTTOM_RIGHT && o->key_lens)
        return ring_fail(ATTN_ERR_UNSUPPORTED,
                         "%s: bottom-right alignment with key_lens (a shift per sequence) is not supported over "
                         "the ring; use top-left (equal for self-attention without padding)",
                         fn);
    if (d->seq_q != d->seq_k)
        return ring_fail(ATTN_ERR_SHAPE, "%s: dims->seq_q = %lld, dims->seq_k = %lld: the ring is self-attention "
                                         "over one sequence (they must be equal)",
                         fn, (long long)d->seq_q, (long long)d->seq_k);
    return ATTN_OK;
}

attn_status ring_validate_local(const attn_mpi_ring *R, const char *fn, const ring_args *a) {
    if (!a->dims) return ring_fail(ATTN_ERR_NULL, "%s: dims is NULL", fn);
    attn_sdpa_opts def;
    const attn_sdpa_opts *o = a->opts;
    if (!o) { attn_sdpa_opts_init(&def); o = &def; }
    const attn_sdpa_dims *d = a->dims;
    attn_status st = check_supported(fn, d, o, a->bwd);
    if (st) return st;
    const int64_t S = d->seq_q, parts = (int64_t)R->N * pieces_of(R->layout);
    if (S < 0 || S > ((int64_t)1 << 40))
        return ring_fail(ATTN_ERR_SHAPE, "%s: dims->seq_q = %lld, must be in [0, 2^40]", fn, (long long)S);
    if (S % parts != 0)
        return ring_fail(ATTN_ERR_SHAPE,
                         "%s: global S = %lld does not split over the communicator: %d ranks x %d piece(s) (%s) "
                         "need S to be a multiple of %lld",
                         fn, (long long)S, R->N, pieces_of(R->layout),
                         R->layout == ATTN_MPI_ZIGZAG ? "zigzag" : "contiguous", (long long)parts);
    const int64_t qpos = o->q_pos_offset < 0 ? -o->q_pos_offset : o->q_pos_offset;
    if (qpos > ((int64_t)1 << 40) - S) /* keeps every block's offset qs - ks + g in the kernels' range */
        return ring_fail(ATTN_ERR_OPTION, "%s: |opts->q_pos_offset| = %lld, must be <= 2^40 - S (S = %lld)", fn,
                         (long long)qpos, (long long)S);
    if (o->key_lens && d->batch > 0) {
        for (int64_t b = 0; b < d->batch; b++)
            if (o->key_lens[b] < 0 || o->key_lens[b] > S)
                return ring_fail(ATTN_ERR_SHAPE, "%s: opts->key_lens[%lld] = %d, must be in [0, S = %lld]", fn,
                                 (long long)b, (int)o->key_lens[b], (long long)S);
    }
    { /* one piece's K|V travels as at most 8 requests of 2^30 floats (ring_comm.c) */
        const int64_t c = S / parts, dv = d->head_dim_v ? d->head_dim_v : d->head_dim;
        int64_t n;
        if (__builtin_mul_overflow(d->batch, c, &n) || __builtin_mul_overflow(n, d->heads_kv, &n) ||
            __builtin_mul_overflow(n, d->head_dim + dv, &n) || n > ((int64_t)8 << 30))
            return ring_fail(ATTN_ERR_UNSUPPORTED, "%s: a K/V piece of %lld tokens is too large for one ring transfer "
                                                   "(more than 2^33 floats); use more ranks", fn, (long long)c);
    }
    /* the shard views, checked by the library on the local shape (global
     * key_lens checked above; the local calls clip them per block) */
    attn_sdpa_dims ld = *d;
    ld.seq_q = ld.seq_k = S / R->N;
    attn_sdpa_opts lo = *o;
    lo.key_lens = NULL;
    st = a->bwd ? attn_sdpa_bwd_check(&ld, a->q, a->k, a->v, a->o, a->dO, a->lse, a->dq, a->dk, a->dv, &lo)
                : attn_sdpa_fwd_check(&ld, a->q, a->k, a->v, a->o, a->lse, &lo);
    if (st) return ring_fail(st, "%s (this rank's shard of S/N = %lld rows): %s", fn, (long long)ld.seq_q,
                             attn_last_error());
    return ATTN_OK;
}

static int64_t fnv(const void *p, size_t n, int64_t h) {
    uint64_t x = (uint64_t)h ^ 1469598103934665603ull;
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) x = (x ^ c[i]) * 1099511628211ull;
    return (int64_t)(x >> 1); /* non-negative: negation stays in range */
}

static int64_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (int64_t)u;
}

enum { NSIG = 17 };
static const char *const sig_name[NSIG] = {
    "the call (forward / backward)", "dims->batch", "dims->seq_q", "dims->seq_k", "dims->heads_q",
    "dims->heads_kv", "dims->head_dim", "dims->head_dim_v", "opts->scale", "opts->causal", "opts->align",
    "opts->window_left", "opts->window_right", "opts->q_pos_offset", "opts->softcap", "opts->key_lens (values)",
    "opts->alibi_slopes (values)"};

/* Values that must agree (valid only where local validation passed). */
static void signature(const ring_args *a, int64_t sig[NSIG]) {
    memset(sig, 0, NSIG * sizeof *sig);
    sig[0] = a->bwd;
    if (!a->dims) return;
    const attn_sdpa_dims *d = a->dims;
    attn_sdpa_opts def;
    const attn_sdpa_opts *o = a->opts;
    if (!o) { attn_sdpa_opts_init(&def); o = &def; }
    sig[1] = d->batch; sig[2] = d->seq_q; sig[3] = d->seq_k; sig[4] = d->heads_q; sig[5] = d->heads_kv;
    sig[6] = d->head_dim; sig[7] = d->head_dim_v ? d->head_dim_v : d->head_dim;
    sig[8] = float_bits(o->scale); sig[9] = o->causal; sig[10] = o->align;
    sig[11] = o->window_left; sig[12] = o->window_right; sig[13] = o->q_pos_offset;
    sig[14] = float_bits(o->softcap);
    sig[15] = o->key_lens && d->batch > 0 ? fnv(o->key_lens, (size_t)d->batch * sizeof(int32_t), 1) : 0;
    sig[16] = o->alibi_slopes && d->heads_q > 0 ? fnv(o->alibi_slopes, (size_t)d->heads_q * sizeof(float), 2) : 0;
}

attn_status ring_agree(attn_mpi_ring *R, const char *fn, const ring_args *a, attn_status local) {
    int64_t buf[1 + 2 * NSIG], red[1 + 2 * NSIG];
    int64_t sig[NSIG];
    signature(a, sig);
    /* lowest failing rank wins: code = (N - rank) * 64 + (-status) */
    buf[0] = local != ATTN_OK ? ((int64_t)(R->N - R->rank) << 6) + (int64_t)(-local) : 0;
    for (int i = 0; i < NSIG; i++) {
        buf[1 + i] = sig[i];
        buf[1 + NSIG + i] = sig[i] == INT64_MIN ? INT64_MAX : -sig[i];
    }
    MPI_Allreduce(buf, red, 1 + 2 * NSIG, MPI_INT64_T, MPI_MAX, R->comm);
    if (red[0] != 0) {
        const int who = R->N - (int)(red[0] >> 6);
        const attn_status st = (attn_status)(-(int)(red[0] & 63));
        /* every rank returns the same status; a rank that failed itself keeps its own message */
        if (local != ATTN_OK) return st;
        return ring_fail(st, "%s: rank %d of %d refused the call (%s); no rank computed anything", fn, who, R->N,
                         attn_status_str(st));
    }
    for (int i = 0; i < NSIG; i++) {
        const int64_t mx = red[1 + i], mn = -red[1 + NSIG + i];
        if (mx != mn)
            return ring_fail(i == 0 ? ATTN_ERR_STATE : i <= 7 ? ATTN_ERR_SHAPE : ATTN_ERR_OPTION,
                             "%s: ranks disagree on %s (this rank %lld, min %lld, max %lld over %d ranks); every "
                             "rank must pass the same global dims and options",
                             fn, sig_name[i], (long long)sig[i], (long long)mn, (long long)mx, R->N);
    }
    return ATTN_OK;
}

attn_status ring_verdict(attn_mpi_ring *R, const char *fn, attn_status local, const char *what) {
    int64_t code = local != ATTN_OK ? ((int64_t)(R->N - R->rank) << 6) + (int64_t)(-local) : 0, red = 0;
    MPI_Allreduce(&code, &red, 1, MPI_INT64_T, MPI_MAX, R->comm);
    if (red == 0) return ATTN_OK;
    const int who = R->N - (int)(red >> 6);
    if (who == R->rank) return local;
    const attn_status st = (attn_status)(-(int)(red & 63));
    return ring_fail(st, "%s: rank %d of %d %s (%s)", fn, who, R->N, what, attn_status_str(st));
}

attn_status ring_finish(attn_mpi_ring *R, const char *fn, attn_status local) {
    return ring_verdict(R, fn, local, "failed during the ring; outputs are incomplete");
}

attn_status ring_open(attn_mpi_ring *R, const char *fn, const ring_args *a, ring_prob *P, ring_bytes_fn bytes,
                      size_t *ws) {
    memset(&R->stats, 0, sizeof R->stats);
    memset(P, 0, sizeof *P);
    attn_status st = ring_validate_local(R, fn, a);
    if (st == ATTN_OK) {
        ring_resolve(R, fn, a, P);
        st = ring_reserve(R, fn, bytes(P, ws));
    }
    return ring_agree(R, fn, a, st);
}

const attn_sdpa_opts *ring_opts_full(const attn_sdpa_opts *in, attn_sdpa_opts *buf) {
    const size_t first = offsetof(attn_sdpa_opts, num_threads) + sizeof(int); /* the first release's layout */
    if (!in || in->struct_size >= sizeof *buf || in->struct_size < first) return in; /* the checks judge these */
    attn_sdpa_opts_init(buf);
    memcpy(buf, in, in->struct_size);
    buf->struct_size = (uint32_t)sizeof *buf;
    return buf;
}
