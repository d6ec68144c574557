/* SPDX-License-Identifier: MIT */
/* hf_test.h — the HF config readers as the tests call them. */
#ifndef ATTN_HF_TEST_H
#define ATTN_HF_TEST_H

#include "attn.h"

/* attn_hf_config_* write only out->struct_size bytes: *out is initialised first. */
static inline attn_status hf_parse(const char *j, size_t n, attn_mha_config *c) {
    if (c) attn_mha_config_init(c);
    return attn_hf_config_parse(j, n, c);
}
static inline attn_status hf_parse_ex(const char *j, size_t n, const attn_hf_opts *o, attn_mha_config *c,
                                      attn_hf_info *info) {
    if (c) attn_mha_config_init(c);
    return attn_hf_config_parse_ex(j, n, o, c, info);
}
static inline attn_status hf_read(const char *p, attn_mha_config *c) {
    if (c) attn_mha_config_init(c);
    return attn_hf_config_read(p, c);
}
static inline attn_status hf_read_ex(const char *p, const attn_hf_opts *o, attn_mha_config *c, attn_hf_info *info) {
    if (c) attn_mha_config_init(c);
    return attn_hf_config_read_ex(p, o, c, info);
}

#endif
