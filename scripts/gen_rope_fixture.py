#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""gen_rope_fixture.py — transformers' rotary embeddings as a fixture for the
RoPE building block (attn_rope_fwd / attn_rope_bwd; tests/test_rope_block.c).

    python3 scripts/gen_rope_fixture.py      # writes tests/fixtures/rope_block.safetensors

Needs torch, transformers, safetensors (none of them is needed to build or
test attn: the C test reads the committed file, ~25 KB). Byte-reproducible
for given torch / transformers versions (recorded in the metadata).

For each case C (default, linear, llama3, dynamic, yarn, longrope,
longrope_short), transformers' own <Model>RotaryEmbedding (Llama, or Phi-3 for
longrope) gives cos / sin at positions (B, S) and apply_rotary_pos_emb rotates
x (NEOX layout, full rotary); autograd gives the backward:
  C.x (B, S, H, D)   C.positions (B, S) float holding integers
  C.y (B, S, H, D)   C.dy (B, S, H, D) upstream gradient   C.dx = dL/dx
  C.short_factor, C.long_factor (D/2)                      longrope cases
metadata "C.<field>": the attn_rope_config fields the case sets (scaling name
in C.scaling), as strings. dynamic's positions exceed max_position_embeddings
and longrope's the original length (so the base grows / the long factors
apply); longrope_short stays below it.
"""
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import transformers as T  # noqa: E402
from transformers.models.llama import modeling_llama as ML  # noqa: E402
from transformers.models.phi3 import modeling_phi3 as MP  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import OUT, VERSIONS, write_safetensors  # noqa: E402

B, S, H, D = 2, 6, 2, 16
SHORT = [1.0, 1.1, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0]
LONG = [1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0]

# name: (rope_parameters, config kwargs, our attn_rope_config fields, max position)
CASES = [
    ("default", {"rope_type": "default", "rope_theta": 10000.0}, {}, {"theta": 10000.0}, 40),
    ("linear", {"rope_type": "linear", "factor": 2.5, "rope_theta": 10000.0}, {},
     {"theta": 10000.0, "scaling": "linear", "factor": 2.5}, 40),
    ("llama3", {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 32, "rope_theta": 500000.0}, {},
     {"theta": 500000.0, "scaling": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
      "high_freq_factor": 4.0, "original_max_pos": 32}, 40),
    ("dynamic", {"rope_type": "dynamic", "factor": 3.0, "rope_theta": 10000.0},
     {"max_position_embeddings": 8},
     {"theta": 10000.0, "scaling": "dynamic", "factor": 3.0, "max_pos": 8}, 30),
    ("yarn", {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16,
              "beta_fast": 8.0, "beta_slow": 1.0, "rope_theta": 10000.0},
     {"max_position_embeddings": 64},
     {"theta": 10000.0, "scaling": "yarn", "factor": 4.0, "original_max_pos": 16, "beta_fast": 8.0,
      "beta_slow": 1.0}, 40),
    ("longrope", {"rope_type": "longrope", "short_factor": SHORT, "long_factor": LONG,
                  "original_max_position_embeddings": 8, "rope_theta": 10000.0},
     {"max_position_embeddings": 32, "original_max_position_embeddings": 8},
     {"theta": 10000.0, "scaling": "longrope", "factor": 4.0, "original_max_pos": 8}, 30),
    ("longrope_short", {"rope_type": "longrope", "short_factor": SHORT, "long_factor": LONG,
                        "original_max_position_embeddings": 8, "rope_theta": 10000.0},
     {"max_position_embeddings": 32, "original_max_position_embeddings": 8},
     {"theta": 10000.0, "scaling": "longrope", "factor": 4.0, "original_max_pos": 8}, 7),
]


def rotary(name, rp, kw):
    common = dict(hidden_size=H * D, num_attention_heads=H, num_key_value_heads=H, head_dim=D,
                  rope_parameters=rp, **kw)
    if rp["rope_type"] == "longrope":
        cfg = T.Phi3Config(**{k: v for k, v in common.items() if k != "head_dim"})
        return MP.Phi3RotaryEmbedding(cfg), MP.apply_rotary_pos_emb
    return ML.LlamaRotaryEmbedding(T.LlamaConfig(**common)), ML.apply_rotary_pos_emb


def main():
    tensors, md = {}, dict(VERSIONS)
    for k, (name, rp, kw, ours, maxp) in enumerate(CASES):
        g = torch.Generator().manual_seed(7000 + k)
        x = torch.randn(B, S, H, D, generator=g) * 2
        pos = torch.randint(0, maxp + 1, (B, S), generator=g)
        pos[0, 0] = maxp  # the call's largest position is maxp
        dy = torch.randn(B, S, H, D, generator=g)
        rot, apply = rotary(name, rp, kw)
        xr = x.clone().requires_grad_(True)
        xt = xr.transpose(1, 2)  # (B, H, S, D)
        cos, sin = rot(xt, pos)
        y, _ = apply(xt, xt.detach(), cos, sin)
        y = y.transpose(1, 2)
        y.backward(dy)
        tensors.update({name + ".x": x, name + ".positions": pos.float(), name + ".y": y.detach(),
                        name + ".dy": dy, name + ".dx": xr.grad})
        if rp["rope_type"] == "longrope":
            tensors[name + ".short_factor"] = torch.tensor(SHORT)
            tensors[name + ".long_factor"] = torch.tensor(LONG)
        for f, v in ours.items():
            md[name + "." + f] = repr(v) if isinstance(v, float) else str(v)
    md["cases"] = ",".join(c[0] for c in CASES)
    md["shape"] = "%d,%d,%d,%d" % (B, S, H, D)
    path = os.path.join(OUT, "rope_block.safetensors")
    write_safetensors(path, tensors, md)
    print("wrote %s (%d bytes), torch %s, transformers %s"
          % (os.path.relpath(path), os.path.getsize(path), torch.__version__, T.__version__))


if __name__ == "__main__":
    main()
