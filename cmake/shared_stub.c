/* SPDX-License-Identifier: MIT */
/* shared_stub.c — libattn.so's own (empty) translation unit: its code is the whole
 * of libattn.a (CMakeLists.txt, ATTN_PRIVATE_BLAS), linked with --whole-archive. */
typedef int attn_shared_stub_unused;
