"""Hugging Face style checkpoint of the trained model: write it from the
training model, read it back into a model for the reference forward."""
import json
import os
import shutil

import torch

import common
import model as M


def hf_tensors(model):
    """Name -> tensor in the checkpoint's dtype (BF16; router bias F32)."""
    cfg = model.cfg
    V = cfg["vocab_size"]
    L = cfg["num_hidden_layers"]

    def full(compact):
        rows = compact[-1].expand(V, -1).clone()
        rows[model.used_ids] = compact[:-1]
        return rows

    def cast(name, t):
        t = t.detach().float()
        return t if name.endswith("e_score_correction_bias") else t.to(torch.bfloat16)

    out = {}
    emb = cast("e", full(model.embed))
    head = cast("h", full(model.head))
    out["model.embed_tokens.weight"] = emb
    out["lm_head.weight"] = head
    sd = model.state_dict()
    for k, v in sd.items():
        if k in ("embed", "head", "used_ids", "full_to_compact"):
            continue
        if k.startswith("layers."):
            name = "model." + k
        elif k == "norm.weight":
            name = "model.norm.weight"
        elif k.startswith("mtp."):
            rest = k[len("mtp."):]
            if rest.startswith("block."):
                rest = rest[len("block."):]
            elif rest == "shared_head_norm.weight":
                rest = "shared_head.norm.weight"
            name = "model.layers.%d.%s" % (L, rest)
        else:
            raise KeyError(k)
        out[name] = cast(name, v)
    if model.mtp is not None:
        out["model.layers.%d.embed_tokens.weight" % L] = emb.clone()
        out["model.layers.%d.shared_head.head.weight" % L] = head.clone()
    return out


def write_checkpoint(model, out_dir, extra_readme=None):
    os.makedirs(out_dir, exist_ok=True)
    tensors = hf_tensors(model)
    common.save_safetensors(os.path.join(out_dir, "model.safetensors"), tensors,
                            metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(model.cfg, f, indent=2)
        f.write("\n")
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": common.BOS, "eos_token_id": common.EOS,
                   "do_sample": True, "temperature": 0.7}, f, indent=2)
        f.write("\n")
    for fn in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(common.TOKENIZER_DIR, fn), os.path.join(out_dir, fn))
    if extra_readme:
        with open(os.path.join(out_dir, "README.md"), "w") as f:
            f.write(extra_readme)
    return tensors


class Loaded:
    """A checkpoint read back from disk: `model` (compact DSV3 whose
    parameters are the file's values in FP32), `embed_full` / `head_full`
    (the file's full matrices in FP32) and `tensors` (as stored)."""

    def __init__(self, ckpt_dir):
        cfg = json.load(open(os.path.join(ckpt_dir, "config.json")))
        t = common.load_safetensors(os.path.join(ckpt_dir, "model.safetensors"))
        V = cfg["vocab_size"]
        L = cfg["num_hidden_layers"]
        emb = t["model.embed_tokens.weight"].float()
        head = t["lm_head.weight"].float()
        assert emb.shape[0] == V and head.shape[0] == V
        # the row shared by all ids absent from the corpus: the last (padding) id's row
        emb_unused = (emb == emb[V - 1]).all(1)
        head_unused = (head == head[V - 1]).all(1)
        used = torch.nonzero(~(emb_unused & head_unused))[:, 0]
        m = M.DSV3(cfg, used)
        with torch.no_grad():
            m.embed.copy_(torch.cat([emb[used], emb[V - 1:]]))
            m.head.copy_(torch.cat([head[used], head[V - 1:]]))
            sd = {}
            for k in m.state_dict():
                if k in ("embed", "head", "used_ids", "full_to_compact"):
                    continue
                if k.startswith("layers."):
                    name = "model." + k
                elif k == "norm.weight":
                    name = "model.norm.weight"
                else:
                    rest = k[len("mtp."):]
                    if rest.startswith("block."):
                        rest = rest[len("block."):]
                    elif rest == "shared_head_norm.weight":
                        rest = "shared_head.norm.weight"
                    name = "model.layers.%d.%s" % (L, rest)
                sd[k] = t[name].float()
            missing = m.load_state_dict(sd, strict=False)
            assert not [k for k in missing.missing_keys
                        if k not in ("embed", "head", "used_ids", "full_to_compact")], missing
        if m.mtp is not None:
            for a, b in (("model.embed_tokens.weight", "model.layers.%d.embed_tokens.weight" % L),
                         ("lm_head.weight", "model.layers.%d.shared_head.head.weight" % L)):
                assert torch.equal(t[a].view(torch.int16), t[b].view(torch.int16)), b
        m.eval()
        self.cfg = cfg
        self.model = m
        self.tensors = t
        self.embed_full = emb
        self.head_full = head

    @torch.no_grad()
    def full_logits(self, h):
        """Logits over the whole vocabulary from the file's lm_head."""
        return h @ self.head_full.t()
