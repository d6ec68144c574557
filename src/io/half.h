/* SPDX-License-Identifier: MIT */
/* half.h — bit-exact conversions between fp32 and the 16-bit float formats
 * (IEEE binary16 "F16" and bfloat16 "BF16"), plus little-endian loads.
 *
 * Widening (16 -> 32 bit) is exact for every input: zeros keep their sign,
 * subnormals become normal fp32 values, inf stays inf, and a NaN stays a NaN
 * with its payload in the top mantissa bits.
 * Narrowing (32 -> 16 bit) rounds to nearest, ties to even; values too large
 * become +-inf, values too small become (signed) zero or a subnormal; a NaN
 * stays a NaN (quiet, top payload bits kept).
 * No dependence on the FPU rounding mode, F16C or compiler _Float16 support. */
#ifndef ATTN_IO_HALF_H
#define ATTN_IO_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint32_t attn__f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float attn__bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* binary16 -> fp32 (exact) */
static inline float attn__f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in fp32 (a normal number) */
        float mag = (float)man * 0x1p-24f;
        return attn__bits_f32(attn__f32_bits(mag) | sign);
    }
    if (exp == 31) return attn__bits_f32(sign | 0x7f800000u | (man << 13)); /* inf / nan */
    return attn__bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

/* fp32 -> binary16, round to nearest even */
static inline uint16_t attn__f32_to_f16(float f) {
    uint32_t x = attn__f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {                    /* inf or nan */
        if (ax == 0x7f800000u) return (uint16_t)(sign | 0x7c00u);
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu)); /* quiet nan, keep top payload */
    }
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520: rounds to inf */
    if (ax < 0x38800000u) {                     /* below 2^-14: f16 subnormal or zero */
        if (ax < 0x33000000u) return sign;      /* < 2^-25: rounds to zero */
        uint32_t e = ax >> 23;                  /* 102 .. 112 */
        uint32_t m = (ax & 0x7fffffu) | 0x800000u; /* 24-bit significand */
        uint32_t shift = 126u - e;              /* value = m * 2^(e-150); result unit 2^-24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);            /* q may carry into the smallest normal: correct */
    }
    /* normal range: rebias exponent, round the 13 dropped bits */
    uint32_t r = ax - 0x38000000u;              /* exponent - 112 */
    uint32_t q = r >> 13;
    uint32_t rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) q++; /* carry may reach inf: correct */
    return (uint16_t)(sign | q);
}

/* bfloat16 -> fp32 (exact) */
static inline float attn__bf16_to_f32(uint16_t b) { return attn__bits_f32((uint32_t)b << 16); }

/* fp32 -> bfloat16, round to nearest even */
static inline uint16_t attn__f32_to_bf16(float f) {
    uint32_t x = attn__f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x0040u); /* quiet nan */
    uint32_t lsb = (x >> 16) & 1u;
    return (uint16_t)((x + 0x7fffu + lsb) >> 16);
}

/* little-endian loads / stores from unaligned bytes (any host byte order) */
static inline uint16_t attn__ld_le16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t attn__ld_le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t attn__ld_le64(const unsigned char *p) {
    return (uint64_t)attn__ld_le32(p) | ((uint64_t)attn__ld_le32(p + 4) << 32);
}
static inline void attn__st_le32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}
static inline void attn__st_le64(unsigned char *p, uint64_t v) {
    attn__st_le32(p, (uint32_t)v); attn__st_le32(p + 4, (uint32_t)(v >> 32));
}

#endif
