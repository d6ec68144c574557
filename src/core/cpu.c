/* SPDX-License-Identifier: MIT */
/* cpu.c — CPU feature detection (CPUID + XGETBV) and the active ISA.
 * Detected once; ATTN_ISA=generic|avx2|avx512 caps the choice. */
#include "core/core.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

static attn_cpu_features g_cpu;
static attn_isa g_detected = ATTN_ISA_GENERIC;
static attn_isa g_active = ATTN_ISA_GENERIC;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void detect(void) {
    memset(&g_cpu, 0, sizeof g_cpu);
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    unsigned max = __get_cpuid_max(0, NULL);
    if (max >= 1) {
        __cpuid(1, a, b, c, d);
        g_cpu.sse2 = (d >> 26) & 1;
        g_cpu.fma = (c >> 12) & 1;
        g_cpu.avx = (c >> 28) & 1;
        g_cpu.f16c = (c >> 29) & 1;
        int osxsave = (c >> 27) & 1;
        if (osxsave) {
            uint64_t xcr0 = xgetbv0();
            g_cpu.os_avx = (xcr0 & 0x6) == 0x6;          /* XMM + YMM state */
            g_cpu.os_avx512 = (xcr0 & 0xe6) == 0xe6;     /* + opmask, ZMM_Hi256, Hi16_ZMM */
        }
    }
    if (max >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        g_cpu.avx2 = (b >> 5) & 1;
        g_cpu.avx512f = (b >> 16) & 1;
        g_cpu.avx512dq = (b >> 17) & 1;
        g_cpu.avx512bw = (b >> 30) & 1;
        g_cpu.avx512vl = (b >> 31) & 1;
        g_cpu.avx512vnni = (c >> 11) & 1;
        __cpuid_count(7, 1, a, b, c, d);
        g_cpu.avx512bf16 = (a >> 5) & 1;
    }
    unsigned ext = __get_cpuid_max(0x80000000u, NULL);
    if (ext >= 0x80000004u) {
        unsigned *w = (unsigned *)g_cpu.brand;
        for (unsigned i = 0; i < 3; i++) __cpuid(0x80000002u + i, w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]);
        g_cpu.brand[48] = 0;
    }
    if (g_cpu.avx2 && g_cpu.fma && g_cpu.os_avx) g_detected = ATTN_ISA_AVX2;
    if (g_detected == ATTN_ISA_AVX2 && g_cpu.avx512f && g_cpu.avx512bw && g_cpu.avx512dq && g_cpu.avx512vl &&
        g_cpu.os_avx512)
        g_detected = ATTN_ISA_AVX512;
#endif
    g_active = g_detected;
    const char *env = getenv("ATTN_ISA");
    if (env && *env) {
        attn_isa want = g_detected;
        if (!strcasecmp(env, "generic")) want = ATTN_ISA_GENERIC;
        else if (!strcasecmp(env, "avx2")) want = ATTN_ISA_AVX2;
        else if (!strcasecmp(env, "avx512")) want = ATTN_ISA_AVX512;
        if (want < g_active) g_active = want;
    }
}

const attn_cpu_features *attn__cpu(void) {
    pthread_once(&g_once, detect);
    return &g_cpu;
}

attn_isa attn_isa_detected(void) {
    pthread_once(&g_once, detect);
    return g_detected;
}

attn_isa attn_isa_active(void) {
    pthread_once(&g_once, detect);
    return g_active;
}

attn_status attn_isa_set(attn_isa isa) {
    pthread_once(&g_once, detect);
    if ((int)isa < 0 || isa >= ATTN_ISA_COUNT)
        return attn__fail(ATTN_ERR_OPTION, "attn_isa_set: isa = %d is not an attn_isa", (int)isa);
    if (isa > g_detected)
        return attn__fail(ATTN_ERR_UNSUPPORTED, "attn_isa_set: this CPU does not support %s (best: %s)",
                          attn_isa_name(isa), attn_isa_name(g_detected));
    g_active = isa;
    return ATTN_OK;
}

const char *attn_isa_name(attn_isa isa) {
    switch (isa) {
    case ATTN_ISA_GENERIC: return "generic";
    case ATTN_ISA_AVX2: return "avx2";
    case ATTN_ISA_AVX512: return "avx512";
    default: return "unknown";
    }
}
