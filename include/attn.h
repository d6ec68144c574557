/* SPDX-License-Identifier: MIT */
/*
 * attn.h — exact, fast multi-head attention on the CPU (C11).
 *
 * This header is the whole public contract of libattn.
 *
 * ─── Overview ────────────────────────────────────────────────────────────────
 *  Kernels  attn_sdpa_fwd / attn_sdpa_bwd: fused, tiled scaled-dot-product
 *           attention (FlashAttention-2 algorithm: online softmax, the row
 *           log-sum-exp is saved, backward recomputes probabilities). No
 *           Sq x Sk buffer is ever allocated. fp32 storage, fp32 accumulation.
 *           GQA / MQA by indexing (Hq % Hkv == 0). Masks: causal (top-left or
 *           bottom-right aligned), per-batch key lengths, sliding window,
 *           ALiBi, logit soft-cap, explicit bool/additive mask (broadcastable),
 *           variable-length packed batches, attention dropout.
 *  Layer    attn_mha_*: Q/K/V/O projections (weights [out, in], HuggingFace
 *           names), optional biases, GQA, RoPE, QK RMSNorm, LoRA, KV cache,
 *           full backward, safetensors load/save.
 *  IO       attn_st_* (safetensors), attn_npy_* (.npy), attn_hf_config_*.
 *  Optim    attn_optim_*: SGD with momentum, AdamW.
 *
 * ─── Conventions ─────────────────────────────────────────────────────────────
 *  - Shapes are written outermost-first: q (B, Sq, Hq, D) means D varies
 *    fastest. Strides are in ELEMENTS (not bytes). The innermost (head-dim)
 *    stride of every tensor view must be 1.
 *  - Dimension legend: B batch, Sq query length, Sk key length, Hq query
 *    heads, Hkv key/value heads, D q/k head dim, Dv v head dim, E embedding.
 *  - Every function returns attn_status (ATTN_OK == 0, errors negative).
 *    On error nothing is written to any output, and attn_last_error()
 *    returns a message naming the offending argument and its value. The
 *    message is thread-local.
 *  - Outputs of kernels are overwritten. Parameter gradients of the layer
 *    are accumulated (+=) until attn_mha_zero_grad().
 *  - Fully masked query rows: o = 0, lse = -INFINITY, and zero gradients.
 *    Never NaN (unless an input that takes part in the result is NaN).
 *  - Determinism: every result is bit-identical for the same inputs,
 *    whatever the thread count and across runs. Results are NOT bit-identical
 *    across ISAs (ATTN_ISA=generic / avx2 / avx512: fused multiply-adds and
 *    another exp), nor between a forward with lse and one without (below).
 *  - Numerics (attn_sdpa_fwd / attn_sdpa_bwd; checked by tests/test_sdpa_accuracy.c):
 *    fp32 storage and accumulation; logits scale * <q, k> with the product
 *    rounded once after the dot product; softmax with the running row max, so
 *    no finite logit overflows; exp a vectorised polynomial within ~1 ulp
 *    down to the subnormals; no fast-math. The backward recomputes exactly the
 *    logits the forward saw (the same kernels and order) and, in a pass before
 *    the backward proper, each row's sum of exp(s - lse) and
 *    Di = sum_j P_j dP_j in double, so its probabilities sum to 1 within
 *    rounding however large |lse| is, and dP_j - Di is exact where it cancels.
 *    Given the forward's opts.row_stats, blocks without a peaked row (largest
 *    probability <= 1/2) take the sum from the forward's running sum instead
 *    (fp32, as a naive softmax's) and Di = <dO, o>; peaked blocks are as above.
 *    Exact cases, on every ISA: a row that sees one key has P = 1 exactly, so
 *    o = v of that key, dq = dk = 0 and (without dropout) dv = dO bitwise; a
 *    row that sees none has o = 0, lse = -inf and zero gradients.
 *    Error bound: against a float64 reference, each output's max error is
 *    that of a plain fp32 implementation of the same math up to a small
 *    factor. The per-call bound "within 2x the error of a naive fp32
 *    computation, + 1e-6 x max|ref|" holds in all but a few percent of random
 *    calls with logits up to ~1e4 (docs/testing.md, "Accuracy"); where it
 *    does not, a naive implementation that only sums in another order misses
 *    it as well (more often: the bound compares two rounding errors of the
 *    same size). The few-row dot-product path of inference calls (lse NULL,
 *    decoding) sums q.k in another order than calls that save lse.
 *  - Threads: the library owns one pool, sized by attn_set_num_threads()
 *    (default: ATTN_NUM_THREADS env var, else the number of online CPUs).
 *    Kernels are reentrant; an attn_mha or attn_kvcache object must not be
 *    used by two threads at the same time.
 *    BLAS: the layer's projection GEMMs are split into a fixed, shape-only set
 *    of blocks run on attn's pool, each a single-threaded OpenBLAS sgemm. That
 *    OpenBLAS is attn's own: the default build links a private copy
 *    (libopenblas.a) into libattn with every one of its symbols hidden, so
 *    keeping it at one thread never touches the process's OpenBLAS — its
 *    thread count, as set by the host, NumPy or PyTorch
 *    (openblas_set_num_threads, OPENBLAS_NUM_THREADS), is the same before and
 *    after any attn call, concurrent calls included. (A build configured with
 *    -DATTN_PRIVATE_BLAS=OFF uses the process's OpenBLAS and never changes its
 *    settings either; results are then bit-identical across attn thread
 *    counts only while that OpenBLAS runs one thread.) The private copy reads
 *    OPENBLAS_CORETYPE like any OpenBLAS. attn changes no other process-wide
 *    state (signals, locale, environment).
 *  - Object lifecycle: attn_<object>_create / attn_<object>_free; free(NULL)
 *    is a no-op.
 *  - Option structs grow (see "ABI" below): always fill them with their
 *    *_init() first, then set fields by name.
 *
 * ─── ABI ─────────────────────────────────────────────────────────────────────
 *  libattn.so.MAJOR (soname) keeps binary compatibility within a major
 *  version: symbols, enum values and the layout of existing struct fields
 *  never change; new functions, enum values and status values are appended
 *  (docs/abi.md is the full policy).
 *  Extensible option structs — attn_sdpa_opts, attn_mha_config,
 *  attn_mha_input, attn_kvpaged_config, attn_rope_config — start with `uint32_t struct_size`, the size of the struct
 *  the CALLER was compiled with. attn_<struct>_init(p) is a macro that passes
 *  sizeof *p to attn_<struct>_init_size(), which writes the defaults and
 *  struct_size (never more than struct_size bytes). New fields are only ever
 *  appended at the end, so a program compiled against an older attn.h keeps
 *  working with a newer library: the fields past its struct_size take their
 *  defaults. Every function taking one of these structs checks struct_size
 *  and refuses (ATTN_ERR_OPTION / ATTN_ERR_CONFIG, naming the struct and the
 *  sizes) a value smaller than the first release's layout (e.g. a struct
 *  zeroed by hand instead of initialised) or larger than this library's (a
 *  program built against a newer header than the library it runs with).
 *  Other structs (attn_view, attn_sdpa_dims, attn_tensor_info, attn_npy,
 *  attn_param) are frozen: they never change within a major version.
 *
 * ─── Example ─────────────────────────────────────────────────────────────────
 *    attn_sdpa_dims d = { .batch = 1, .seq_q = 128, .seq_k = 128,
 *                         .heads_q = 32, .heads_kv = 8,
 *                         .head_dim = 128, .head_dim_v = 128 };
 *    // contiguous (B, S, H, D) tensors:
 *    attn_view q = attn_view_bshd(qp, d.seq_q, d.heads_q, d.head_dim);
 *    attn_view k = attn_view_bshd(kp, d.seq_k, d.heads_kv, d.head_dim);
 *    ...
 *    attn_sdpa_opts o; attn_sdpa_opts_init(&o); o.causal = 1;
 *    size_t ws = attn_sdpa_fwd_workspace_size(&d, &o);
 *    void *buf = malloc(ws);
 *    if (attn_sdpa_fwd(&d, q, k, v, out, lse, &o, buf, ws) != ATTN_OK)
 *        fprintf(stderr, "%s\n", attn_last_error());
 */
#ifndef ATTN_H
#define ATTN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(ATTN_BUILD_SHARED)
#define ATTN_API __declspec(dllexport)
#elif defined(__GNUC__)
#define ATTN_API __attribute__((visibility("default")))
#else
#define ATTN_API
#endif

/* The one place that holds the version: CMake reads these three lines (project
 * version, soname libattn.so.MAJOR, attn.pc, attnConfigVersion.cmake). */
#define ATTN_VERSION_MAJOR 0
#define ATTN_VERSION_MINOR 2
#define ATTN_VERSION_PATCH 0
#define ATTN_VERSION_STRING ATTN_VERSION_STR_(ATTN_VERSION_MAJOR, ATTN_VERSION_MINOR, ATTN_VERSION_PATCH)
#define ATTN_VERSION_STR_(a, b, c) ATTN_VERSION_STR2_(a, b, c)
#define ATTN_VERSION_STR2_(a, b, c) #a "." #b "." #c
#define ATTN_VERSION_NUMBER \
    (ATTN_VERSION_MAJOR * 10000 + ATTN_VERSION_MINOR * 100 + ATTN_VERSION_PATCH)

/* Run-time version, e.g. "0.1.0". */
ATTN_API const char *attn_version(void);
ATTN_API int attn_version_number(void);

/* ═══ Status ═════════════════════════════════════════════════════════════════
 * Values only ever get appended; existing values never change. */
typedef enum attn_status {
    ATTN_OK = 0,
    ATTN_ERR_NULL = -1,        /* a required pointer is NULL */
    ATTN_ERR_SHAPE = -2,       /* a size is out of range or sizes disagree */
    ATTN_ERR_STRIDE = -3,      /* a stride is invalid (innermost != 1, negative, ...) */
    ATTN_ERR_OPTION = -4,      /* an option value is out of range */
    ATTN_ERR_WORKSPACE = -5,   /* workspace too small or misaligned */
    ATTN_ERR_ALIAS = -6,       /* an output overlaps an input or another output */
    ATTN_ERR_NOMEM = -7,       /* allocation failed or size computation overflowed */
    ATTN_ERR_IO = -8,          /* a file could not be opened, read or written */
    ATTN_ERR_FORMAT = -9,      /* a file is malformed */
    ATTN_ERR_DTYPE = -10,      /* unsupported or unexpected element type */
    ATTN_ERR_NOT_FOUND = -11,  /* a named tensor / key is missing */
    ATTN_ERR_CAPACITY = -12,   /* a fixed capacity (KV cache) would be exceeded */
    ATTN_ERR_CONFIG = -13,     /* an invalid layer configuration field */
    ATTN_ERR_STATE = -14,      /* call out of order (e.g. backward without forward) */
    ATTN_ERR_UNSUPPORTED = -15,/* valid request that this build does not support */
    ATTN_ERR_INTERNAL = -16,   /* a bug: please report */
    ATTN_STATUS_COUNT = 17     /* number of status values (for tables) */
} attn_status;

/* Static name of a status, e.g. "ATTN_ERR_SHAPE: invalid shape". */
ATTN_API const char *attn_status_str(attn_status s);
/* Detailed message of the last error raised on the calling thread ("" if none). */
ATTN_API const char *attn_last_error(void);
ATTN_API void attn_clear_error(void);

/* ═══ Runtime: CPU dispatch and threads ═════════════════════════════════════ */
typedef enum attn_isa {
    ATTN_ISA_GENERIC = 0, /* portable C */
    ATTN_ISA_AVX2 = 1,    /* AVX2 + FMA */
    ATTN_ISA_AVX512 = 2,  /* AVX-512 F/BW/DQ/VL */
    ATTN_ISA_COUNT = 3
} attn_isa;

/* ISA chosen once at first use from CPUID + XGETBV, overridable with the
 * environment variable ATTN_ISA=generic|avx2|avx512 (capped at what the CPU
 * supports). */
ATTN_API attn_isa attn_isa_active(void);
ATTN_API const char *attn_isa_name(attn_isa isa);
/* Best ISA the CPU supports, ignoring ATTN_ISA. */
ATTN_API attn_isa attn_isa_detected(void);
/* Force an ISA (tests, benchmarks). Returns ATTN_ERR_UNSUPPORTED if the CPU
 * lacks it. Not thread-safe with concurrent kernel calls. */
ATTN_API attn_status attn_isa_set(attn_isa isa);

/* Number of worker threads used by kernels and the layer (>= 1). Results do
 * not depend on it. Not thread-safe with concurrent kernel calls. */
ATTN_API attn_status attn_set_num_threads(int n);
ATTN_API int attn_get_num_threads(void);
/* Stops and joins attn's worker threads (one pool for the whole library,
 * started by the first multi-threaded call and kept between calls); the next
 * call that needs them starts them again, with the same results. For
 * programs that must end with no threads of attn's: before unloading the
 * library (dlclose), under leak checkers. Waits for a running call; other
 * calls made meanwhile run on their own thread. Never needed for
 * correctness. */
ATTN_API void attn_threads_release(void);

/* ═══ Element types ═══════════════════════════════════════════════════════════
 * Of tensors in files (safetensors, .npy), typed sdpa views and KV caches.
 * The sdpa kernels compute with F32, BF16 (bfloat16) and F16 (IEEE binary16)
 * tensors; the others occur only in files. */
typedef enum attn_dtype {
    ATTN_DTYPE_F32 = 0,
    ATTN_DTYPE_F16 = 1,
    ATTN_DTYPE_BF16 = 2,
    ATTN_DTYPE_F64 = 3,
    ATTN_DTYPE_I32 = 4,
    ATTN_DTYPE_I64 = 5,
    ATTN_DTYPE_U8 = 6,
    ATTN_DTYPE_OTHER = 7, /* any other safetensors dtype (listed, not convertible) */
    ATTN_DTYPE_I8 = 8,    /* int8 with one fp32 scale per token per KV head: KV caches only (see "KV cache element types") */
    ATTN_DTYPE_COUNT = 9
} attn_dtype;

/* ═══ Tensor views ══════════════════════════════════════════════════════════
 * A 4-D fp32 view (B, S, H, D) with element strides; the D stride is 1.
 * For varlen (packed) batches the batch stride is ignored and S indexes the
 * packed token dimension. */
typedef struct attn_view {
    float *data;
    int64_t stride_b; /* elements between consecutive batch entries */
    int64_t stride_s; /* elements between consecutive sequence positions */
    int64_t stride_h; /* elements between consecutive heads */
} attn_view;

/* Contiguous (B, S, H, D) view. */
static inline attn_view attn_view_bshd(float *p, int64_t S, int64_t H, int64_t D) {
    attn_view v;
    v.data = p; v.stride_h = D; v.stride_s = H * D; v.stride_b = S * H * D;
    return v;
}
/* Contiguous (B, H, S, D) view, presented as (B, S, H, D). */
static inline attn_view attn_view_bhsd(float *p, int64_t S, int64_t H, int64_t D) {
    attn_view v;
    v.data = p; v.stride_s = D; v.stride_h = S * D; v.stride_b = H * S * D;
    return v;
}

/* ═══ Scaled dot-product attention kernels ══════════════════════════════════ */
typedef struct attn_sdpa_dims {
    int64_t batch;      /* B  >= 0 (number of sequences for varlen) */
    int64_t seq_q;      /* Sq >= 0 (total packed query tokens for varlen) */
    int64_t seq_k;      /* Sk >= 0 (total packed key tokens for varlen) */
    int64_t heads_q;    /* Hq >= 1 */
    int64_t heads_kv;   /* Hkv >= 1, Hq % Hkv == 0; query head h uses kv head h / (Hq/Hkv) */
    int64_t head_dim;   /* D  in [1, 256] (q and k) */
    int64_t head_dim_v; /* Dv in [1, 256] (v and o); 0 means = head_dim */
} attn_sdpa_dims;

typedef enum attn_mask_kind {
    ATTN_MASK_NONE = 0,
    ATTN_MASK_BOOL = 1, /* const uint8_t: nonzero = attend, 0 = masked out (PyTorch SDPA) */
    ATTN_MASK_ADD = 2   /* const float: added to the scaled logit; -INFINITY = masked out */
} attn_mask_kind;

typedef enum attn_align {
    ATTN_ALIGN_TOP_LEFT = 0,    /* query i sits at key position i */
    ATTN_ALIGN_BOTTOM_RIGHT = 1 /* query i sits at key position i + Sk_b - Sq_b (decoding) */
} attn_align;

/*
 * Options. Always start from attn_sdpa_opts_init() (all features off).
 * opts may be NULL in every call (= the defaults).
 *
 * Position model: query row i (0-based within its sequence) sits at key
 * position p(i) = i (top-left) or i + Sk_b - Sq_b (bottom-right), plus
 * q_pos_offset in both cases, where Sk_b is the key count of sequence b
 * (key_lens[b] if given, else the varlen length, else Sk) and Sq_b likewise.
 * (q_pos_offset places a chunk of queries and a chunk of keys cut from one
 * longer sequence: queries at global positions qs.., keys at ks.. give
 * top-left + q_pos_offset = qs - ks, so causal, windows and ALiBi see the
 * global positions; see attn_sdpa_merge and docs/mpi.md.)
 * Key j is visible to query i iff all hold:
 *    j < Sk_b                                   (key lengths / padding)
 *    causal        => j <= p(i)
 *    window_left  >= 0 => j >= p(i) - window_left
 *    window_right >= 0 => j <= p(i) + window_right
 *    mask (bool)   => mask[b, h, i, j] != 0
 * Logit of a visible key:
 *    s = scale * <q_i, k_j>
 *    softcap > 0   => s = softcap * tanh(s / softcap)
 *    alibi         => s -= alibi_slopes[h] * |p(i) - j|
 *    mask (add)    => s += mask[b, h, i, j]           (-INFINITY masks out)
 * then p = softmax_j(s); dropout (training) zeroes p with probability
 * dropout_p using a counter-based RNG of (dropout_seed, b, h, i, j) and
 * scales survivors by 1/(1-dropout_p); o_i = sum_j p_ij v_j.
 * lse_i = log(sum_j exp(s_ij)) (before dropout), -INFINITY if no key visible.
 */
typedef struct attn_sdpa_opts {
    uint32_t struct_size;      /* set by attn_sdpa_opts_init(): sizeof(attn_sdpa_opts) of the caller */
    float scale;               /* 0 = 1/sqrt(D); must be finite */
    int causal;                /* 0 or 1 */
    int align;                 /* attn_align: alignment of queries to keys */
    const int32_t *key_lens;   /* (B) or NULL: valid keys per sequence, 0 <= key_lens[b] <= Sk_b */
    int64_t window_left;       /* -1 = unlimited, else >= 0 */
    int64_t window_right;      /* -1 = unlimited, else >= 0 */
    const float *alibi_slopes; /* (Hq) or NULL */
    float softcap;             /* 0 = off, else > 0 */
    int mask_kind;             /* attn_mask_kind */
    const void *mask;          /* (B, Hq, Sq, Sk) view; innermost (Sk) stride 1 */
    int64_t mask_stride_b;     /* 0 broadcasts over B */
    int64_t mask_stride_h;     /* 0 broadcasts over heads */
    int64_t mask_stride_q;     /* 0 broadcasts over query rows */
    const int32_t *cu_seqlens_q; /* (B+1) or NULL: varlen; sequence b has query rows
                                    [cu_seqlens_q[b], cu_seqlens_q[b+1]) of the packed q/o */
    const int32_t *cu_seqlens_k; /* (B+1): required iff cu_seqlens_q is given */
    float dropout_p;           /* in [0, 1); 0 = off */
    uint64_t dropout_seed;
    int num_threads;           /* 0 = library default */
    /* ── appended after the first release (defaults when struct_size ends before) ── */
    int bwd_fast;              /* backward only. 0 (default): the numerics below ("Numerics": a
                                  row-statistics pass before the backward proper). 1: skip that
                                  pass, ~25-30% less backward time: P = exp(s - lse) from the saved
                                  lse and Di = <dO, o> (FlashAttention-2's numerics). The exact
                                  cases stay exact (dropout aside); the error bound is no longer
                                  met at large |lse| or in peaked rows. */
    int64_t q_pos_offset;      /* added to p(i) (see the position model); |.| <= 2^40; 0 = none */
    float *row_stats;          /* NULL (default), or (B, Hq, Sq, 2) floats, contiguous (varlen: (Hq,
                                  total_q, 2)): per query row, the statistics the forward knows and
                                  the backward would otherwise recompute. Forward (needs lse): writes
                                  them, [0] the low part of the row's log-sum-exp (lse + [0] is it
                                  to ~1e-7 relative of its sum) and [1] its largest probability.
                                  Backward: reads the forward's (same inputs and opts), so its
                                  row-statistics pass recomputes no logits in blocks whose rows are
                                  all unpeaked (largest probability <= 1/2); same error bound
                                  ("Numerics"), 10-20% less backward time. attn_mha passes them.
                                  Ignored with bwd_fast. Never aliases another argument. */
    int decode_fast;           /* attn_sdpa_paged_fwd only (0 or 1; other calls check and ignore
                                  it). 0 (default): decode blocks compute in fp32 on the widened
                                  cache ("KV cache element types"). 1: in the decode blocks (<= 8
                                  query rows per KV head), where D is a multiple of 32:
                                  BF16 pool, CPU with AVX512_BF16, Dv a multiple of 32: Q.K^T and
                                  P.V on the bf16 dot-product unit as the bf16 forward does: q
                                  rounded to bf16 once per block, P rounded to bf16 for P.V
                                  (relative 2^-9 each; the row sums stay fp32), exact products
                                  summed in fp32 with bf16 denormals read as 0. Bound (tested):
                                  an output within 2^-8 max_j |v_j| + 1e-5 max(1, |o|) of the
                                  float64 attention of the bf16 q and cache.
                                  I8 pool, CPU with AVX512_VNNI: Q.K^T in integers, q quantised
                                  per row to int16 (scale max_d |q_d| / 32767, round half up),
                                  exact int32 sums times the two scales; P.V as with 0. Each
                                  logit within scale * max_d |q_d| / 65534 * sum_d |k_d| (k the
                                  stored key), 1/258 of the int8 key's own worst case; bound
                                  (tested): outputs within 2.2x that times max |v| (+ 1e-5
                                  max(1, |o|)), lse within 1.1x (+ 1e-5 max(1, |lse|)).
                                  Measured 1.1-1.25x (bf16), 1.03-1.15x (int8) less decode time
                                  (Zen 4; the rest is memory bound or P.V). Anything else (other
                                  pools, CPUs, D, prefill chunks, an Inf / NaN query row of an
                                  I8 block): the same bits as 0. */
} attn_sdpa_opts;

/* attn_sdpa_opts_init(&opts): all features off, struct_size = sizeof opts.
 * The function behind it (for bindings that cannot use the macro): writes
 * the defaults into the first struct_size bytes; ATTN_ERR_OPTION if
 * struct_size is not a layout this library knows (struct_size is still
 * stored, so later calls refuse the struct with the same message). */
ATTN_API attn_status attn_sdpa_opts_init_size(attn_sdpa_opts *opts, size_t struct_size);
#define attn_sdpa_opts_init(opts) attn_sdpa_opts_init_size((opts), sizeof *(opts))

/* Workspace bytes the call needs (independent of the data; may depend on the
 * thread count). Pass at least this much, 64-byte aligned. A NULL workspace
 * makes the call allocate and free its own (slower: first-touch). */
ATTN_API size_t attn_sdpa_fwd_workspace_size(const attn_sdpa_dims *dims, const attn_sdpa_opts *opts);
ATTN_API size_t attn_sdpa_bwd_workspace_size(const attn_sdpa_dims *dims, const attn_sdpa_opts *opts);

/*
 * Forward.
 *   q   (B, Sq, Hq, D)    in
 *   k   (B, Sk, Hkv, D)   in
 *   v   (B, Sk, Hkv, Dv)  in
 *   o   (B, Sq, Hq, Dv)   out (must not overlap any input)
 *   lse (B, Hq, Sq)       out, contiguous, may be NULL (inference); varlen: (Hq, total_q)
 */
ATTN_API attn_status attn_sdpa_fwd(const attn_sdpa_dims *dims, attn_view q, attn_view k, attn_view v,
                                   attn_view o, float *lse, const attn_sdpa_opts *opts,
                                   void *workspace, size_t workspace_size);

/*
 * Backward. Inputs as in forward plus:
 *   o   (B, Sq, Hq, Dv)  the forward output
 *   dO  (B, Sq, Hq, Dv)  gradient of the loss w.r.t. o
 *   lse (B, Hq, Sq)      from the forward (same opts)
 * Outputs (overwritten, must not overlap inputs or each other):
 *   dq (B, Sq, Hq, D), dk (B, Sk, Hkv, D), dv (B, Sk, Hkv, Dv)
 * GQA: dk/dv sum over the query heads of each group without atomics.
 */
ATTN_API attn_status attn_sdpa_bwd(const attn_sdpa_dims *dims, attn_view q, attn_view k, attn_view v,
                                   attn_view o, attn_view dO, const float *lse,
                                   attn_view dq, attn_view dk, attn_view dv,
                                   const attn_sdpa_opts *opts, void *workspace, size_t workspace_size);

/* Validation only: the status (and message) attn_sdpa_fwd / attn_sdpa_bwd
 * would return for these arguments before computing anything; nothing is
 * read beyond the option arrays and nothing is written. Lets a caller (e.g.
 * libattn_mpi) refuse bad arguments up front, before collective work. */
ATTN_API attn_status attn_sdpa_fwd_check(const attn_sdpa_dims *dims, attn_view q, attn_view k, attn_view v,
                                         attn_view o, const float *lse, const attn_sdpa_opts *opts);
ATTN_API attn_status attn_sdpa_bwd_check(const attn_sdpa_dims *dims, attn_view q, attn_view k, attn_view v,
                                         attn_view o, attn_view dO, const float *lse, attn_view dq, attn_view dk,
                                         attn_view dv, const attn_sdpa_opts *opts);

/*
 * Merge of partial results (the FlashAttention split-KV combine). Given n
 * forward results (o_p, lse_p) of the SAME queries over DISJOINT key sets
 * K_0 .. K_{n-1}, writes the exact result over their union:
 *   lse = log(sum_p exp(lse_p))            (-INFINITY if every lse_p is)
 *   o   = sum_p exp(lse_p - lse) * o_p     (0 where lse = -INFINITY)
 * computed per row in float64, p ascending (deterministic for any thread
 * count). A part with lse_p = -INFINITY (no visible key) contributes nothing
 * and its o_p row is not read; one non-empty part is reproduced exactly.
 *   o_parts[p]   (B, Sq, Hq, Dv)  in, p = 0 .. n-1, 1 <= n <= 256
 *   lse_parts[p] (B, Hq, Sq)      in, contiguous
 *   o            (B, Sq, Hq, Dv)  out
 *   lse          (B, Hq, Sq)      out, contiguous, may be NULL
 * Running accumulation in place is allowed: o may be o_parts[0] (the
 * identical view) and lse may be lse_parts[0]; any other overlap of an
 * output with an input is ATTN_ERR_ALIAS. Varlen results: batch = 1,
 * seq_q = total query rows (the (Hq, Tq) lse layout).
 * num_threads: 0 = library default.
 *
 * Key blocks (ring / split-KV backward). With o, lse the GLOBAL results over
 * all keys, the backward over one block of keys k_b, v_b (its share of dq,
 * and its dk, dv) is ONE call:
 *   attn_sdpa_bwd(q, k_b, v_b, o, dO, lse, dq_b, dk_b, dv_b) with
 *   opts.bwd_fast = 1 (P = exp(s - lse) from the given lse, Di = <dO, o> =
 *   rowsum(dO * O) from the given o: the global probabilities and row
 *   statistics restricted to the block's keys)
 * and q_pos_offset keeping the masks at global positions. Add the blocks' dq
 * over key blocks and their dk, dv over query blocks (libattn_mpi's ring
 * does this). Any mask kind, ALiBi and softcap; not dropout (its RNG is keyed
 * by the within-call row/key index). Numerics: those of bwd_fast (above).
 * In the default mode attn_sdpa_bwd is the backward of the call's OWN
 * attention (P and D = sum_j P dP from the call's keys), so passing the
 * global o and lse there is NOT exact; the same shares then take, with
 * E = Dv + D <= 256 value columns (about twice the cost):
 *   1. attn_sdpa_fwd over the block with V = [v_b | k_b] (E columns):
 *      [o_b | ok] and lse_b
 *   2. per row i and head: w = exp(lse_b - lse) (0 where lse_b = -INFINITY),
 *      c = <dO, o_b - o>
 *   3. attn_sdpa_bwd over the block with V = [v_b | 0], o = [o_b | 0],
 *      dO = [w dO | w c q], lse_b: dq_b, dk_b and dv = [dv_b | dk_x]
 *   4. the block's shares: dq_b + scale w c ok, dk_b + scale dk_x, dv_b
 * (P_global = w P_b, so dS = P_global (dP - D) = w P_b (dP - D_b) +
 * w P_b (D_b - D) with D_b - D = c: step 3 is the first term, the extra value
 * columns carry the second; not with softcap, d logit / d score != 1 there).
 * Rows nothing sees anywhere give zeros (both ways).
 */
ATTN_API attn_status attn_sdpa_merge(int64_t batch, int64_t seq_q, int64_t heads_q, int64_t head_dim_v, int n,
                                     const attn_view *o_parts, const float *const *lse_parts, attn_view o,
                                     float *lse, int num_threads);

/* ═══ Building blocks: matmul ══════════════════════════════════════════════
 * The layer's projections, for users who compose their own models. Row-major
 * matrices; ld* is the distance between rows in elements (>= the row length,
 * padding between rows is neither read nor written). Sizes and leading
 * dimensions are at most 2^31 - 1 (the BLAS's integer). Threaded on attn's
 * pool with a fixed, shape-only split: bit-identical whatever the thread
 * count. Outputs are overwritten and must not overlap any input or each other.
 *
 *   trans_b = 0:  C (M, N) = A (M, K) · B (K, N)
 *   trans_b = 1:  C (M, N) = A (M, K) · Bᵀ,  B stored (N, K)  (x · Wᵀ, W [out, in])
 */
ATTN_API attn_status attn_matmul(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                                 const float *B, int64_t ldb, int trans_b, float *C, int64_t ldc);
/* Gradients of the loss given dC (M, N) = dL/dC:
 *   dA (M, K) = dC · Bᵀ (trans_b 0) or dC · B (trans_b 1)            — NULL: not computed
 *   dB (K, N) = Aᵀ · dC (trans_b 0), or dB (N, K) = dCᵀ · A (trans_b 1) — NULL: not computed
 * A is read only for dB, B only for dA (the other may then be NULL). */
ATTN_API attn_status attn_matmul_backward(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                                          const float *B, int64_t ldb, int trans_b,
                                          const float *dC, int64_t lddc, float *dA, int64_t ldda,
                                          float *dB, int64_t lddb);

/* ═══ Building blocks: RMSNorm ═════════════════════════════════════════════
 * Over the last dimension of N rows of D values (row strides ld* >= D, in
 * elements; padding is neither read nor written):
 *   rstd_n = 1 / sqrt(mean_d x_nd^2 + eps),  y_nd = x_nd * rstd_n * w_d
 * Sum of squares in float64. Threaded over a fixed, shape-only split of the
 * rows: bit-identical whatever the thread count. Outputs must not overlap
 * inputs or each other. D in [1, 2^24], eps finite and > 0.
 *   x (N, D) in, w (D) in, y (N, D) out, rstd (N) out or NULL. */
ATTN_API attn_status attn_rmsnorm_fwd(int64_t N, int64_t D, const float *x, int64_t ldx, const float *w,
                                      float eps, float *y, int64_t ldy, float *rstd);
/* Backward (recomputes rstd from x): with g = dy * w and xhat = x * rstd,
 *   dx_n = rstd_n * (g_n - xhat_n * mean_d(g_n * xhat_n))   dx (N, D) out (overwritten)
 *   dw   = sum_n dy_n * xhat_n                              dw (D) out (overwritten), or NULL */
ATTN_API attn_status attn_rmsnorm_bwd(int64_t N, int64_t D, const float *x, int64_t ldx, const float *w,
                                      float eps, const float *dy, int64_t lddy, float *dx, int64_t lddx,
                                      float *dw);

/* ═══ Building blocks: RoPE ═══════════════════════════════════════════════
 * Rotary position embedding exactly as the layer applies it to q and k (the
 * same code: bit-identical). On x (B, S, H, D) given as an attn_view (element
 * strides, the D stride 1), with R = rope_dim (even, <= D; dims R .. D-1 are
 * copied unchanged: partial rotary) and positions p (int64, [0, 2^40]):
 *   pairs  NEOX (rotate halves): (x[i], x[i + R/2])
 *          GPTJ (interleaved):   (x[2i], x[2i + 1])        for i < R/2
 *   y1 = m (x1 cos a - x2 sin a),  y2 = m (x2 cos a + x1 sin a),  a = p * inv_freq[i]
 * inv_freq[i] = theta^(-2i/R), scaled by `scaling` as transformers'
 * modeling_rope_utils computes it (see attn_rope_scaling); m, the attention
 * factor, is 1 except for yarn and longrope. dynamic and longrope depend on
 * the length: that of the call's largest position + 1 (over all of
 * `positions`, as a layer call does over its rows). Angles and cos / sin in
 * float64, rounded to fp32 (times m); the rotation in fp32.
 * The backward is the exact vector-Jacobian product of that map:
 * dx = m R(-a) dy per pair, dims R .. D-1 copied (x is not needed).
 * Threaded over tokens with a shape-only split; every element is computed
 * by the same operations whatever the thread count (bit-identical). */
typedef enum attn_rope_kind {
    ATTN_ROPE_NONE = 0,
    ATTN_ROPE_NEOX = 1, /* rotate halves: (x[i], x[i + d/2]) — Llama, Qwen, NeoX */
    ATTN_ROPE_GPTJ = 2  /* rotate interleaved pairs (x[2i], x[2i+1]) — GPT-J */
} attn_rope_kind;

typedef enum attn_rope_scaling {
    ATTN_ROPE_SCALING_NONE = 0,
    ATTN_ROPE_SCALING_LINEAR = 1, /* positions / factor */
    ATTN_ROPE_SCALING_LLAMA3 = 2, /* Llama-3.1 frequency-dependent scaling */
    /* appended (transformers' modeling_rope_utils, same names) */
    ATTN_ROPE_SCALING_DYNAMIC = 3,  /* dynamic NTK: the base grows once a call's largest position
                                       + 1 exceeds rope_max_pos / max_pos (recomputed per call) */
    ATTN_ROPE_SCALING_YARN = 4,     /* YaRN: ramp between interpolation and extrapolation, cos/sin
                                       times the attention factor (mscale) */
    ATTN_ROPE_SCALING_LONGROPE = 5  /* LongRoPE: per-frequency short / long factors (long once a
                                       call's largest position + 1 > (rope_)original_max_pos),
                                       cos/sin times the attention factor */
} attn_rope_scaling;

typedef struct attn_rope_config {
    uint32_t struct_size;      /* set by attn_rope_config_init(): sizeof(attn_rope_config) of the caller */
    int kind;                  /* attn_rope_kind: ATTN_ROPE_NEOX (default) or ATTN_ROPE_GPTJ */
    int64_t rope_dim;          /* R: rotated dims per head, even, in [2, D]; 0 = D */
    double theta;              /* base, > 1; 0 = 10000 */
    int scaling;               /* attn_rope_scaling (default NONE) */
    double factor;             /* > 0 with any scaling: linear / llama3 / dynamic / yarn / longrope factor */
    double low_freq_factor, high_freq_factor; /* llama3: 0 < low < high */
    int64_t original_max_pos;  /* llama3, yarn, longrope: original context length, >= 1 */
    int64_t max_pos;           /* dynamic: max_position_embeddings, >= 1 */
    double attention_factor;   /* yarn, longrope: m; 0 = the type's default (yarn: its mscale
                                  formula, longrope: sqrt(1 + ln factor / ln original_max_pos)) */
    double beta_fast, beta_slow;      /* yarn; 0 = 32, 1 */
    double mscale, mscale_all_dim;    /* yarn; 0 = unset */
    int no_truncate;           /* yarn: 1 = do not floor / ceil the correction range */
    const float *short_factor; /* longrope: (R/2) divisors while the length <= original_max_pos */
    const float *long_factor;  /* longrope: (R/2) divisors beyond it */
} attn_rope_config;

/* attn_rope_config_init(&cfg): NEOX, rope_dim 0 (= D), theta 0 (= 10000), no
 * scaling, every other field 0 / NULL; struct_size = sizeof cfg; see
 * attn_sdpa_opts_init_size. */
ATTN_API attn_status attn_rope_config_init_size(attn_rope_config *cfg, size_t struct_size);
#define attn_rope_config_init(cfg) attn_rope_config_init_size((cfg), sizeof *(cfg))

/* Forward: y (B, S, H, D) = RoPE(x (B, S, H, D)) at
 *   positions (B, S) with row stride pos_stride_b (elements, >= S), or
 *   pos_stride_b = 0: positions (S), the same for every batch entry,
 *   positions NULL: 0 .. S-1 (pos_stride_b must then be 0).
 * In place when y is x (same data and strides); otherwise y must not share
 * any byte of x's extent (ATTN_ERR_ALIAS) and its strides must not make two
 * elements meet. B, S, H >= 0; D in [2, 2^20]. */
ATTN_API attn_status attn_rope_fwd(const attn_rope_config *cfg, int64_t batch, int64_t seq, int64_t heads,
                                   int64_t head_dim, attn_view x, const int64_t *positions, int64_t pos_stride_b,
                                   attn_view y);
/* Backward: dx (B, S, H, D) = VJP of attn_rope_fwd at dy (B, S, H, D), the
 * same positions; in place allowed as above. */
ATTN_API attn_status attn_rope_bwd(const attn_rope_config *cfg, int64_t batch, int64_t seq, int64_t heads,
                                   int64_t head_dim, attn_view dy, const int64_t *positions, int64_t pos_stride_b,
                                   attn_view dx);

/* ═══ Reduced precision: typed views, bf16 / f16 attention ════════════════
 * attn_tview is an attn_view that carries its element type: F32, BF16 or F16
 * (data points at elements of that type; strides count elements).
 * attn_sdpa_fwd_typed / attn_sdpa_bwd_typed take every tensor as a typed view
 * and accept any mix of the three types (e.g. bf16 q, k, v with an fp32 o).
 * lse is always fp32. Every mask and option, GQA, varlen, the forward and the
 * backward work for every type, with the fp32 calls' guarantees (strides, no
 * Sq x Sk buffer, bit-identical at any thread count, validation before
 * anything is written).
 *
 * Numerics. Accumulation is fp32. Inputs are exact in fp32, so the
 * computation is the fp32 kernels' on the rounded inputs, and outputs are
 * rounded once to their type (round to nearest even), with one exception,
 * the bf16 fast path:
 *   forward: when q, k and v are all BF16, D is even and the CPU has
 *   AVX512_BF16, Q.K^T and P.V run on the bf16 dot-product unit (vdpbf16ps:
 *   exact bf16 products summed in fp32). The probabilities P are rounded to
 *   bf16 for P.V, as FlashAttention and PyTorch's CPU kernel do (relative
 *   error <= 2^-9 per probability; the row sums that normalise o and give
 *   lse use the unrounded fp32 P). Everything else (masks, softmax, lse,
 *   dropout) is the fp32 path's.
 *   backward: when, in addition, dO is BF16 and Dv is even, all five
 *   products (K.Q^T, V.dO^T, P^T.dO, dS^T.Q, dS.K) run on that unit. P is
 *   rounded to bf16 for dv and dS for dk (as PyTorch's CPU kernel does); for
 *   dq, whose sum over keys cancels (sum_j dS_ij = 0), dS is split into two
 *   bf16 (hi + lo: 2^-17 relative), so dq keeps fp32's accuracy in dS.
 *   Everything else (row statistics, Di, dS itself) is the fp32 backward's.
 * Outside the fast path the backward computes in fp32 from the rounded
 * inputs (its numerics are the fp32 backward's, attn.h "Numerics"); dq, dk,
 * dv are rounded once.
 * F16 has no fast path: no x86 instruction before AVX10.2's vdpphps
 * multiplies f16 pairs into an fp32 sum (AVX512-FP16's arithmetic rounds to
 * f16 at every step), and accumulation here is always fp32, so f16 is widened
 * exactly (F16C vcvtph2ps, or portable C) and takes the fp32 kernels.
 * Tensors of a type other than fp32 that the fp32 kernels read (inputs
 * outside the fast path, o in the backward) are converted once,
 * in blocks, into the workspace, which is why the workspace size depends
 * on the views' types: query it with the _typed_workspace_size functions. */
typedef struct attn_tview {
    void *data;
    int64_t stride_b; /* elements between consecutive batch entries */
    int64_t stride_s; /* elements between consecutive sequence positions */
    int64_t stride_h; /* elements between consecutive heads */
    attn_dtype dtype; /* ATTN_DTYPE_F32, ATTN_DTYPE_BF16 or ATTN_DTYPE_F16 */
} attn_tview;

/* Contiguous (B, S, H, D) typed view. */
static inline attn_tview attn_tview_bshd(void *p, attn_dtype t, int64_t S, int64_t H, int64_t D) {
    attn_tview v;
    v.data = p; v.dtype = t; v.stride_h = D; v.stride_s = H * D; v.stride_b = S * H * D;
    return v;
}
/* Contiguous (B, H, S, D) typed view, presented as (B, S, H, D). */
static inline attn_tview attn_tview_bhsd(void *p, attn_dtype t, int64_t S, int64_t H, int64_t D) {
    attn_tview v;
    v.data = p; v.dtype = t; v.stride_s = D; v.stride_h = S * D; v.stride_b = H * S * D;
    return v;
}
/* An fp32 view as a typed view. */
static inline attn_tview attn_tview_f32(attn_view f) {
    attn_tview v;
    v.data = f.data; v.dtype = ATTN_DTYPE_F32; v.stride_b = f.stride_b; v.stride_s = f.stride_s;
    v.stride_h = f.stride_h;
    return v;
}

/* Workspace bytes of the typed calls (depends on the views' types and, for
 * tensors converted into the workspace, the shape; not on the data). */
ATTN_API size_t attn_sdpa_fwd_typed_workspace_size(const attn_sdpa_dims *dims, attn_tview q, attn_tview k,
                                                   attn_tview v, attn_tview o, const attn_sdpa_opts *opts);
ATTN_API size_t attn_sdpa_bwd_typed_workspace_size(const attn_sdpa_dims *dims, attn_tview q, attn_tview k,
                                                   attn_tview v, attn_tview o, attn_tview dO, attn_tview dq,
                                                   attn_tview dk, attn_tview dv, const attn_sdpa_opts *opts);
/* attn_sdpa_fwd / attn_sdpa_bwd on typed views (shapes, options and
 * workspace rules as there). A dtype other than F32 / BF16 / F16 is
 * ATTN_ERR_DTYPE. */
ATTN_API attn_status attn_sdpa_fwd_typed(const attn_sdpa_dims *dims, attn_tview q, attn_tview k, attn_tview v,
                                         attn_tview o, float *lse, const attn_sdpa_opts *opts, void *workspace,
                                         size_t workspace_size);
ATTN_API attn_status attn_sdpa_bwd_typed(const attn_sdpa_dims *dims, attn_tview q, attn_tview k, attn_tview v,
                                         attn_tview o, attn_tview dO, const float *lse, attn_tview dq,
                                         attn_tview dk, attn_tview dv, const attn_sdpa_opts *opts,
                                         void *workspace, size_t workspace_size);

/* ═══ IO: safetensors ═══════════════════════════════════════════════════════
 * Files are untrusted: every header field and offset is validated, nothing
 * is read out of bounds, and allocations never exceed the file size plus a
 * small constant. */

#define ATTN_MAX_DIMS 8

typedef struct attn_tensor_info {
    const char *name;             /* owned by the file handle */
    attn_dtype dtype;
    int ndim;
    int64_t shape[ATTN_MAX_DIMS];
    int64_t numel;
} attn_tensor_info;

typedef struct attn_st attn_st; /* an opened, validated safetensors file */

ATTN_API attn_status attn_st_open(attn_st **out, const char *path);
/* Parse from memory (the buffer is copied). */
ATTN_API attn_status attn_st_open_memory(attn_st **out, const void *data, size_t size);
ATTN_API void attn_st_free(attn_st *st);
ATTN_API int64_t attn_st_count(const attn_st *st);
ATTN_API attn_status attn_st_info(const attn_st *st, int64_t index, attn_tensor_info *out);
ATTN_API attn_status attn_st_find(const attn_st *st, const char *name, attn_tensor_info *out);
/* Read tensor `name` converted to fp32 (F32/F16/BF16/F64 sources) into dst.
 * shape/ndim: the expected shape; a mismatch is ATTN_ERR_SHAPE naming the
 * tensor, expected and actual shape. ndim = -1 skips the shape check and
 * only checks numel == dst_numel. */
ATTN_API attn_status attn_st_read_f32(const attn_st *st, const char *name, float *dst,
                                      int64_t dst_numel, int ndim, const int64_t *shape);
/* The "__metadata__" (string -> string) entries of the file, sorted by key.
 * Strings are owned by the handle (a value containing \u0000 ends there). */
ATTN_API int64_t attn_st_metadata_count(const attn_st *st);
ATTN_API attn_status attn_st_metadata_entry(const attn_st *st, int64_t index, const char **key,
                                            const char **value);
/* Value of a metadata key, or NULL if the file has no such key. */
ATTN_API const char *attn_st_metadata(const attn_st *st, const char *key);

typedef struct attn_st_writer attn_st_writer; /* collects tensors, then writes one file */
ATTN_API attn_status attn_st_writer_create(attn_st_writer **out);
ATTN_API void attn_st_writer_free(attn_st_writer *w);
/* Adds an F32 tensor (data is copied). Duplicate names are an error. */
ATTN_API attn_status attn_st_writer_add_f32(attn_st_writer *w, const char *name, const float *data,
                                            int ndim, const int64_t *shape);
/* Sets a "__metadata__" entry (UTF-8 key and value; setting a key again
 * replaces its value). "format": "pt" is always written unless set here. */
ATTN_API attn_status attn_st_writer_set_metadata(attn_st_writer *w, const char *key, const char *value);
ATTN_API attn_status attn_st_writer_save(const attn_st_writer *w, const char *path);

/* ═══ IO: .npy ══════════════════════════════════════════════════════════════ */
typedef struct attn_npy {
    float *data;                  /* fp32, C order, owned (free with attn_npy_free) */
    int ndim;
    int64_t shape[ATTN_MAX_DIMS];
    int64_t numel;
} attn_npy;

/* Reads float32 / float16 / float64 little-endian C-order arrays (converted to fp32). */
ATTN_API attn_status attn_npy_read(const char *path, attn_npy *out);
ATTN_API attn_status attn_npy_read_memory(const void *data, size_t size, attn_npy *out);
ATTN_API void attn_npy_free(attn_npy *a);
ATTN_API attn_status attn_npy_write(const char *path, const float *data, int ndim, const int64_t *shape);

/* ═══ Multi-head attention layer ═══════════════════════════════════════════
 * RoPE kinds and scalings: attn_rope_kind, attn_rope_scaling ("Building
 * blocks: RoPE"). */
typedef enum attn_init_scheme {
    ATTN_INIT_XAVIER_UNIFORM = 0, /* U(-a, a), a = sqrt(6 / (fan_in + fan_out)) */
    ATTN_INIT_NORMAL = 1          /* N(0, 0.02^2) */
} attn_init_scheme;

typedef enum attn_layout {
    ATTN_BATCH_FIRST = 0, /* (B, S, E) */
    ATTN_SEQ_FIRST = 1    /* (S, B, E) — nn.MultiheadAttention default */
} attn_layout;

/* Start from attn_mha_config_init(); fields with 0 take the stated default. */
typedef struct attn_mha_config {
    uint32_t struct_size;  /* set by attn_mha_config_init(): sizeof(attn_mha_config) of the caller */
    int64_t embed_dim;     /* E: width of x and of the output y (required) */
    int64_t num_heads;     /* Hq (required) */
    int64_t num_kv_heads;  /* Hkv, divides Hq; 0 = num_heads */
    int64_t head_dim;      /* D; 0 = embed_dim / num_heads (must divide) */
    int64_t kdim;          /* width of the key input (cross-attention); 0 = embed_dim */
    int64_t vdim;          /* width of the value input; 0 = kdim */
    int bias_q, bias_k, bias_v, bias_o; /* 0/1 per projection */
    int causal;            /* causal self-attention (bottom-right aligned) */
    float scale;           /* 0 = 1/sqrt(D) */
    float dropout;         /* attention dropout probability in training mode, [0, 1) */
    uint64_t dropout_seed;
    float softcap;         /* 0 = off */
    int64_t window_left, window_right; /* sliding window; -1 = unlimited (set by init) */
    int rope;              /* attn_rope_kind */
    float rope_theta;      /* 0 = 10000 */
    int64_t rope_dim;      /* rotated dims per head (partial rotary); 0 = head_dim; even */
    int rope_scaling;      /* attn_rope_scaling */
    float rope_factor;     /* linear / llama3 factor */
    float rope_low_freq_factor, rope_high_freq_factor; /* llama3 */
    int64_t rope_original_max_pos;                     /* llama3 */
    int qk_norm;           /* per-head RMSNorm of q and k (Qwen3), before RoPE */
    float qk_norm_eps;     /* 0 = 1e-6 */
    /* appended fields (older callers that start from attn_mha_config_init get the defaults) */
    float qk_norm_offset;  /* the norm multiplies by (qk_norm_offset + w): 0 (default), or 1 for
                              Gemma 3, whose q_norm / k_norm weights are stored as w - 1 */
    /* RoPE scaling of the appended types (rope_factor and rope_original_max_pos as above) */
    int64_t rope_max_pos;          /* dynamic: max_position_embeddings (>= 1) */
    float rope_attention_factor;   /* yarn, longrope: multiplies cos and sin; 0 = the type's default
                                      (yarn: mscale formula, longrope: sqrt(1 + ln f / ln orig)) */
    float rope_beta_fast, rope_beta_slow;     /* yarn; 0 = 32, 1 */
    float rope_mscale, rope_mscale_all_dim;   /* yarn; 0 = unset */
    int rope_no_truncate;          /* yarn: 1 = do not floor / ceil the correction range */
    float rope_short_factor[128];  /* longrope: (rope_dim / 2) per-frequency divisors */
    float rope_long_factor[128];   /* longrope: (rope_dim / 2) */
    /* Element type of the projection weights Wq, Wk, Wv, Wo (appended; see "Mixed precision"
     * below): ATTN_DTYPE_F32 (default), or ATTN_DTYPE_BF16 / ATTN_DTYPE_F16 for an
     * inference-only layer that holds them in 16 bits (biases and norm weights stay fp32). */
    attn_dtype weight_dtype;
} attn_mha_config;

/* attn_mha_config_init(&cfg): the defaults (window_left = window_right = -1,
 * every other field 0) and struct_size = sizeof cfg; see attn_sdpa_opts_init_size. */
ATTN_API attn_status attn_mha_config_init_size(attn_mha_config *cfg, size_t struct_size);
#define attn_mha_config_init(cfg) attn_mha_config_init_size((cfg), sizeof *(cfg))

/* ─── HuggingFace config.json ───────────────────────────────────────────────
 * Reads the attention layer of a transformers config.json. The architecture
 * comes from "model_type" (multimodal wrappers: "text_config"); each one has
 * a table of the keys it READS (each implemented), IGNORES (they cannot change
 * attention: MLP, embeddings, tokens, generation) and REFUSES unless they hold
 * the implemented value. Anything else is refused, never guessed: an unknown
 * model_type (the message lists the supported ones), an unknown key, an
 * unsupported value (one line naming the key, the value and what is
 * supported). docs/hf.md lists the tables. Supported model_type values:
 * llama, mistral, mixtral, qwen2, qwen2_moe, qwen3, qwen3_moe, gemma, gemma2,
 * gemma3_text (gemma3 via text_config), stablelm, phi3, phi, gpt_neox, gpt2,
 * bert, roberta (attn_hf_info.naming says how their tensors are named).
 * Per-layer settings (Qwen2 max_window_layers, layer_types, Gemma 3's local
 * RoPE base) are read for the chosen layer; without a layer every layer must
 * read alike, otherwise ATTN_ERR_CONFIG asks for one.
 * attn_hf_config_read(path, out) = attn_hf_config_read_ex(path, NULL, out, NULL)
 * with the defaults of attn_hf_opts_init (path: a file or a model directory).
 * *out must have been initialised with attn_mha_config_init() (its struct_size
 * says how much may be written); nothing is written on error. */
ATTN_API attn_status attn_hf_config_read(const char *path, attn_mha_config *out);
ATTN_API attn_status attn_hf_config_parse(const char *json, size_t len, attn_mha_config *out);

typedef struct attn_hf_opts {
    int64_t layer;          /* layer index to read; -1 (default): every layer must read alike */
    const char *model_type; /* NULL (default): the config's own; else read it as this supported type */
    int allow_unknown_keys; /* 0 (default): a key no table lists is refused; 1: ignored */
} attn_hf_opts;
ATTN_API void attn_hf_opts_init(attn_hf_opts *opts);

/* What the reader understood (attn run prints it). */
typedef struct attn_hf_info {
    char model_type[32];    /* the architecture read, e.g. "gemma2" */
    char arch_name[32];     /* e.g. "Gemma 2" */
    int64_t num_layers;     /* num_hidden_layers, 0 if the config does not say */
    int64_t layer;          /* the layer read (0 when opts.layer = -1) */
    char prefix[128];       /* its tensor-name prefix, e.g. "model.layers.3.self_attn" */
    char prefix_alt[128];   /* the prefix when the bare model was saved alone ("layers.3.self_attn"), or "" */
    int naming;             /* attn_naming to pass to attn_mha_load */
    int sliding;            /* 1 if the layer has a sliding window */
} attn_hf_info;

/* opts and info may be NULL. *out and *info are written only on success. */
ATTN_API attn_status attn_hf_config_read_ex(const char *path, const attn_hf_opts *opts, attn_mha_config *out,
                                            attn_hf_info *info);
ATTN_API attn_status attn_hf_config_parse_ex(const char *json, size_t len, const attn_hf_opts *opts,
                                             attn_mha_config *out, attn_hf_info *info);

/* ─── Mixed precision: 16-bit projection weights (inference only) ─────────────
 * cfg.weight_dtype = ATTN_DTYPE_BF16 or ATTN_DTYPE_F16 creates a layer that
 * holds Wq, Wk, Wv and Wo in that type, 2 bytes per element and no fp32 copy
 * (attn_mha_param_bytes; an fp32 layer holds 4 bytes per weight element plus
 * 4 for its gradient). Biases and norm weights stay fp32. The contract:
 *  - Load (attn_mha_load, attn_mha_load_index, every naming): tensors of the
 *    layer's type are copied bit for bit; F32, F16 and BF16 tensors of another
 *    type are rounded once, to nearest even; a finite value that F16 cannot
 *    hold (|x| >= 65520) is refused (ATTN_ERR_DTYPE naming the tensor), and
 *    F64 tensors are refused (ATTN_ERR_DTYPE). Peak memory: the 16-bit weights
 *    plus one 16-bit staging copy (loads stay all-or-nothing).
 *    attn_mha_init_weights draws the values an fp32 layer draws for the same
 *    seed and rounds them to nearest even.
 *  - Forward (attn_mha_forward, attn_mha_forward_cached, attn_mha_forward_paged):
 *    activations stay fp32 (x, q, k, v, o, y; attention as in an fp32 layer).
 *    Each projection Y = X W^T runs one of two ways (attn_mha_proj_kernel):
 *    sbgemm  BF16 weights, libattn built with an OpenBLAS that has cblas_sbgemm
 *            (not Debian's 0.3.21) and a CPU with AVX512_BF16: X rounded to
 *            bf16 (nearest even), exact products, fp32 sums;
 *    widen   otherwise: 256 weight rows at a time widened (exactly) into fp32
 *            scratch, then fp32 sgemm: the product of an fp32 layer holding
 *            the same (widened) weights, up to the order of the sums; with
 *            at most 8 rows of X (decoding) the weights are instead read in
 *            place and widened in registers (the KV-cache decode kernel), so
 *            a decode step reads half the fp32 layer's weight bytes.
 *    Per output element, against exact arithmetic on the stored weights:
 *    |Y~ - Y| <= (u_x + gamma_K (1 + u_x)) sum_k |X_k| |W_k|, gamma_K =
 *    K 2^-24 / (1 - K 2^-24), u_x = 2^-8 (sbgemm) or 0 (widen); checked by
 *    tests/test_mha_typed_weights.c. Bit-identical at any thread count
 *    (a fixed, shape-only set of panels, each one single-threaded BLAS call);
 *    not across the two ways, nor bit-identical to the fp32 layer.
 *  - Training keeps fp32 master weights: on a 16-bit layer
 *    attn_mha_set_training(m, 1), attn_mha_backward and attn_mha_lora_attach
 *    are ATTN_ERR_UNSUPPORTED. attn_mha_param lists the usual parameters with
 *    data = NULL for the four weights (not fp32), grad = NULL and trainable = 0
 *    for all, so attn_optim_step skips them (one passed with trainable set is
 *    ATTN_ERR_NULL) and attn_mha_zero_grad does nothing. To train, load the
 *    same checkpoint into an fp32 layer (16-bit values widen exactly).
 *  - attn_mha_save writes the weights widened to F32 (exact: loading the file
 *    into a layer of the same weight_dtype restores the same bits). */
typedef struct attn_mha attn_mha;

/* How the layer computes its projections: "sgemm" (fp32 weights), "sbgemm" or
 * "widen" (16-bit weights, see above). NULL for NULL. */
ATTN_API const char *attn_mha_proj_kernel(const attn_mha *m);

ATTN_API attn_status attn_mha_create(attn_mha **out, const attn_mha_config *cfg);
ATTN_API void attn_mha_free(attn_mha *m);
ATTN_API const attn_mha_config *attn_mha_get_config(const attn_mha *m); /* resolved defaults */
/* Seeded, reproducible initialisation of weights; biases zero; norm weights one
 * (qk_norm_offset + w = 1). */
ATTN_API attn_status attn_mha_init_weights(attn_mha *m, attn_init_scheme scheme, uint64_t seed);
/* Training mode saves activations for backward and enables dropout. Default: eval. */
ATTN_API attn_status attn_mha_set_training(attn_mha *m, int training);

/* Inputs of one forward. Start from attn_mha_input_init().
 * Cross-attention with RoPE: keys sit at positions 0 .. Skv-1. In training
 * mode x / key / value and the masks are copied into the layer for backward
 * (the caller's buffers may be reused right after the call). */
typedef struct attn_mha_input {
    uint32_t struct_size;       /* set by attn_mha_input_init(): sizeof(attn_mha_input) of the caller */
    int layout;                 /* attn_layout of x / key / value / y / dy / dx */
    int64_t batch;              /* B */
    int64_t seq_q;              /* Sq */
    int64_t seq_kv;             /* Skv (cross-attention); ignored for self-attention */
    const float *x;             /* (B, Sq, E) query input (self-attention: also key/value input) */
    const float *key;           /* (B, Skv, kdim) or NULL for self-attention */
    const float *value;         /* (B, Skv, vdim) or NULL (= key) */
    const int32_t *positions;   /* (B, Sq) RoPE positions, or NULL: pos_offset + i */
    int64_t pos_offset;
    const uint8_t *key_padding_mask; /* (B, Skv) nonzero = padded/ignored (nn.MultiheadAttention), or NULL */
    int mask_kind;              /* extra explicit mask, as in attn_sdpa_opts */
    const void *mask;
    int64_t mask_stride_b, mask_stride_h, mask_stride_q;
} attn_mha_input;

/* attn_mha_input_init(&in): batch-first, everything NULL / 0, struct_size =
 * sizeof in; see attn_sdpa_opts_init_size. */
ATTN_API attn_status attn_mha_input_init_size(attn_mha_input *in, size_t struct_size);
#define attn_mha_input_init(in) attn_mha_input_init_size((in), sizeof *(in))

/* y (B, Sq, E) in in->layout. In training mode the activations needed by
 * backward are saved in the object (one forward per backward). */
ATTN_API attn_status attn_mha_forward(attn_mha *m, const attn_mha_input *in, float *y);

/* Backward of the last training-mode forward.
 *   dy    (B, Sq, E)      in
 *   dx    (B, Sq, E)      out (overwritten); may be NULL
 *   dkey  (B, Skv, kdim)  out (overwritten) for cross-attention; may be NULL
 *   dvalue(B, Skv, vdim)  out (overwritten) when value != key; may be NULL
 * For cross-attention with value == NULL (value = key), dkey receives both.
 * Parameter gradients are accumulated (+=). */
ATTN_API attn_status attn_mha_backward(attn_mha *m, const float *dy, float *dx, float *dkey,
                                       float *dvalue);

/* Attention backend: the layer's attention computed by the caller instead of
 * the kernels, e.g. libattn_mpi's ring when the sequence is sharded across
 * processes (attn_mpi.h: attn_mpi_mha_forward). With a backend set,
 * attn_mha_forward / attn_mha_backward do everything else as usual
 * (projections, LoRA, bias, qk-norm, RoPE at in->positions, output
 * projection) and call, where they would call the kernels,
 *   fwd(user, dims, q, k, v, o, lse, opts)    for attn_sdpa_fwd (lse NULL in eval mode)
 *   bwd(user, dims, q, k, v, o, dO, lse, dq, dk, dv, opts)   for attn_sdpa_bwd
 * with exactly the arguments the kernels would get (shapes as there; views
 * into the layer's buffers, valid during the call; opts as the layer built
 * them: scale, causal, windows, softcap, dropout, key_lens / mask from the
 * input). A non-OK status is returned by the layer call (message:
 * attn_last_error() names the backend; the backend keeps its own).
 * Self-attention only: with a backend set, cross-attention inputs and the
 * cached forwards (attn_mha_forward_cached / _paged) are refused
 * (ATTN_ERR_UNSUPPORTED), and the S = 1 shortcut of attn_mha_forward is not
 * taken. fwd and bwd both non-NULL, or both NULL (the kernels again).
 * Invalidates a saved training-mode forward. */
typedef attn_status (*attn_mha_attn_fwd_fn)(void *user, const attn_sdpa_dims *dims, attn_view q, attn_view k,
                                            attn_view v, attn_view o, float *lse, const attn_sdpa_opts *opts);
typedef attn_status (*attn_mha_attn_bwd_fn)(void *user, const attn_sdpa_dims *dims, attn_view q, attn_view k,
                                            attn_view v, attn_view o, attn_view dO, const float *lse, attn_view dq,
                                            attn_view dk, attn_view dv, const attn_sdpa_opts *opts);
ATTN_API attn_status attn_mha_set_attention(attn_mha *m, attn_mha_attn_fwd_fn fwd, attn_mha_attn_bwd_fn bwd,
                                            void *user);

/* Parameters, named with HuggingFace suffixes: q_proj.weight (Hq*D, E),
 * q_proj.bias (Hq*D), k_proj.weight (Hkv*D, kdim), v_proj.weight (Hkv*D, vdim),
 * o_proj.weight (E, Hq*D), o_proj.bias (E), q_norm.weight (D), k_norm.weight (D),
 * and LoRA: q_proj.lora_A.weight (r, in), q_proj.lora_B.weight (out, r). */
typedef struct attn_param {
    const char *name;  /* suffix, owned by the layer */
    float *data;       /* owned by the layer */
    float *grad;       /* same shape; owned by the layer */
    int ndim;
    int64_t shape[2];
    int64_t numel;
    int trainable;     /* 0 for frozen base weights when LoRA is attached */
} attn_param;

ATTN_API int64_t attn_mha_num_params(const attn_mha *m);
ATTN_API attn_status attn_mha_param(attn_mha *m, int64_t index, attn_param *out);
ATTN_API attn_status attn_mha_find_param(attn_mha *m, const char *name, attn_param *out);
ATTN_API int64_t attn_mha_num_trainable(const attn_mha *m); /* trainable scalar count */
/* Bytes the layer holds for its parameters: weights (4 bytes per element for
 * F32 weights, 2 for BF16 / F16), biases, norm weights and LoRA adapters, and
 * the fp32 gradients of the trainable kinds (a 16-bit-weight layer has none).
 * Scratch buffers of the forward are not counted. 0 for NULL. */
ATTN_API size_t attn_mha_param_bytes(const attn_mha *m);
ATTN_API attn_status attn_mha_zero_grad(attn_mha *m);

typedef enum attn_naming {
    ATTN_NAMING_HF = 0,   /* {prefix}.q_proj.weight, ... */
    ATTN_NAMING_TORCH = 1, /* nn.MultiheadAttention: in_proj_weight (3E, E), in_proj_bias,
                             q_proj_weight/k_proj_weight/v_proj_weight when kdim != E,
                             out_proj.weight, out_proj.bias */
    /* appended: the other HuggingFace layouts (self-attention, kdim = vdim = E; split at load) */
    ATTN_NAMING_FUSED_QKV = 2, /* Phi-3: qkv_proj.weight (Hq*D + 2*Hkv*D, E) = [Wq; Wk; Wv], o_proj */
    ATTN_NAMING_NEOX = 3,  /* GPT-NeoX: query_key_value.weight (3*H*D, E) per head [q_h; k_h; v_h]
                              (+ .bias), dense.weight / dense.bias */
    ATTN_NAMING_PHI = 4,   /* Phi-1/2: q_proj, k_proj, v_proj, dense (+ biases) */
    ATTN_NAMING_GPT2 = 5,  /* GPT-2 Conv1D, stored (in, out): c_attn.weight (E, 3E) = [Wq | Wk | Wv]^T,
                              c_attn.bias (3E), c_proj.weight (E, E) = Wo^T, c_proj.bias */
    ATTN_NAMING_BERT = 6,  /* BERT / RoBERTa: self.query / self.key / self.value, output.dense
                              (prefix ...layer.N.attention) */
    ATTN_NAMING_COUNT = 7
} attn_naming;

/* Loads every parameter from an opened file; prefix may be "" or NULL.
 * Missing or mis-shaped tensors: error naming the tensor, expected and actual shape.
 * All-or-nothing (on error the layer is unchanged). LoRA tensors are optional
 * (a base checkpoint loads into an adapted layer); a tensor the layer has no
 * room for (a bias with bias_* = 0, norms without qk_norm) is ATTN_ERR_CONFIG.
 * save writes HF names (ATTN_NAMING_HF) whatever naming loaded the layer; a merged
 * layer saves the merged weights without adapters. The namings >= 2 load
 * projections and biases only (no qk-norm; LoRA tensors are not read). */
ATTN_API attn_status attn_mha_load(attn_mha *m, const attn_st *st, const char *prefix, attn_naming naming);
ATTN_API attn_status attn_mha_save(const attn_mha *m, attn_st_writer *w, const char *prefix);
/* The same load from a sharded checkpoint: index_path is a
 * model.safetensors.index.json (or a directory holding one). Its weight_map
 * names the shard of each tensor; the shards holding tensors under "prefix."
 * are opened from the index's directory and validated like attn_st_open, and
 * each tensor is read from the shard the index names. */
ATTN_API attn_status attn_mha_load_index(attn_mha *m, const char *index_path, const char *prefix,
                                         attn_naming naming);

/* LoRA: y += (alpha / r) * x A^T B^T on the chosen projections. A (r, in) is
 * initialised ~ Kaiming-uniform (seeded), B (out, r) = 0. Attaching freezes
 * the base weights (trainable = 0). which: bitmask of ATTN_PROJ_*.
 * Every base parameter (weights, biases, norm weights) is frozen; attaching
 * twice is ATTN_ERR_STATE; while merged the forward skips the adapter branch. */
#define ATTN_PROJ_Q 1
#define ATTN_PROJ_K 2
#define ATTN_PROJ_V 4
#define ATTN_PROJ_O 8
ATTN_API attn_status attn_mha_lora_attach(attn_mha *m, int which, int64_t rank, float alpha, uint64_t seed);
ATTN_API attn_status attn_mha_lora_merge(attn_mha *m);   /* W += (alpha/r) B A; adapters stay */
ATTN_API attn_status attn_mha_lora_unmerge(attn_mha *m); /* W -= (alpha/r) B A */

/* ═══ KV cache ═════════════════════════════════════════════════════════════
 * Holds K and V (after RoPE / k-norm) of B independent sequences:
 *   k, v: (B, Hkv, capacity, D) (head-major), each sequence with its own length. */
typedef struct attn_kvcache attn_kvcache;

ATTN_API attn_status attn_kvcache_create(attn_kvcache **out, int64_t batch, int64_t capacity,
                                         int64_t num_kv_heads, int64_t head_dim);

/* KV cache element types (both caches: attn_kvcache_create_typed, attn_kvpaged_config.dtype).
 * K and V arrive as fp32 and are stored as:
 *   ATTN_DTYPE_F32   as is;
 *   ATTN_DTYPE_BF16  rounded to nearest, ties to even (Inf / NaN kept);
 *   ATTN_DTYPE_F16   IEEE binary16, rounded to nearest even (|x| >= 65520 becomes +-Inf);
 *   ATTN_DTYPE_I8    symmetric int8 with one fp32 scale per token per KV head (K and V
 *                    each), stored beside the cache: for the row x (D) of one token and
 *                    head, a = max_d |x_d|, scale = a / 127, q_d = round-to-nearest-even(
 *                    x_d / scale) in [-127, 127]; the value read back is q_d * scale.
 *                    Error bound (tested): |q_d * scale - x_d| <= a / 254 + a * 2^-22 per
 *                    element (half a quantisation step of the row's own range, plus fp32
 *                    rounding of the division and of the read-back product).
 *                    A row of zeros has scale 0 (reads back as zeros); a row holding an
 *                    Inf or NaN has scale NaN (reads back as NaN: the attending queries'
 *                    outputs are NaN, as with fp32 K/V).
 * Decoding (attn_sdpa_paged_fwd, the incremental forwards) reads the compressed
 * cache directly, widening in registers (no fp32 copy of the cache); scores and
 * outputs accumulate in fp32, so a reduced-precision cache gives the attention of
 * the rounded / quantised K and V to fp32 accuracy (opts->decode_fast trades that,
 * on BF16 and I8 pools, for bf16 / integer dot products: see attn_sdpa_opts). Prefill chunks (many
 * new query tokens) widen one 64-key tile at a time into the kernel's workspace. */
/* As attn_kvcache_create, with the element type of K and V: ATTN_DTYPE_F32, BF16, F16
 * or I8 (anything else: ATTN_ERR_DTYPE); capacity <= 2^30 for types other than F32. */
ATTN_API attn_status attn_kvcache_create_typed(attn_kvcache **out, int64_t batch, int64_t capacity,
                                               int64_t num_kv_heads, int64_t head_dim, attn_dtype dtype);
ATTN_API attn_dtype attn_kvcache_dtype(const attn_kvcache *c);
/* Copies tokens [t0, t0 + n) of sequence b into k, v (n, Hkv, D) as fp32 (the stored,
 * rounded / dequantised values), contiguous. */
ATTN_API attn_status attn_kvcache_read(const attn_kvcache *c, int64_t b, int64_t t0, int64_t n, float *k, float *v);
ATTN_API void attn_kvcache_free(attn_kvcache *c);
ATTN_API attn_status attn_kvcache_reset(attn_kvcache *c);
/* Shortens sequence b (or every sequence if b < 0) to len tokens (len <= current). */
ATTN_API attn_status attn_kvcache_truncate(attn_kvcache *c, int64_t b, int64_t len);
ATTN_API int64_t attn_kvcache_len(const attn_kvcache *c, int64_t b);
ATTN_API int64_t attn_kvcache_capacity(const attn_kvcache *c);

/* Incremental (inference) forward: appends the K/V of the Sq new tokens of x
 * (B, Sq, E) to the cache at positions len_b .. len_b + Sq - 1 (RoPE positions
 * continue from len_b), then attends causally over the whole cached sequence.
 * y (B, Sq, E). Prefill and single-token decode alike. Fails with
 * ATTN_ERR_CAPACITY (and changes nothing) if any sequence would overflow.
 * Always causal (whatever cfg.causal), inference only (no dropout, nothing
 * saved for backward), self-attention layers only (kdim = vdim = embed_dim,
 * else ATTN_ERR_UNSUPPORTED); the cache must match batch, Hkv and D. Any cache element
 * type: the new K/V are rounded / quantised as they are appended, and attention reads
 * the cache in place (F32 through attn_sdpa_fwd, the others through attn_sdpa_paged_fwd). */
ATTN_API attn_status attn_mha_forward_cached(attn_mha *m, attn_kvcache *cache, const float *x,
                                             int64_t batch, int64_t seq_q, float *y);

/* ═══ Paged KV cache and batched (serving) attention ═══════════════════════
 * A pool of fixed-size blocks shared by any number of sequences (vLLM style).
 * Block n of the pool holds block_size consecutive tokens of one sequence:
 *   k pool (num_blocks, Hkv, block_size, D), v pool (num_blocks, Hkv, block_size, D)
 * (head-major inside a block: a head's keys of a block are one contiguous
 * run). Each live sequence has a caller-chosen id (>= 0), a length and a
 * block table: token t sits in pool block table[t / block_size] at slot
 * t % block_size. fork() makes a child that shares all of its parent's
 * blocks (reference counted); the first write into a shared block copies it
 * (copy-on-write), so a shared prompt prefix is stored once.
 * Every call either succeeds or changes nothing: when the pool (or the
 * sequence table) is full the call returns ATTN_ERR_CAPACITY. An
 * attn_kvpaged object must not be used by two threads at the same time. */
typedef struct attn_kvpaged attn_kvpaged;

typedef struct attn_kvpaged_config {
    uint32_t struct_size;  /* set by attn_kvpaged_config_init(): sizeof(attn_kvpaged_config) of the caller */
    int64_t num_blocks;    /* blocks in the pool, >= 1 */
    int64_t block_size;    /* tokens per block, in [16, 128] */
    int64_t max_seqs;      /* live sequences at once, >= 1 */
    int64_t max_seq_len;   /* tokens per sequence, >= 1 (block table width = ceil(max_seq_len / block_size)) */
    int64_t num_kv_heads;  /* Hkv in [1, 65536] */
    int64_t head_dim;      /* D in [1, 256] (k and v) */
    attn_dtype dtype;      /* element type of the pool: ATTN_DTYPE_F32, BF16, F16 or I8 (see "KV cache element types") */
} attn_kvpaged_config;

/* attn_kvpaged_config_init(&cfg): every size 0 (to be set), dtype F32,
 * struct_size = sizeof cfg; see attn_sdpa_opts_init_size. */
ATTN_API attn_status attn_kvpaged_config_init_size(attn_kvpaged_config *cfg, size_t struct_size);
#define attn_kvpaged_config_init(cfg) attn_kvpaged_config_init_size((cfg), sizeof *(cfg))

ATTN_API attn_status attn_kvpaged_create(attn_kvpaged **out, const attn_kvpaged_config *cfg);
ATTN_API void attn_kvpaged_free(attn_kvpaged *c);
/* New empty sequence `id` (>= 0). An id already live is ATTN_ERR_STATE; a
 * full sequence table is ATTN_ERR_CAPACITY. */
ATTN_API attn_status attn_kvpaged_add(attn_kvpaged *c, int64_t id);
/* Releases sequence `id` and its references to its blocks (ATTN_ERR_NOT_FOUND if not live). */
ATTN_API attn_status attn_kvpaged_remove(attn_kvpaged *c, int64_t id);
/* New sequence `child` = a copy of `parent` sharing all its blocks (no K/V copied). */
ATTN_API attn_status attn_kvpaged_fork(attn_kvpaged *c, int64_t parent, int64_t child);
/* Shortens sequence `id` to len tokens (0 <= len <= current); blocks past it are released. */
ATTN_API attn_status attn_kvpaged_truncate(attn_kvpaged *c, int64_t id, int64_t len);
/* Appends n tokens to sequence `id`:
 *   k (n, Hkv, D), v (n, Hkv, D): token t's head h at k + t * ld + h * D (ld >= Hkv * D).
 * Allocates blocks (and copies a shared last block first) as needed. */
ATTN_API attn_status attn_kvpaged_append(attn_kvpaged *c, int64_t id, int64_t n, const float *k, const float *v,
                                         int64_t ld);
/* Copies tokens [t0, t0 + n) of sequence `id` into k, v (n, Hkv, D), contiguous, as fp32
 * (the stored values: rounded / dequantised for BF16 / F16 / I8 pools). */
ATTN_API attn_status attn_kvpaged_read(const attn_kvpaged *c, int64_t id, int64_t t0, int64_t n, float *k, float *v);
/* Length of sequence `id`, or -1 (with the error set) if it is not live. */
ATTN_API int64_t attn_kvpaged_len(const attn_kvpaged *c, int64_t id);
/* Blocks not referenced by any sequence. */
ATTN_API int64_t attn_kvpaged_free_blocks(const attn_kvpaged *c);
ATTN_API const attn_kvpaged_config *attn_kvpaged_get_config(const attn_kvpaged *c);

/* K/V of a batch of B sequences read through block tables: the input of
 * attn_sdpa_paged_fwd (filled by attn_kvpaged_describe, or by the caller for
 * its own pool). */
typedef struct attn_paged_kv {
    attn_dtype dtype;            /* element type of k and v: ATTN_DTYPE_F32, BF16, F16 or I8 */
    const void *k;               /* (num_blocks, Hkv, block_size, D) of dtype */
    const void *v;               /* (num_blocks, Hkv, block_size, Dv) of dtype */
    int64_t num_blocks;          /* >= 1 */
    int64_t block_size;          /* in [1, 2^30] */
    const int32_t *block_tables; /* (B, max_blocks): sequence b's key t in block block_tables[b * max_blocks + t / block_size] */
    int64_t max_blocks;          /* >= 1: row stride of block_tables = blocks a sequence may have */
    const int32_t *seq_lens;     /* (B) keys of sequence b (cached + new), 0 <= seq_lens[b] <= max_blocks * block_size */
    /* Appended (unreleased 0.2.0 layout): the int8 scales, I8 only (NULL otherwise):
     * key t of head h in block n has the value k[n][h][t][d] * k_scale[(n * Hkv + h) * block_size + t]. */
    const float *k_scale;        /* (num_blocks, Hkv, block_size) */
    const float *v_scale;        /* (num_blocks, Hkv, block_size) */
} attn_paged_kv;

/* Fills out for the n sequences ids[0..n): seq_lens (n) and block_tables
 * (n, max_blocks) are the caller's buffers (max_blocks = ceil(max_seq_len / block_size)). */
ATTN_API attn_status attn_kvpaged_describe(const attn_kvpaged *c, const int64_t *ids, int64_t n, int32_t *seq_lens,
                                           int32_t *block_tables, attn_paged_kv *out);

/* Batched attention over a paged cache, prefill chunks and decode steps in
 * one call. dims: batch = B sequences, seq_q = T total new query tokens, Hq,
 * Hkv, D, Dv (seq_k is ignored). opts->cu_seqlens_q (B + 1) is required:
 * sequence b's queries are rows [cu[b], cu[b+1]) of q, and its keys are
 * kv->seq_lens[b] tokens (usually its cached tokens followed by the new ones).
 *   q   (1, T, Hq, D)   in (packed; stride_b ignored)
 *   o   (1, T, Hq, Dv)  out
 *   lse (Hq, T)         out, or NULL
 * The attn.h position model applies per sequence with Sk_b = seq_lens[b]
 * (bottom-right alignment: query i at key position seq_lens[b] - Sq_b + i).
 * Options: scale, causal, align, window_left/right, alibi_slopes, softcap,
 * num_threads. key_lens, an explicit mask, cu_seqlens_k and dropout are
 * ATTN_ERR_UNSUPPORTED. Every block id a sequence uses must lie in
 * [0, num_blocks). Long contexts are split across threads into fixed key
 * partitions combined in order: bit-identical at any thread count, and a
 * sequence's result does not depend on the other sequences of the batch
 * (the partition length depends only on max_blocks * block_size). The
 * workspace rules are attn_sdpa_fwd's (64-byte aligned, NULL allocates). */
ATTN_API size_t attn_sdpa_paged_fwd_workspace_size(const attn_sdpa_dims *dims, const attn_paged_kv *kv,
                                                   const attn_sdpa_opts *opts);
ATTN_API attn_status attn_sdpa_paged_fwd(const attn_sdpa_dims *dims, attn_view q, const attn_paged_kv *kv,
                                         attn_view o, float *lse, const attn_sdpa_opts *opts, void *workspace,
                                         size_t workspace_size);

/* Incremental forward for a batch of sequences of a paged cache (continuous
 * batching): sequence ids[b] gets the new tokens rows [cu_seqlens_q[b],
 * cu_seqlens_q[b+1]) of x (T, E), T = cu_seqlens_q[n]. Their K/V (after
 * k-norm and RoPE at positions len_b + i) are appended to the cache, then
 * each sequence attends causally over all its tokens. y (T, E).
 * Ids must be live and distinct. ATTN_ERR_CAPACITY (nothing changed) if the
 * pool cannot hold the new tokens. Same restrictions as attn_mha_forward_cached. */
ATTN_API attn_status attn_mha_forward_paged(attn_mha *m, attn_kvpaged *cache, const int64_t *ids, int64_t n,
                                            const int32_t *cu_seqlens_q, const float *x, float *y);

/* ═══ Optimisers ═══════════════════════════════════════════════════════════
 * Operate on an array of attn_param (any source: a layer, or the caller's
 * own tensors). The same parameters, in the same order, must be passed at
 * every step; state is allocated at the first step. Frozen (trainable == 0)
 * parameters are skipped. */
typedef struct attn_optim attn_optim;

ATTN_API attn_status attn_optim_create_sgd(attn_optim **out, float lr, float momentum, float weight_decay);
/* AdamW with decoupled weight decay (Loshchilov & Hutter). */
ATTN_API attn_status attn_optim_create_adamw(attn_optim **out, float lr, float beta1, float beta2,
                                             float eps, float weight_decay);
ATTN_API void attn_optim_free(attn_optim *o);
ATTN_API attn_status attn_optim_set_lr(attn_optim *o, float lr);
ATTN_API attn_status attn_optim_step(attn_optim *o, const attn_param *params, int64_t n);
/* Global gradient-norm clipping, as torch.nn.utils.clip_grad_norm_ (call it
 * between the backward and attn_optim_step): the L2 norm of all trainable
 * parameters' grads taken together (summed in float64 in parameter, then
 * element order: the same bits every run) is written to *total_norm (may be
 * NULL); if it exceeds max_norm (finite, > 0) every trainable grad is scaled
 * by max_norm / norm. A non-finite norm (a NaN or Inf gradient) is reported
 * in *total_norm with ATTN_OK and the grads are left unchanged: check it and
 * skip the step. Frozen parameters are neither counted nor scaled. */
ATTN_API attn_status attn_optim_clip_grad_norm(const attn_param *params, int64_t n, double max_norm,
                                               double *total_norm);

#ifdef __cplusplus
}
#endif
#endif /* ATTN_H */
