"""Train the tiny DeepSeek-V3-architecture story model.

  nice -n 10 /usr/bin/python3 tools/train/train.py [--steps N] [--time-budget MIN] [options]

Reads WORK/data.npz (made by data.py), writes WORK/ckpt.pt every
--ckpt-every steps (and at the end) and appends progress to WORK/train.log.
Running the same command again resumes from WORK/ckpt.pt; the batch order is
a function of (seed, step), so a resumed run sees the same data.

Loss: next-token cross entropy of the main model plus lambda times the MTP
module's cross entropy for the token after next (lambda --mtp-lambda until
--mtp-switch of the steps, then --mtp-lambda-late). The router bias of every
MoE layer (MTP included) is updated after each step without gradients:
b_i += gamma * sign(mean_load - load_i), load = selected-expert counts.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/work/artifacts/dsv3-tiny-stories-work")
    ap.add_argument("--ckpt", default=None, help="checkpoint file (default WORK/ckpt.pt)")
    ap.add_argument("--log", default=None, help="log file (default WORK/train.log)")
    ap.add_argument("--config", default=os.path.join(HERE, "config.json"))
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=8, help="sequences per step")
    ap.add_argument("--seq", type=int, default=256, help="tokens per sequence")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--mtp-lambda", type=float, default=0.3)
    ap.add_argument("--mtp-lambda-late", type=float, default=0.1)
    ap.add_argument("--mtp-switch", type=float, default=0.7)
    ap.add_argument("--mtp-frac", type=float, default=0.5,
                    help="fraction of positions (random) whose MTP loss is computed")
    ap.add_argument("--gamma", type=float, default=3e-3, help="router bias update speed")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--eval-tokens", type=int, default=12000, help="held-out tokens for periodic eval")
    ap.add_argument("--ckpt-every", type=int, default=50)
    ap.add_argument("--final-eval-tokens", type=int, default=0, help="0: the whole held-out set")
    ap.add_argument("--time-budget", type=float, default=0,
                    help="minutes of training compute (evals excluded); when set, the schedule's "
                         "progress is max(step/steps, elapsed/budget) and training stops at 1")
    return ap.parse_args(argv)


class Batches:
    """Packed windows of seq+1 tokens. Epoch e uses offset and order drawn
    from a generator seeded with (seed, e)."""

    def __init__(self, stream, seq, batch, seed):
        self.stream = stream
        self.seq = seq
        self.batch = batch
        self.seed = seed
        self.per_epoch = (len(stream) - seq - 1) // (seq + 1) // batch
        self._epoch = None

    def _plan(self, epoch):
        if self._epoch != epoch:
            g = np.random.default_rng([self.seed, epoch])
            off = int(g.integers(0, self.seq + 1))
            n = (len(self.stream) - off) // (self.seq + 1)
            self._starts = off + (self.seq + 1) * g.permutation(n)
            self._epoch = epoch
        return self._starts

    def get(self, step):
        epoch, i = divmod(step, self.per_epoch)
        starts = self._plan(epoch)[i * self.batch:(i + 1) * self.batch]
        rows = [self.stream[s:s + self.seq + 1] for s in starts]
        return torch.from_numpy(np.stack(rows).astype(np.int64)), epoch


def heldout_windows(stream, starts, seq):
    """Each held-out story as one or more windows of <= seq+1 tokens (the
    first token of a window is context only); returns a list of LongTensors."""
    ends = list(starts[1:]) + [len(stream)]
    out = []
    for b, e in zip(starts, ends):
        story = stream[b:e]
        p = 0
        while p < len(story) - 1:
            out.append(torch.from_numpy(story[p:p + seq + 1].astype(np.int64)))
            p += seq
    return out


@torch.no_grad()
def evaluate(model, windows, max_tokens=None):
    """Held-out NLL of the main model and the MTP module (exact full-vocabulary
    values), probability mass on unused ids, teacher-forced MTP agreement with
    the main model's argmax, and expert loads."""
    model.eval()
    tot = {"nll": 0.0, "n": 0, "mtp_nll": 0.0, "mtp_n": 0, "unused_mass": 0.0,
           "mtp_agree": 0, "mtp_hit": 0}
    loads = None
    seen = 0
    for w in windows:
        ids = w[None]
        h = model.main_hidden(ids[:, :-1])
        logits = model.compact_logits(h)[0]
        logp = torch.log_softmax(logits, -1)
        tgt = model.full_to_compact[ids[0, 1:]]
        nll = -logp.gather(1, tgt[:, None])[:, 0] + (tgt == model.n_used).float() * model.log_n_unused
        tot["nll"] += float(nll.sum())
        tot["n"] += nll.numel()
        tot["unused_mass"] += float(logp[:, -1].exp().sum())
        if model.mtp is not None and ids.shape[1] > 2:
            g = model.mtp_hidden(h[:, :-1], ids[:, 1:-1])
            lg = torch.log_softmax(model.compact_logits(g)[0], -1)
            tgt2 = model.full_to_compact[ids[0, 2:]]
            n2 = -lg.gather(1, tgt2[:, None])[:, 0] + (tgt2 == model.n_used).float() * model.log_n_unused
            tot["mtp_nll"] += float(n2.sum())
            tot["mtp_n"] += n2.numel()
            draft = model.argmax_ids(g[0])
            tot["mtp_agree"] += int((draft == model.argmax_ids(h[0, 1:])).sum())
            tot["mtp_hit"] += int((draft == ids[0, 2:]).sum())
        c = torch.stack([m.last_counts for m in model.moe_modules()])
        loads = c if loads is None else loads + c
        seen += ids.shape[1] - 1
        if max_tokens and seen >= max_tokens:
            break
    model.train()
    res = {
        "loss": tot["nll"] / tot["n"], "ppl": math.exp(tot["nll"] / tot["n"]),
        "tokens": tot["n"], "unused_mass": tot["unused_mass"] / tot["n"],
    }
    if tot["mtp_n"]:
        res.update(mtp_loss=tot["mtp_nll"] / tot["mtp_n"],
                   mtp_agree=tot["mtp_agree"] / tot["mtp_n"],
                   mtp_acc=tot["mtp_hit"] / tot["mtp_n"])
    res["load_max_over_mean"] = [round(float(r.max() / r.float().mean()), 3) for r in loads]
    res["load_min_over_mean"] = [round(float(r.min() / r.float().mean()), 3) for r in loads]
    return res


def progress(args, step, elapsed):
    p = step / args.steps
    if args.time_budget:
        p = max(p, elapsed / (60.0 * args.time_budget))
    return min(p, 1.0)


def lr_at(args, step, prog):
    """Linear warm-up over --warmup steps, then cosine decay to
    min_lr_frac * lr as training progress goes from 0 to 1."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    return args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * prog)))


def build(args, used_ids):
    cfg = json.load(open(args.config))
    model = M.DSV3(cfg, torch.from_numpy(used_ids.astype(np.int64)))
    model.init_weights(args.seed)
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (decay if p.dim() >= 2 and n not in ("embed",) else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    return cfg, model, opt


def update_router_bias(model, gamma):
    for m in model.moe_modules():
        c = m.last_counts.float()
        m.gate.e_score_correction_bias += gamma * torch.sign(c.mean() - c)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    ckpt_path = args.ckpt or os.path.join(args.work, "ckpt.pt")
    log_path = args.log or os.path.join(args.work, "train.log")
    data = np.load(os.path.join(args.work, "data.npz"))
    cfg, model, opt = build(args, data["used_ids"])
    step = 0
    elapsed = 0.0
    if os.path.exists(ckpt_path):
        st = torch.load(ckpt_path)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        elapsed = st.get("elapsed", 0.0)
    log = open(log_path, "a")

    def say(obj):
        line = json.dumps(obj)
        log.write(line + "\n")
        log.flush()
        print(line, flush=True)

    n_params = sum(p.numel() for p in model.parameters())
    say({"event": "start", "step": step, "args": vars(args), "params_compact": n_params,
         "n_used": model.n_used, "threads": torch.get_num_threads()})
    batches = Batches(data["train"], args.seq, args.batch, args.seed)
    held = heldout_windows(data["heldout"], data["heldout_starts"], args.seq)

    def save():
        tmp = ckpt_path + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "elapsed": elapsed, "config": cfg, "args": vars(args)}, tmp)
        os.replace(tmp, ckpt_path)

    win = {"loss": 0.0, "mtp": 0.0, "n": 0, "t": time.time(), "tok": 0}
    while progress(args, step, elapsed) < 1.0:
        t0 = time.time()
        ids, epoch = batches.get(step)
        prog = progress(args, step, elapsed)
        lr = lr_at(args, step, prog)
        for gp in opt.param_groups:
            gp["lr"] = lr
        lam = args.mtp_lambda if prog < args.mtp_switch else args.mtp_lambda_late
        keep = None
        if args.mtp_frac < 1.0:
            g = torch.Generator().manual_seed(args.seed * 1000003 + step)
            keep = torch.rand(ids.shape[0], ids.shape[1] - 2, generator=g) < args.mtp_frac
        main_l, mtp_l = model.losses(ids, keep)
        loss = main_l.mean() + (lam * mtp_l.mean() if mtp_l is not None else 0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        with torch.no_grad():
            update_router_bias(model, args.gamma)
        step += 1
        elapsed += time.time() - t0
        win["loss"] += float(main_l.mean())
        win["mtp"] += float(mtp_l.mean()) if mtp_l is not None else 0.0
        win["n"] += 1
        win["tok"] += ids.numel() - ids.shape[0]
        done = progress(args, step, elapsed) >= 1.0
        if step % 10 == 0 or done:
            now = time.time()
            loads = [m.last_counts.float() for m in model.moe_modules()]
            say({"step": step, "epoch": epoch, "loss": round(win["loss"] / win["n"], 4),
                 "mtp_loss": round(win["mtp"] / win["n"], 4), "lr": round(lr, 6),
                 "lambda": lam, "gnorm": round(float(gn), 3), "progress": round(prog, 4),
                 "tok_s": round(win["tok"] / (now - win["t"]), 1),
                 "load_max_over_mean": [round(float(c.max() / c.mean()), 2) for c in loads],
                 "elapsed_min": round(elapsed / 60, 2)})
            win = {"loss": 0.0, "mtp": 0.0, "n": 0, "t": now, "tok": 0}
        if step % args.ckpt_every == 0:
            save()
        if step % args.eval_every == 0 and not done:
            res = evaluate(model, held, args.eval_tokens)
            res.update(event="eval", step=step)
            say(res)
    save()
    res = evaluate(model, held, args.final_eval_tokens or None)
    res.update(event="eval_full", step=step)
    say(res)
    bias = {i: [round(float(x), 4) for x in m.gate.e_score_correction_bias]
            for i, m in enumerate(model.moe_modules())}
    say({"event": "stop", "step": step, "elapsed_min": round(elapsed / 60, 2), "router_bias": bias})


if __name__ == "__main__":
    main()
