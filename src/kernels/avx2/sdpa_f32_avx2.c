/* sdpa_f32_avx2.c — AVX2 + FMA micro-kernels of the sdpa table. */
#include "kernels/dispatch.h"

void attn__sdpa_kernels_avx2(attn__sdpa_kernels *t) { t->name = "avx2"; }
