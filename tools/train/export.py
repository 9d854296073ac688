"""Export the trained model and the test data derived from it.

  /usr/bin/python3 tools/train/export.py [--work DIR] [--hf-out DIR] [--tests-out DIR]

1. Writes the Hugging Face style checkpoint (config.json, model.safetensors in
   BF16 with the router bias in F32, tokenizer files) to --hf-out.
2. Reads it back from disk and checks that the reloaded model gives the same
   logits as the training model with its weights rounded to BF16.
3. With the reloaded model only: held-out perplexity, probability mass on
   unused ids, MTP agreement and greedy acceptance, expert loads, samples,
   and the test vectors under --tests-out (see the README written there).
Results go to WORK/export.json.
"""
import argparse
import hashlib
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import hf  # noqa: E402
import model as M  # noqa: E402
import train  # noqa: E402

PROMPT = "once upon a time, there was a little girl named lily. she loved to"
SAMPLE_PROMPTS = ["once upon a time", "one day, a little boy named tom", "the cat and the dog"]
N_GREEDY = 48
EXTRA_UNUSED_IDS = [2, 128000, 128805, 128814, 129279]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


@torch.no_grad()
def greedy(model, ids, n, stop_at_eos=True):
    ids = list(ids)
    out = []
    for _ in range(n):
        h = model.main_hidden(torch.tensor([ids]))
        nxt = int(model.argmax_ids(h[0, -1]))
        ids.append(nxt)
        out.append(nxt)
        if stop_at_eos and nxt == common.EOS:
            break
    return out


@torch.no_grad()
def sample(model, ids, n, gen, temp=0.8, top_k=40, top_p=0.95, min_p=0.05):
    """Sampling with the steps and defaults of `dsv3 generate` (top-k, softmax
    at temperature, top-p, min-p); our own random stream, so the texts are
    not the ones libdsv3 draws with the same seed."""
    ids = list(ids)
    out = []
    for _ in range(n):
        h = model.main_hidden(torch.tensor([ids]))
        z = model.id_logits(h[0, -1])
        # every unused id has logit z[-1]; it never reaches the top 40 here
        zs, order = z[:-1].sort(descending=True)
        assert zs[top_k - 1] > z[-1]
        zs, order = zs[:top_k], order[:top_k]
        p = torch.softmax((zs - zs[0]) / temp, -1)
        keep = int((p.cumsum(0) < top_p).sum()) + 1
        p = p[:keep]
        p = p[p >= min_p * p[0]]
        j = int(torch.multinomial(p / p.sum(), 1, generator=gen))
        nxt = int(model.used_ids[order[j]])
        ids.append(nxt)
        out.append(nxt)
        if nxt == common.EOS:
            break
    return out


@torch.no_grad()
def mtp_drafts(loaded, seq):
    """For seq t_0..t_{n-1}: main logits at every position, MTP draft logits at
    every position i from (final-normed h_i, t_{i+1}); at i = n-1 the token
    is the main model's argmax there. Returns (main [n, V], draft [n, V])."""
    m = loaded.model
    ids = torch.tensor([seq])
    h = m.main_hidden(ids)
    main = loaded.full_logits(h[0])
    nxt = list(seq[1:]) + [int(main[-1].argmax())]
    g = m.mtp_hidden(h, torch.tensor([nxt]))
    return main, loaded.full_logits(g[0])


@torch.no_grad()
def mtp_acceptance(loaded, prompts, n_new):
    """Greedy continuation of each prompt; a draft at position i (from h_i and
    t_{i+1}) predicts t_{i+2}. Reports (a) every position after the prompt,
    (b) the drafts a one-token speculative loop would actually test."""
    m = loaded.model
    all_hit = all_n = spec_draft = spec_acc = 0
    per_prompt = []
    for p in prompts:
        cont = greedy(m, p, n_new, stop_at_eos=False)
        seq = list(p) + cont
        h = m.main_hidden(torch.tensor([seq]))
        main_arg = m.argmax_ids(h[0])
        g = m.mtp_hidden(h[:, :-1], torch.tensor([seq[1:]]))
        draft = m.argmax_ids(g[0])                          # draft for t_{i+2}, i = 0..len-2
        n = len(p)
        # greedy token at i+2 is main_arg[i+1]; positions i = n-1 .. len(seq)-3
        hits = [(int(draft[i]) == int(main_arg[i + 1])) for i in range(n - 1, len(seq) - 2)]
        all_hit += sum(hits)
        all_n += len(hits)
        # one-draft speculative loop: the newest emitted token sits at j
        j = n  # t_n was emitted from position n-1; draft from (h_{n-1}, t_n)
        d = a = 0
        while j + 1 < len(seq):
            d += 1
            if hits[j - n]:
                a += 1
                j += 2
            else:
                j += 1
        spec_draft += d
        spec_acc += a
        per_prompt.append({"prompt_ids": list(map(int, p)), "greedy_ids": cont,
                           "all_positions": [sum(hits), len(hits)], "spec": [a, d]})
    return {"all_positions_rate": all_hit / all_n, "all_positions": [all_hit, all_n],
            "spec_loop_rate": spec_acc / spec_draft, "spec_loop": [spec_acc, spec_draft],
            "prompts": per_prompt}


def write_test_data(loaded, out_dir, info):
    os.makedirs(out_dir, exist_ok=True)
    m = loaded.model
    prompt_ids = [common.BOS] + common.encode([PROMPT])[0]
    main, draft = mtp_drafts(loaded, prompt_ids)
    cont = greedy(m, prompt_ids, N_GREEDY, stop_at_eos=False)
    # the greedy continuation from the full-vocabulary logits must agree
    assert int(main[-1].argmax()) == cont[0]
    ids = sorted(set(int(i) for i in m.used_ids.tolist()) | set(EXTRA_UNUSED_IDS))
    sel = torch.tensor(ids)
    np.asarray(ids, dtype="<i4").tofile(os.path.join(out_dir, "logit_ids.i32"))
    main[:, sel].numpy().astype("<f4").tofile(os.path.join(out_dir, "prompt_logits.f32"))
    draft[:, sel].numpy().astype("<f4").tofile(os.path.join(out_dir, "mtp_draft_logits.f32"))
    np.asarray(prompt_ids, dtype="<i4").tofile(os.path.join(out_dir, "prompt_ids.i32"))
    np.asarray(cont, dtype="<i4").tofile(os.path.join(out_dir, "greedy_ids.i32"))
    # logits of unused ids are all equal: check and record the value per row
    unused_cols = [k for k, i in enumerate(ids) if i in EXTRA_UNUSED_IDS and i not in m.used_ids]
    meta = {
        "prompt": PROMPT,
        "prompt_ids": prompt_ids,
        "n_prompt": len(prompt_ids),
        "vocab_size": loaded.cfg["vocab_size"],
        "n_logit_ids": len(ids),
        "extra_unused_ids": EXTRA_UNUSED_IDS,
        "greedy_ids": cont,
        "greedy_text": common.decode([cont])[0],
        "prompt_argmax": [int(x) for x in main.argmax(-1)],
        "mtp_draft_argmax": [int(x) for x in draft.argmax(-1)],
        "mtp_acceptance_greedy": {k: v for k, v in info["mtp_acceptance"].items() if k != "prompts"},
        "mtp_acceptance_prompts": info["mtp_acceptance"]["prompts"],
        "model_safetensors_sha256": info["safetensors_sha256"],
        "files": {
            "logit_ids.i32": "int32 [n_logit_ids]: vocabulary ids of the stored logit columns (ascending)",
            "prompt_ids.i32": "int32 [n_prompt]",
            "prompt_logits.f32": "float32 [n_prompt][n_logit_ids]: main-model logits at every prompt position",
            "mtp_draft_logits.f32": "float32 [n_prompt][n_logit_ids]: MTP draft logits at every prompt position",
            "greedy_ids.i32": "int32 [%d]: greedy continuation of the prompt (EOS not special-cased)" % len(cont),
        },
    }
    assert unused_cols
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    return meta


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/work/artifacts/dsv3-tiny-stories-work")
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--hf-out", default="/work/artifacts/dsv3-tiny-stories-hf")
    ap.add_argument("--tests-out", default=os.path.join(common.REPO, "tests/data/tiny-stories"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-accept-prompts", type=int, default=16)
    ap.add_argument("--accept-new", type=int, default=64)
    ap.add_argument("--skip-eval", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    st = torch.load(args.ckpt or os.path.join(args.work, "ckpt.pt"))
    data = np.load(os.path.join(args.work, "data.npz"))
    trained = M.DSV3(st["config"], torch.from_numpy(data["used_ids"].astype(np.int64)))
    trained.load_state_dict(st["model"])
    trained.eval()
    info = {"step": st["step"], "train_minutes": round(st.get("elapsed", 0) / 60, 1)}

    hf.write_checkpoint(trained, args.hf_out)
    path = os.path.join(args.hf_out, "model.safetensors")
    info["safetensors_sha256"] = sha256(path)
    info["safetensors_bytes"] = os.path.getsize(path)
    loaded = hf.Loaded(args.hf_out)
    m = loaded.model
    assert torch.equal(m.used_ids, trained.used_ids)

    # round trip: the training model with BF16-rounded weights vs the reloaded one
    rounded = M.DSV3(st["config"], trained.used_ids)
    rounded.load_state_dict(st["model"])
    with torch.no_grad():
        for n, p in rounded.named_parameters():
            p.copy_(p.to(torch.bfloat16).float())
    rounded.eval()
    probe = torch.tensor([[common.BOS] + common.encode([PROMPT])[0]])
    with torch.no_grad():
        a = rounded.compact_logits(rounded.main_hidden(probe))
        b = m.compact_logits(m.main_hidden(probe))
        c = trained.compact_logits(trained.main_hidden(probe))
        full = loaded.full_logits(m.main_hidden(probe)[0])
        # full-vocabulary logits agree with the compact form
        comp = b[0, :, :-1]
        dfull = float((full[:, m.used_ids] - comp).abs().max())
        unused_col = full[:, -1]
        dunused = float((unused_col - (b[0, :, -1] - m.log_n_unused)).abs().max())
    info["roundtrip_max_abs_diff_vs_bf16_rounded"] = float((a - b).abs().max())
    info["roundtrip_max_abs_diff_vs_fp32_training"] = float((c - b).abs().max())
    info["full_vs_compact_max_abs_diff"] = max(dfull, dunused)
    print(json.dumps({k: v for k, v in info.items()}), flush=True)
    assert info["roundtrip_max_abs_diff_vs_bf16_rounded"] == 0.0

    held_starts = data["heldout_starts"]
    prompts = []
    for s in held_starts[:args.n_accept_prompts]:
        prompts.append(list(map(int, data["heldout"][s:s + 8])))   # BOS + 7 tokens
    info["mtp_acceptance"] = mtp_acceptance(loaded, prompts, args.accept_new)
    print("mtp acceptance", info["mtp_acceptance"]["all_positions_rate"],
          info["mtp_acceptance"]["spec_loop_rate"], flush=True)

    if not args.skip_eval:
        held = train.heldout_windows(data["heldout"], held_starts, st["args"]["seq"])
        info["heldout"] = train.evaluate(m, held)
        print(json.dumps(info["heldout"]), flush=True)

    gen = torch.Generator().manual_seed(7)
    samples = []
    for p in SAMPLE_PROMPTS:
        ids = [common.BOS] + common.encode([p])[0]
        g = greedy(m, ids, 200)
        s = sample(m, ids, 200, gen)
        txt = common.decode([ids[1:] + g, ids[1:] + s])
        samples.append({"prompt": p, "greedy": txt[0], "sampled": txt[1]})
    info["samples"] = samples
    info["test_data"] = write_test_data(loaded, args.tests_out, info)["files"]
    info.pop("mtp_acceptance_prompts", None)
    with open(os.path.join(args.work, "export.json"), "w") as f:
        json.dump(info, f, indent=1)
    for s in samples:
        print("\n== %s\n[greedy] %s\n[T=0.8, top-k 40, top-p 0.95, min-p 0.05] %s"
              % (s["prompt"], s["greedy"], s["sampled"]))


if __name__ == "__main__":
    main()
