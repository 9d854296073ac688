"""DeepSeek-V3-architecture model in PyTorch for training a small demo model.

Written from the project's architecture specification:
MLA with query compression, interleaved-pair RoPE with YaRN, dense SwiGLU
layers followed by DeepSeekMoE layers (sigmoid scores, selection-only bias,
group-limited top-k, renormalised weights times the routed scale, one fused
shared expert) and one multi-token-prediction module.

Vocabulary trick. The model is trained on the ids that occur in the corpus
("used ids"); every other id of the full vocabulary shares one embedding row
and one head row u. With N_u such ids the full softmax over all rows equals a
softmax over the used rows plus one extra class whose logit is
u.h + ln(N_u); the probability of a particular unused id is that class's
probability divided by N_u. Training therefore costs only the used rows, and
the exported full-size matrices repeat one row N_u times.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------
# configuration helpers

def yarn_inv_freq(cfg):
    """Per-pair rotation frequencies theta'_i (i < d_r/2), float64."""
    d_r = cfg["qk_rope_head_dim"]
    base = float(cfg["rope_theta"])
    theta = [base ** (-2.0 * i / d_r) for i in range(d_r // 2)]
    rs = cfg.get("rope_scaling")
    if not rs or rs.get("type", rs.get("rope_type")) != "yarn":
        return torch.tensor(theta, dtype=torch.float64)
    s = float(rs["factor"])
    l0 = float(rs["original_max_position_embeddings"])
    lo_hi = yarn_range(d_r, base, l0, float(rs["beta_fast"]), float(rs["beta_slow"]))
    lo, hi = lo_hi
    out = []
    for i, th in enumerate(theta):
        r = min(max((i - lo) / (hi - lo), 0.0), 1.0)
        out.append(th * (1.0 - r) + (th / s) * r)
    return torch.tensor(out, dtype=torch.float64)


def yarn_range(d_r, base, l0, beta_fast, beta_slow):
    def dim(beta):
        return d_r * math.log(l0 / (2.0 * math.pi * beta)) / (2.0 * math.log(base))
    lo = max(math.floor(dim(beta_fast)), 0)
    hi = min(math.ceil(dim(beta_slow)), d_r - 1)
    if lo == hi:
        hi += 0.001
    return lo, hi


def yarn_m(s, a):
    return 1.0 if s <= 1.0 else 0.1 * a * math.log(s) + 1.0


def softmax_scale(cfg):
    d_q = cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]
    tau = d_q ** -0.5
    rs = cfg.get("rope_scaling")
    if rs and rs.get("type", rs.get("rope_type")) == "yarn":
        m = yarn_m(float(rs["factor"]), float(rs.get("mscale_all_dim", 0.0)))
        tau *= m * m
    return tau


def rope_cos_sin_factor(cfg):
    """HF multiplies cos/sin by m(s, mscale) / m(s, mscale_all_dim)."""
    rs = cfg.get("rope_scaling")
    if not rs or rs.get("type", rs.get("rope_type")) != "yarn":
        return 1.0
    s = float(rs["factor"])
    return yarn_m(s, float(rs.get("mscale", 1.0))) / yarn_m(s, float(rs.get("mscale_all_dim", 0.0)))


def rope_tables(cfg, n_pos):
    inv = yarn_inv_freq(cfg)
    pos = torch.arange(n_pos, dtype=torch.float64)
    ang = pos[:, None] * inv[None, :]
    f = rope_cos_sin_factor(cfg)
    return (torch.cos(ang) * f).float(), (torch.sin(ang) * f).float()


def apply_rope(x, cos, sin):
    """x [..., T, H, d_r] rotated as interleaved pairs (2i, 2i+1) by angle
    index i; cos/sin [T, d_r/2]."""
    xs = x.reshape(*x.shape[:-1], -1, 2)
    x0, x1 = xs[..., 0], xs[..., 1]
    c = cos[:, None, :]
    s = sin[:, None, :]
    y0 = x0 * c - x1 * s
    y1 = x0 * s + x1 * c
    return torch.stack((y0, y1), dim=-1).reshape(x.shape)


# --------------------------------------------------------------------------
# building blocks

class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def linear(n_in, n_out):
    return nn.Linear(n_in, n_out, bias=False)


class MLA(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["hidden_size"]
        self.n_h = cfg["num_attention_heads"]
        self.d_n = cfg["qk_nope_head_dim"]
        self.d_r = cfg["qk_rope_head_dim"]
        self.d_v = cfg["v_head_dim"]
        self.r_kv = cfg["kv_lora_rank"]
        self.r_q = cfg.get("q_lora_rank") or 0
        d_q = self.d_n + self.d_r
        eps = cfg["rms_norm_eps"]
        if self.r_q:
            self.q_a_proj = linear(d, self.r_q)
            self.q_a_layernorm = RMSNorm(self.r_q, eps)
            self.q_b_proj = linear(self.r_q, self.n_h * d_q)
        else:
            self.q_proj = linear(d, self.n_h * d_q)
        self.kv_a_proj_with_mqa = linear(d, self.r_kv + self.d_r)
        self.kv_a_layernorm = RMSNorm(self.r_kv, eps)
        self.kv_b_proj = linear(self.r_kv, self.n_h * (self.d_n + self.d_v))
        self.o_proj = linear(self.n_h * self.d_v, d)
        self.tau = softmax_scale(cfg)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        if self.r_q:
            q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x)))
        else:
            q = self.q_proj(x)
        q = q.view(B, T, self.n_h, self.d_n + self.d_r)
        q_n, q_r = q.split([self.d_n, self.d_r], dim=-1)
        q_r = apply_rope(q_r, cos, sin)
        kv = self.kv_a_proj_with_mqa(x)
        c, k_r = kv.split([self.r_kv, self.d_r], dim=-1)
        c = self.kv_a_layernorm(c)
        k_r = apply_rope(k_r.view(B, T, 1, self.d_r), cos, sin)
        kvb = self.kv_b_proj(c).view(B, T, self.n_h, self.d_n + self.d_v)
        k_n, v = kvb.split([self.d_n, self.d_v], dim=-1)
        # score = tau * (q_n . k_n + q_r . k_r); k_r is one vector shared by all heads
        s_n = torch.matmul(q_n.transpose(1, 2), k_n.permute(0, 2, 3, 1))         # B H T T
        q_r = q_r.transpose(1, 2).reshape(B, self.n_h * T, self.d_r)
        s_r = torch.bmm(q_r, k_r.view(B, T, self.d_r).transpose(1, 2)).view(B, self.n_h, T, T)
        scores = (s_n + s_r) * self.tau + mask
        p = torch.softmax(scores.float(), dim=-1)
        o = torch.matmul(p, v.transpose(1, 2))                                   # B H T dv
        return self.o_proj(o.transpose(1, 2).reshape(B, T, self.n_h * self.d_v))


class MLP(nn.Module):
    def __init__(self, d, f):
        super().__init__()
        self.gate_proj = linear(d, f)
        self.up_proj = linear(d, f)
        self.down_proj = linear(f, d)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Gate(nn.Module):
    """Router: weight [E, d]; e_score_correction_bias [E] (F32, selection only,
    updated outside the optimiser)."""

    def __init__(self, cfg):
        super().__init__()
        E = cfg["n_routed_experts"]
        d = cfg["hidden_size"]
        self.weight = nn.Parameter(torch.zeros(E, d))
        self.register_buffer("e_score_correction_bias", torch.zeros(E))
        self.E = E
        self.k = cfg["num_experts_per_tok"]
        self.G = cfg["n_group"]
        self.G_k = cfg["topk_group"]
        self.rho = cfg["routed_scaling_factor"]
        self.renorm = bool(cfg["norm_topk_prob"])

    def forward(self, x):
        """x [N, d] -> (indices [N, k], weights [N, k])."""
        s = torch.sigmoid(F.linear(x.float(), self.weight.float()))
        with torch.no_grad():
            sel = s + self.e_score_correction_bias
            if self.G > 1:
                g = sel.view(-1, self.G, self.E // self.G)
                gscore = g.topk(2, dim=-1).values.sum(-1)                       # N G
                keep = gscore.topk(self.G_k, dim=-1).indices
                gmask = torch.ones_like(gscore, dtype=torch.bool).scatter_(1, keep, False)
                sel = sel.masked_fill(gmask.repeat_interleave(self.E // self.G, dim=1), float("-inf"))
            idx = sel.topk(self.k, dim=-1).indices
        w = s.gather(1, idx)
        if self.renorm and self.k > 1:
            w = w / w.sum(-1, keepdim=True)
        return idx, w * self.rho


class MoE(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["hidden_size"]
        f = cfg["moe_intermediate_size"]
        E = cfg["n_routed_experts"]
        self.gate = Gate(cfg)
        self.experts = nn.ModuleList([MLP(d, f) for _ in range(E)])
        self.shared_experts = MLP(d, f * cfg["n_shared_experts"])
        self.E = E
        self.last_counts = None   # selected-expert counts of the last forward

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        idx, w = self.gate(x)
        k = idx.shape[1]
        flat_idx = idx.reshape(-1)
        counts = torch.bincount(flat_idx, minlength=self.E)
        self.last_counts = counts
        order = torch.argsort(flat_idx)
        token = order // k                    # token of each sorted assignment
        w_sorted = w.reshape(-1)[order]
        out = self.shared_experts(x)
        start = 0
        for e, n in enumerate(counts.tolist()):
            if n == 0:
                continue
            rows = token[start:start + n]
            ye = self.experts[e](x.index_select(0, rows)) * w_sorted[start:start + n, None]
            out = out.index_add(0, rows, ye)
            start += n
        return out.reshape(shape)


class Block(nn.Module):
    def __init__(self, cfg, moe):
        super().__init__()
        d = cfg["hidden_size"]
        eps = cfg["rms_norm_eps"]
        self.input_layernorm = RMSNorm(d, eps)
        self.self_attn = MLA(cfg)
        self.post_attention_layernorm = RMSNorm(d, eps)
        self.mlp = MoE(cfg) if moe else MLP(d, cfg["intermediate_size"])

    def forward(self, h, cos, sin, mask):
        a = h + self.self_attn(self.input_layernorm(h), cos, sin, mask)
        return a + self.mlp(self.post_attention_layernorm(a))


class MTPModule(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["hidden_size"]
        eps = cfg["rms_norm_eps"]
        self.enorm = RMSNorm(d, eps)
        self.hnorm = RMSNorm(d, eps)
        self.eh_proj = linear(2 * d, d)
        self.block = Block(cfg, moe=True)
        self.shared_head_norm = RMSNorm(d, eps)

    def forward(self, emb_next, h_normed, cos, sin, mask):
        u = self.eh_proj(torch.cat([self.enorm(emb_next), self.hnorm(h_normed)], dim=-1))
        return self.shared_head_norm(self.block(u, cos, sin, mask))


def is_moe_layer(cfg, l):
    return (cfg.get("n_routed_experts") is not None and l >= cfg["first_k_dense_replace"]
            and l % cfg.get("moe_layer_freq", 1) == 0)


class DSV3(nn.Module):
    """used_ids: sorted LongTensor of the vocabulary ids with their own rows.
    embed / head have n_used + 1 rows; the last one is the row shared by every
    other id of the full vocabulary (vocab_size rows in total)."""

    def __init__(self, cfg, used_ids):
        super().__init__()
        self.cfg = cfg
        d = cfg["hidden_size"]
        V = cfg["vocab_size"]
        self.register_buffer("used_ids", used_ids.long().clone())
        self.n_used = int(used_ids.numel())
        self.n_unused = V - self.n_used
        self.log_n_unused = math.log(self.n_unused)
        full_to_compact = torch.full((V,), self.n_used, dtype=torch.long)
        full_to_compact[self.used_ids] = torch.arange(self.n_used)
        self.register_buffer("full_to_compact", full_to_compact)
        self.embed = nn.Parameter(torch.zeros(self.n_used + 1, d))
        self.head = nn.Parameter(torch.zeros(self.n_used + 1, d))
        self.layers = nn.ModuleList(
            [Block(cfg, is_moe_layer(cfg, l)) for l in range(cfg["num_hidden_layers"])])
        self.norm = RMSNorm(d, cfg["rms_norm_eps"])
        self.mtp = MTPModule(cfg) if cfg.get("num_nextn_predict_layers", 0) else None
        self._rope = None

    # --- helpers
    def rope(self, T):
        if self._rope is None or self._rope[0].shape[0] < T:
            self._rope = rope_tables(self.cfg, max(T, 64))
        cos, sin = self._rope
        return cos[:T], sin[:T]

    @staticmethod
    def causal_mask(T):
        return torch.full((T, T), float("-inf")).triu(1)

    def moe_modules(self):
        mods = [b.mlp for b in self.layers if isinstance(b.mlp, MoE)]
        if self.mtp is not None:
            mods.append(self.mtp.block.mlp)
        return mods

    def compact_logits(self, h):
        """[.., n_used + 1]: used ids, then the class of all unused ids."""
        z = h @ self.head.t()
        return torch.cat([z[..., :-1], z[..., -1:] + self.log_n_unused], dim=-1)

    def id_logits(self, h):
        """[.., n_used + 1]: the logit of each used id, then the logit that
        every unused id has (without the ln(N_u) of compact_logits)."""
        return h @ self.head.t()

    def argmax_ids(self, h):
        """Greedy token ids in the full vocabulary. When the shared logit of
        the unused ids is the largest, the lowest unused id is returned."""
        j = self.id_logits(h).argmax(-1)
        ids = self.used_ids[j.clamp(max=self.n_used - 1)]
        return torch.where(j == self.n_used, torch.full_like(ids, self.lowest_unused()), ids)

    def lowest_unused(self):
        u = torch.ones(self.cfg["vocab_size"], dtype=torch.bool)
        u[self.used_ids] = False
        return int(torch.nonzero(u)[0, 0])

    # --- forward passes on full-vocabulary ids
    def main_hidden(self, ids):
        """ids [B, T] (full vocabulary ids) -> final-normed hidden [B, T, d]."""
        B, T = ids.shape
        h = F.embedding(self.full_to_compact[ids], self.embed)
        cos, sin = self.rope(T)
        mask = self.causal_mask(T)
        for blk in self.layers:
            h = blk(h, cos, sin, mask)
        return self.norm(h)

    def mtp_hidden(self, h_normed, next_ids):
        """h_normed [B, T, d] main hidden at positions 0..T-1, next_ids [B, T]
        the token at i+1 for each position i -> MTP shared_head-normed [B, T, d]."""
        T = next_ids.shape[1]
        e = F.embedding(self.full_to_compact[next_ids], self.embed)
        cos, sin = self.rope(T)
        return self.mtp(e, h_normed, cos, sin, self.causal_mask(T))

    def losses(self, ids, mtp_keep=None):
        """ids [B, T+1]: main loss on predicting ids[:, 1:], MTP loss on
        predicting ids[:, 2:] from (h_i, ids[i+1]). mtp_keep: optional bool
        mask [B, T-1] of the MTP positions whose loss is computed (the MTP
        block still runs on every position)."""
        x = ids[:, :-1]
        h = self.main_hidden(x)
        tgt = self.full_to_compact[ids[:, 1:]]
        main = F.cross_entropy(self.compact_logits(h).flatten(0, 1), tgt.flatten(), reduction="none")
        # exact full-vocabulary NLL of an unused id: class NLL + ln(N_u)
        main = main + (tgt.flatten() == self.n_used).float() * self.log_n_unused
        mtp = None
        if self.mtp is not None:
            g = self.mtp_hidden(h[:, :-1], ids[:, 1:-1])
            tgt2 = self.full_to_compact[ids[:, 2:]]
            if mtp_keep is not None:
                g, tgt2 = g[mtp_keep], tgt2[mtp_keep]
            mtp = F.cross_entropy(self.compact_logits(g).reshape(-1, self.n_used + 1),
                                  tgt2.flatten(), reduction="none")
            mtp = mtp + (tgt2.flatten() == self.n_used).float() * self.log_n_unused
        return main, mtp

    # --- initialisation
    def init_weights(self, seed):
        gen = torch.Generator().manual_seed(seed)
        n_res = 2 * (len(self.layers) + 1)
        norms = {id(m.weight) for m in self.modules() if isinstance(m, RMSNorm)}
        with torch.no_grad():
            for name, p in self.named_parameters():
                if id(p) in norms:
                    p.fill_(1.0)
                elif name in ("embed", "head"):
                    p.normal_(0.0, 0.02, generator=gen)
                elif name.endswith("mlp.gate.weight"):
                    # router: scores should depend on the token from the start
                    p.normal_(0.0, 1.0 / math.sqrt(p.shape[-1]), generator=gen)
                else:
                    fan_in = p.shape[-1]
                    std = 1.0 / math.sqrt(fan_in)
                    if name.endswith("o_proj.weight") or "down" in name:
                        std /= math.sqrt(n_res)
                    p.normal_(0.0, std, generator=gen)
            # the row shared by all unused ids: start with the mean embedding
            self.embed[-1].copy_(self.embed[:-1].mean(0))
