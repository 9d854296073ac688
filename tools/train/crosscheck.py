"""Compare the exported test vectors with the project's independent float64
reference forward (tests/reference/model.py, numpy).

  /usr/bin/python3 tools/train/crosscheck.py HF_DIR [TESTS_DIR] [--reference DIR]

Checks the main logits at every prompt position and the MTP draft logits
(stored columns) and the greedy continuation's first tokens.
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hf_dir")
    ap.add_argument("tests_dir", nargs="?", default=os.path.join(REPO, "tests/data/tiny-stories"))
    ap.add_argument("--reference", default=os.path.join(REPO, "tests/reference"))
    ap.add_argument("--greedy", type=int, default=8, help="greedy tokens to re-derive")
    args = ap.parse_args()
    sys.path.insert(0, args.reference)
    import model as ref  # the reference's model.py
    meta = json.load(open(os.path.join(args.tests_dir, "meta.json")))
    n, k = meta["n_prompt"], meta["n_logit_ids"]
    cols = np.fromfile(os.path.join(args.tests_dir, "logit_ids.i32"), "<i4")
    want = np.fromfile(os.path.join(args.tests_dir, "prompt_logits.f32"), "<f4").reshape(n, k)
    want_d = np.fromfile(os.path.join(args.tests_dir, "mtp_draft_logits.f32"), "<f4").reshape(n, k)
    m = ref.load(args.hf_dir)
    ids = meta["prompt_ids"]
    logits, hn = m.forward(ids, m.new_cache(), mode="naive")
    nxt = ids[1:] + [int(np.argmax(logits[-1]))]
    draft = m.mtp(hn, nxt, m.new_mtp_cache(), mode="naive")
    d_main = float(np.abs(logits[:, cols] - want).max())
    d_mtp = float(np.abs(draft[:, cols] - want_d).max())
    # greedy continuation through the absorbed form with a KV cache
    cache = m.new_cache()
    lg, _ = m.forward(ids, cache)
    toks = []
    for _ in range(args.greedy):
        t = int(np.argmax(lg[-1]))
        toks.append(t)
        lg, _ = m.forward([t], cache)
    res = {"max_abs_diff_main": d_main, "max_abs_diff_mtp": d_mtp,
           "max_abs_logit": float(np.abs(want).max()),
           "greedy_match": toks == meta["greedy_ids"][:args.greedy]}
    print(json.dumps(res))
    ok = d_main < 1e-3 and d_mtp < 1e-3 and res["greedy_match"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
