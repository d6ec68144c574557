/* SPDX-License-Identifier: MIT */
/* cmd_info.c — `attn info`: version, CPU, kernel ISA, threads, BLAS. */
#include "args.h"
#include "bench_peer.h"
#include "cli.h"
#include "core/core.h"
#include "kernels/dispatch.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Best OpenBLAS core name for this CPU, or NULL if the current one is fine. */
const char *cli_blas_core_hint(const char *core);
const char *cli_blas_core_hint(const char *core) {
    const attn_cpu_features *c = attn__cpu();
    static const char *const avx512_cores[] = { "SkylakeX", "Cooperlake", "SapphireRapids" };
    static const char *const avx2_cores[] = { "Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids" };
    if (!core) return NULL;
    if (c->avx512f && c->avx512bw && c->avx512dq && c->avx512vl && c->os_avx512) {
        for (size_t i = 0; i < sizeof avx512_cores / sizeof *avx512_cores; i++)
            if (!strcasecmp(core, avx512_cores[i])) return NULL;
        return "SkylakeX";
    }
    if (c->avx2 && c->fma && c->os_avx) {
        for (size_t i = 0; i < sizeof avx2_cores / sizeof *avx2_cores; i++)
            if (!strcasecmp(core, avx2_cores[i])) return NULL;
        return "Haswell";
    }
    return NULL;
}

static const char *yn(int x) { return x ? "yes" : "no"; }

/* ─── the sdpa micro-kernel tables (kernels/dispatch.h), read only ──────── */
typedef void (*any_fn)(void);
#define ENTRY(f) { #f, offsetof(attn__sdpa_kernels, f) }
static const struct { const char *name; size_t off; } KERNEL_ENTRIES[] = {
    ENTRY(gemm_ab), ENTRY(gemm_atb), ENTRY(gemm_abt), ENTRY(softmax_tile), ENTRY(bwd_probs),
    ENTRY(bwd_ds), ENTRY(dot), ENTRY(row_sums), ENTRY(rows_finite), ENTRY(pack_rows),
    ENTRY(scale_rows), ENTRY(to_f32), ENTRY(from_f32), ENTRY(gemm_bf16), ENTRY(pack_p_bf16), ENTRY(pack_v_bf16),
    ENTRY(pack_qblock), ENTRY(split_ds_bf16),
};
#undef ENTRY
enum { NENTRIES = (int)(sizeof KERNEL_ENTRIES / sizeof KERNEL_ENTRIES[0]) };
/* every member after `name` is a kernel pointer, and all of them are listed above: a new entry
 * in dispatch.h stops this file compiling until it is listed here */
_Static_assert(sizeof(attn__sdpa_kernels) == offsetof(attn__sdpa_kernels, gemm_ab) + NENTRIES * sizeof(any_fn),
               "attn info: KERNEL_ENTRIES must list every entry of attn__sdpa_kernels");

static any_fn entry_of(const attn__sdpa_kernels *t, int e) {
    any_fn f;
    memcpy(&f, (const char *)t + KERNEL_ENTRIES[e].off, sizeof f);
    return f;
}

/* Per ISA up to the detected one: how many entries are its own, and where each other one comes
 * from (the lowest table holding the same kernel: "C" for the portable one, else that ISA). */
static void print_sdpa_tables(void) {
    const attn_isa top = attn_isa_detected();
    printf("sdpa tables %d entries each; generic: portable C\n", NENTRIES);
    for (int i = ATTN_ISA_GENERIC + 1; i <= (int)top; i++) {
        const attn__sdpa_kernels *t = attn__sdpa_kernels_for((attn_isa)i);
        if (!t) continue;
        char borrowed[512] = "", lacks[128] = "";
        int own = 0;
        for (int e = 0; e < NENTRIES; e++) {
            if (!entry_of(t, e)) { /* an optional entry this ISA (or CPU) lacks */
                size_t l = strlen(lacks);
                snprintf(lacks + l, sizeof lacks - l, "%s%s", l ? ", " : "", KERNEL_ENTRIES[e].name);
                continue;
            }
            int from = -1;
            for (int j = ATTN_ISA_GENERIC; j < i && from < 0; j++) {
                const attn__sdpa_kernels *u = attn__sdpa_kernels_for((attn_isa)j);
                if (u && entry_of(u, e) == entry_of(t, e)) from = j;
            }
            if (from < 0) { own++; continue; }
            size_t l = strlen(borrowed);
            snprintf(borrowed + l, sizeof borrowed - l, "%s%s from %s", l ? ", " : "", KERNEL_ENTRIES[e].name,
                     from == ATTN_ISA_GENERIC ? "C" : attn_isa_name((attn_isa)from));
        }
        printf("           %s: %d/%d micro-kernels its own%s%s%s%s\n", attn_isa_name((attn_isa)i), own, NENTRIES,
               borrowed[0] ? "; borrows " : "", borrowed, lacks[0] ? "; lacks " : "", lacks);
    }
    const attn__sdpa_blocks *b = &attn__sdpa_kernels_get()->blk;
    printf("blocks     (%s) fwd %d rows x %d keys, bwd %d rows x %d keys x %d tiles, paged %d rows x %d keys,"
           " edge tiles in %d-key chunks\n",
           attn__sdpa_kernels_get()->name, b->mrows_fwd, b->bc, b->mrows_bwd, b->bc, b->bwd_tiles, b->paged_mrows,
           b->paged_bc, b->edge_keys);
}

int cmd_info(int argc, char **argv) {
    const char *sub = "info";
    int help = 0;
    if (args_parse(sub, argc, argv, NULL, 0, &help)) return 1;
    if (help) {
        args_print_help(sub, "", "Prints the version, CPU features, the kernel ISA chosen (override: ATTN_ISA=generic|avx2|avx512),\nthe thread count (ATTN_NUM_THREADS) and the BLAS library in use.", NULL, 0);
        return 0;
    }
    const attn_cpu_features *c = attn__cpu();
    const char *isa_env = getenv("ATTN_ISA"), *thr_env = getenv("ATTN_NUM_THREADS");
    const char *core_env = getenv("OPENBLAS_CORETYPE");
    printf("attn %s (libattn %s, %d)\n", ATTN_VERSION_STRING, attn_version(), attn_version_number());
    printf("cpu        %s\n", c->brand[0] ? c->brand : "(unknown)");
    printf("features   sse2 %s, avx %s, avx2 %s, fma %s, f16c %s, os-avx %s\n", yn(c->sse2), yn(c->avx),
           yn(c->avx2), yn(c->fma), yn(c->f16c), yn(c->os_avx));
    printf("           avx512f %s, avx512bw %s, avx512dq %s, avx512vl %s, os-avx512 %s, avx512bf16 %s, avx512vnni %s\n",
           yn(c->avx512f), yn(c->avx512bw), yn(c->avx512dq), yn(c->avx512vl), yn(c->os_avx512),
           yn(c->avx512bf16), yn(c->avx512vnni));
    printf("kernel isa detected %s, active %s (ATTN_ISA %s%s%s)\n", attn_isa_name(attn_isa_detected()),
           attn_isa_name(attn_isa_active()), isa_env ? "=" : "unset", isa_env ? isa_env : "",
           isa_env && attn_isa_active() != attn_isa_detected() ? ", capped" : "");
    print_sdpa_tables();
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    printf("threads    %d (ATTN_NUM_THREADS %s%s; %ld online CPUs)\n", attn_get_num_threads(),
           thr_env ? "=" : "unset", thr_env ? thr_env : "", online);
    printf("blas       %s\n", peer_blas_config());
    const char *core = peer_blas_core();
    const char *hint = cli_blas_core_hint(core);
    printf("blas core  %s (OPENBLAS_CORETYPE%s%s)", core, core_env ? "=" : " unset", core_env ? core_env : "");
    if (hint) printf(" -- not the best for this CPU: set OPENBLAS_CORETYPE=%s\n", hint);
    else printf(", suits this CPU\n");
    return 0;
}
