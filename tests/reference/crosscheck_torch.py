#!/usr/bin/python3
"""A second, independently structured reference in torch (float64) checked
against the committed vectors.

Usage: crosscheck_torch.py [CASE ...]

Differences from model.py on purpose: RoPE as complex multiplication of
(x_2i + i x_2i+1) pairs, no cache (every output row comes from one causal
pass over the whole token sequence), plain multi-head attention on
decompressed keys, torch.topk routing, FP8 decoded through a 256-entry table
built with math.ldexp, its own safetensors parsing. Exit status 1 when any
output differs from the vectors by more than 1e-6.
SPDX-License-Identifier: MIT
"""
import json
import math
import os
import shutil
import struct
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_vectors  # noqa: E402
import synth  # noqa: E402

T64 = torch.float64


def fp8_table():
    t = []
    for b in range(256):
        s = -1.0 if b & 0x80 else 1.0
        e, m = (b >> 3) & 0xF, b & 7
        if e == 15 and m == 7:
            t.append(float('nan'))
        elif e == 0:
            t.append(s * math.ldexp(m, -9))
        else:
            t.append(s * math.ldexp(8 + m, e - 10))
    return torch.tensor(t, dtype=T64)


def load_weights(path):
    files = ['model.safetensors']
    idx = os.path.join(path, 'model.safetensors.index.json')
    if os.path.exists(idx):
        files = sorted(set(json.load(open(idx))['weight_map'].values()))
    raw = {}
    for fn in files:
        blob = open(os.path.join(path, fn), 'rb').read()
        (hl,) = struct.unpack_from('<Q', blob, 0)
        for name, info in json.loads(blob[8:8 + hl].decode()).items():
            if name != '__metadata__':
                a, b = info['data_offsets']
                raw[name] = (info['dtype'], info['shape'], blob[8 + hl + a:8 + hl + b])
    table = fp8_table()
    w = {}
    for name, (dt, shape, data) in raw.items():
        if dt == 'BF16':
            x = torch.from_numpy(np.frombuffer(data, '<i2').astype(np.int32) << 16)
            t = x.view(torch.float32).to(T64)
        elif dt == 'F32':
            t = torch.from_numpy(np.frombuffer(data, '<f4').copy()).to(T64)
        elif dt == 'F8_E4M3':
            t = table[torch.from_numpy(np.frombuffer(data, np.uint8).astype(np.int64))]
        else:
            raise ValueError(dt)
        w[name] = t.reshape(shape)
    for name in [n for n in w if n.endswith('_scale_inv')]:
        base = name[:-len('_scale_inv')]
        s = w.pop(name)
        rows, cols = w[base].shape
        ri = torch.arange(rows) // 128
        ci = torch.arange(cols) // 128
        w[base] = w[base] * s[ri][:, ci]
    return w


class Net:
    def __init__(self, cfg, w):
        self.w, g = w, cfg.get
        self.d, self.L, self.H = cfg['hidden_size'], cfg['num_hidden_layers'], cfg['num_attention_heads']
        self.rq, self.rkv = g('q_lora_rank') or 0, cfg['kv_lora_rank']
        self.dn, self.dr, self.dv = cfg['qk_nope_head_dim'], cfg['qk_rope_head_dim'], cfg['v_head_dim']
        self.E, self.k = g('n_routed_experts') or 0, g('num_experts_per_tok')
        self.G, self.Gk = g('n_group') or 1, g('topk_group') or 1
        self.Kd, self.freq = g('first_k_dense_replace') or 0, g('moe_layer_freq') or 1
        self.sigmoid = g('scoring_func') == 'sigmoid'
        self.biased = g('topk_method') == 'noaux_tc'
        self.renorm = bool(g('norm_topk_prob')) and self.k > 1
        self.rho = g('routed_scaling_factor') or 1.0
        self.eps = g('rms_norm_eps')
        self.mtp_layers = g('num_nextn_predict_layers') or 0
        rs = cfg['rope_scaling']
        base, s, L0 = float(cfg['rope_theta']), float(rs['factor']), rs['original_max_position_embeddings']
        n = self.dr // 2
        inv = [base ** (-(2 * i) / self.dr) for i in range(n)]

        def corr(beta):
            return self.dr * math.log(L0 / (beta * 2 * math.pi)) / (2 * math.log(base))
        lo = max(math.floor(corr(rs['beta_fast'])), 0)
        hi = min(math.ceil(corr(rs['beta_slow'])), self.dr - 1)
        hi = hi + 0.001 if hi == lo else hi
        ramp = [min(max((i - lo) / (hi - lo), 0.0), 1.0) for i in range(n)]
        self.inv = torch.tensor([inv[i] / s * ramp[i] + inv[i] * (1 - ramp[i]) for i in range(n)],
                                dtype=T64)

        def msc(a):
            return 1.0 if s <= 1 else 1.0 + 0.1 * a * math.log(s)
        self.scale = msc(rs['mscale_all_dim']) ** 2 / math.sqrt(self.dn + self.dr)
        self.cs_amp = msc(rs['mscale']) / msc(rs['mscale_all_dim'])

    def norm(self, x, name):
        return self.w[name] * (x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps))

    def rot(self, x, n_pos):
        """x [..., S, dr] pairs rotated by position index (0..S-1)."""
        ang = torch.arange(n_pos, dtype=T64)[:, None] * self.inv[None, :]
        z = torch.polar(torch.full_like(ang, self.cs_amp), ang)
        xc = torch.view_as_complex(x.contiguous().view(*x.shape[:-1], self.dr // 2, 2))
        return torch.view_as_real(xc * z).flatten(-2)

    def attn(self, l, x):
        S, P = x.shape[0], 'model.layers.%d.self_attn.' % l
        w = self.w
        if self.rq:
            q = self.norm(x @ w[P + 'q_a_proj.weight'].t(), P + 'q_a_layernorm.weight')
            q = q @ w[P + 'q_b_proj.weight'].t()
        else:
            q = x @ w[P + 'q_proj.weight'].t()
        q = q.view(S, self.H, self.dn + self.dr).transpose(0, 1)  # [H, S, dq]
        q = torch.cat([q[..., :self.dn], self.rot(q[..., self.dn:], S)], -1)
        kv = x @ w[P + 'kv_a_proj_with_mqa.weight'].t()
        lat = self.norm(kv[:, :self.rkv], P + 'kv_a_layernorm.weight')
        kr = self.rot(kv[:, self.rkv:], S)
        kvb = (lat @ w[P + 'kv_b_proj.weight'].t()).view(S, self.H, self.dn + self.dv).transpose(0, 1)
        k = torch.cat([kvb[..., :self.dn], kr.expand(self.H, S, self.dr)], -1)
        v = kvb[..., self.dn:]
        sc = (q @ k.transpose(1, 2)) * self.scale
        sc = sc.masked_fill(torch.ones(S, S, dtype=torch.bool).triu(1), float('-inf'))
        o = torch.softmax(sc, -1) @ v  # [H, S, dv]
        return o.transpose(0, 1).reshape(S, -1) @ w[P + 'o_proj.weight'].t()

    def ffn(self, P, x):
        w = self.w
        return (torch.nn.functional.silu(x @ w[P + 'gate_proj.weight'].t())
                * (x @ w[P + 'up_proj.weight'].t())) @ w[P + 'down_proj.weight'].t()

    def moe(self, l, x):
        P = 'model.layers.%d.mlp.' % l
        logits = x @ self.w[P + 'gate.weight'].t()
        scores = logits.sigmoid() if self.sigmoid else logits.softmax(-1)
        choice = scores + self.w[P + 'gate.e_score_correction_bias'] if self.biased else scores
        if self.G > 1:
            g = choice.view(x.shape[0], self.G, -1)
            gs = g.topk(2, -1)[0].sum(-1) if self.biased else g.max(-1)[0]
            keep = torch.zeros_like(gs, dtype=torch.bool).scatter(1, gs.topk(self.Gk, -1)[1], True)
            choice = g.masked_fill(~keep[..., None], float('-inf')).flatten(1)
        idx = choice.topk(self.k, -1)[1]
        wt = scores.gather(1, idx)
        if self.renorm:
            wt = wt / wt.sum(-1, keepdim=True)
        wt = wt * self.rho
        out = self.ffn(P + 'shared_experts.', x) if P + 'shared_experts.up_proj.weight' in self.w \
            else torch.zeros_like(x)
        for t in range(x.shape[0]):
            for j in range(self.k):
                e = int(idx[t, j])
                out[t] += wt[t, j] * self.ffn(P + 'experts.%d.' % e, x[t:t + 1])[0]
        return out

    def layer(self, l, h):
        P = 'model.layers.%d.' % l
        h = h + self.attn(l, self.norm(h, P + 'input_layernorm.weight'))
        x = self.norm(h, P + 'post_attention_layernorm.weight')
        moe = self.E and (l >= self.L or (l >= self.Kd and l % self.freq == 0))
        return h + (self.moe(l, x) if moe else self.ffn(P + 'mlp.', x))

    def run(self, tokens):
        h = self.w['model.embed_tokens.weight'][torch.tensor(tokens)]
        for l in range(self.L):
            h = self.layer(l, h)
        hn = self.norm(h, 'model.norm.weight')
        return hn @ self.w['lm_head.weight'].t(), hn

    def draft(self, hn, nxt):
        P = 'model.layers.%d.' % self.L
        e = self.w[P + 'embed_tokens.weight'][torch.tensor(nxt)]
        u = torch.cat([self.norm(e, P + 'enorm.weight'), self.norm(hn, P + 'hnorm.weight')], -1)
        g = self.layer(self.L, u @ self.w[P + 'eh_proj.weight'].t())
        return self.norm(g, P + 'shared_head.norm.weight') @ self.w[P + 'shared_head.head.weight'].t()


def main(argv):
    cases = argv or list(make_vectors.CASES)
    tmp = tempfile.mkdtemp(prefix='dsv3-xc-')
    worst = 0.0
    try:
        for case in cases:
            vdir = os.path.join(HERE, 'vectors', case)
            meta = json.load(open(os.path.join(vdir, 'meta.json')))
            cfg_path = os.path.join(HERE, 'configs', meta['config'] + '.json')
            ck = os.path.join(tmp, case)
            synth.synth(cfg_path, meta['variant'], ck, meta['files_in_checkpoint'],
                        int(meta['seed'], 16))
            net = Net(json.load(open(cfg_path)), load_weights(ck))

            def vec(key):
                o = meta['outputs'][key]
                return torch.from_numpy(np.fromfile(os.path.join(vdir, o['file']), '<f4').astype(
                    np.float64)).view(o['shape'])
            errs = {}
            seq = meta['prompt'] + meta['decode_tokens']
            lg, hn = net.run(seq)
            errs['logits'] = float((lg - vec('logits')).abs().max())
            np_ = len(meta['prompt'])
            if 'mtp_draft' in meta['outputs']:
                nxt = meta['prompt'][1:] + [int(lg[np_ - 1].argmax())]
                assert nxt == meta['mtp_next_tokens']
                errs['mtp'] = float((net.draft(hn[:np_], nxt) - vec('mtp_draft')).abs().max())
            full = meta['long_prompt'] + meta['long_decode_tokens']
            lg2, _ = net.run(full)
            errs['long'] = float((lg2[len(meta['long_prompt']) - 1:] - vec('long_logits')).abs().max())
            g = list(meta['prompt'])
            for _ in range(len(meta['greedy']['tokens'])):
                g.append(int(net.run(g)[0][-1].argmax()))
            errs['greedy_same'] = g[np_:] == meta['greedy']['tokens']
            print('%-18s %s' % (case, '  '.join(
                '%s=%s' % (k, v if isinstance(v, bool) else '%.1e' % v) for k, v in errs.items())))
            worst = max([worst] + [v for v in errs.values() if not isinstance(v, bool)])
            if not errs['greedy_same']:
                worst = float('inf')
    finally:
        shutil.rmtree(tmp)
    print('largest difference %.2e' % worst)
    return 0 if worst <= 1e-6 else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
