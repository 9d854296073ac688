"""Estimate the compressed size of a checkpoint the way our model format
stores it: every tensor an independent zstd frame, BF16/F32 data split into
byte planes first. Uses the zstd command-line program.

  /usr/bin/python3 tools/train/size_estimate.py HF_DIR [--level 19]

Prints the raw and compressed totals, with and without the MTP module's
copies of the embedding and head (a converter may store them once).
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def zsize(buf, level):
    res = subprocess.run(["zstd", "-q", "-c", "-%d" % level, "--no-check"], input=buf,
                         stdout=subprocess.PIPE, check=True)
    return len(res.stdout)


def planes(t):
    """Tensor bytes split into byte planes (most significant byte first)."""
    import torch
    a = t.contiguous().view(-1)
    if a.dtype == torch.bfloat16:
        a = a.view(torch.int16)
    raw = np.frombuffer(a.numpy().astype(a.numpy().dtype.newbyteorder("<")).tobytes(), np.uint8)
    es = a.element_size()
    m = raw.reshape(-1, es)
    return b"".join(m[:, i].tobytes() for i in range(es - 1, -1, -1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hf_dir")
    ap.add_argument("--level", type=int, default=19)
    args = ap.parse_args()
    cfg = json.load(open(os.path.join(args.hf_dir, "config.json")))
    t = common.load_safetensors(os.path.join(args.hf_dir, "model.safetensors"))
    L = cfg["num_hidden_layers"]
    copies = {"model.layers.%d.embed_tokens.weight" % L, "model.layers.%d.shared_head.head.weight" % L}
    raw = comp = raw_c = comp_c = 0
    rows = []
    for name in sorted(t):
        b = planes(t[name])
        z = zsize(b, args.level)
        raw += len(b)
        comp += z
        if name in copies:
            raw_c += len(b)
            comp_c += z
        if len(b) > 1 << 20 or name.endswith("embed_tokens.weight"):
            rows.append((name, len(b), z))
    for name, r, z in rows:
        print("%-55s %10d -> %9d" % (name, r, z))
    extra = sum(os.path.getsize(os.path.join(args.hf_dir, f))
                for f in ("tokenizer.json", "config.json", "tokenizer_config.json"))
    tok_z = zsize(open(os.path.join(args.hf_dir, "tokenizer.json"), "rb").read(), args.level)
    print(json.dumps({
        "tensors_raw_bytes": raw, "tensors_zstd_bytes": comp,
        "without_mtp_copies_raw": raw - raw_c, "without_mtp_copies_zstd": comp - comp_c,
        "tokenizer_json_bytes": extra, "tokenizer_json_zstd": tok_z,
    }, indent=1))


if __name__ == "__main__":
    main()
