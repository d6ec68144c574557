/* SPDX-License-Identifier: MIT */
/* fuzz_hfconfig.c — libFuzzer target for attn_hf_config_parse / attn_hf_config_parse_ex. */
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
    FUZZ_CHECK((c.causal == 0 || c.causal == 1) && (c.rope == ATTN_ROPE_NEOX || c.rope == ATTN_ROPE_NONE));
    FUZZ_CHECK((c.rope == ATTN_ROPE_NONE || c.rope_theta > 0.0f) && c.dropout >= 0.0f && c.dropout < 1.0f);
    FUZZ_CHECK(c.window_left >= -1 && c.rope_dim >= 0 && c.scale >= 0.0f && c.softcap >= 0.0f);
    FUZZ_CHECK(c.bias_q >= 0 && c.bias_q <= 1 && c.bias_o >= 0 && c.bias_o <= 1);
    FUZZ_CHECK(c.rope_scaling >= ATTN_ROPE_SCALING_NONE && c.rope_scaling <= ATTN_ROPE_SCALING_LONGROPE);
    /* a chosen layer (and the unknown-key override) read the same document: sizes agree */
    attn_hf_opts o;
    attn_hf_opts_init(&o);
    o.layer = (int64_t)(size % 3);
    o.allow_unknown_keys = (int)(size & 1);
    attn_mha_config d;
    attn_mha_config_init(&d);
    attn_hf_info info;
    if (attn_hf_config_parse_ex((const char *)data, size, &o, &d, &info) == ATTN_OK) {
        FUZZ_CHECK(d.embed_dim == c.embed_dim && d.num_heads == c.num_heads && d.head_dim == c.head_dim);
        FUZZ_CHECK(info.layer == o.layer && info.model_type[0] && info.prefix[0]);
        FUZZ_CHECK(info.naming >= 0 && info.naming < ATTN_NAMING_COUNT);
    }
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_hf_one(data, size); }
#endif
