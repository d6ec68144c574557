/* SPDX-License-Identifier: MIT */
/* fuzz_hfconfig.c — libFuzzer target for attn_hf_config_parse. */
#include "core/core.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_CHECK
#define FUZZ_CHECK(c) do { if (!(c)) abort(); } while (0)
#endif

static int fuzz_hf_one(const uint8_t *data, size_t size) {
    attn_mha_config c;
    memset(&c, 0x77, sizeof c);
    c.struct_size = sizeof c; /* the only field parse reads */
    attn_mha_config before = c;
    attn_status s = attn_hf_config_parse((const char *)data, size, &c);
    if (s != ATTN_OK) {
        FUZZ_CHECK(memcmp(&c, &before, sizeof c) == 0 && attn_last_error()[0] != 0);
        return 0;
    }
    FUZZ_CHECK(c.embed_dim >= 1 && c.num_heads >= 1 && c.num_kv_heads >= 1 && c.head_dim >= 1);
    FUZZ_CHECK(c.causal == 1 && c.rope == ATTN_ROPE_NEOX);
    FUZZ_CHECK(c.rope_theta > 0.0f && c.dropout >= 0.0f && c.dropout < 1.0f);
    FUZZ_CHECK(c.window_left >= -1 && c.rope_dim >= 0);
    FUZZ_CHECK(c.bias_q >= 0 && c.bias_q <= 1 && c.bias_o >= 0 && c.bias_o <= 1);
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_hf_one(data, size); }
#endif
