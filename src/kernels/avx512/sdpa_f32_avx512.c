/* sdpa_f32_avx512.c — AVX-512 micro-kernels of the sdpa table. */
#include "kernels/dispatch.h"

void attn__sdpa_kernels_avx512(attn__sdpa_kernels *t) { t->name = "avx512"; }
