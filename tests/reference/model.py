#!/usr/bin/python3
"""Reference forward pass of the DeepSeek-V3 architecture in float64 (numpy).

Written from the project's spec (ARCHITECTURE.md): MLA in the naive
(decompressed keys/values) and absorbed (latent cache) forms, YaRN RoPE on
interleaved pairs, DeepSeekMoE routing (sigmoid + bias + group-limited top-k,
V2 softmax variants), dense leading layers, MTP draft module, FP8 e4m3 block
dequantization. Slow and simple on purpose: it is the ground truth for tests.
SPDX-License-Identifier: MIT
"""
import json
import math
import os
import struct

import numpy as np

# ---- checkpoint reading --------------------------------------------------------------------


def fp8_e4m3_decode(b):
    """uint8 array -> float64 values of the e4m3 "fn" encoding (spec §6.3)."""
    b = np.asarray(b, dtype=np.uint8).astype(np.int64)
    sign = np.where(b >> 7, -1.0, 1.0)
    e = (b >> 3) & 15
    m = (b & 7).astype(np.float64)
    sub = (m / 8.0) * 2.0 ** -6
    norm = (1.0 + m / 8.0) * np.exp2((e - 7).astype(np.float64))
    v = sign * np.where(e == 0, sub, norm)
    return np.where((e == 15) & (m == 7), np.nan, v)


def _decode(dtype, raw, shape):
    if dtype == 'F32':
        a = np.frombuffer(raw, dtype='<f4').astype(np.float64)
    elif dtype == 'BF16':
        bits = np.frombuffer(raw, dtype='<u2').astype(np.uint32) << np.uint32(16)
        a = bits.view(np.float32).astype(np.float64)
    elif dtype == 'F8_E4M3':
        a = fp8_e4m3_decode(np.frombuffer(raw, dtype=np.uint8))
    else:
        raise ValueError('unsupported dtype ' + dtype)
    return a.reshape(shape)


def read_safetensors(path):
    """{name: (dtype, shape, raw bytes)} of one safetensors file."""
    with open(path, 'rb') as f:
        data = f.read()
    n = struct.unpack('<Q', data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        lo, hi = info['data_offsets']
        out[name] = (info['dtype'], info['shape'], data[base + lo:base + hi])
    return out


def read_checkpoint_raw(path):
    """All tensors of a checkpoint directory (single file or index + shards)."""
    idx = os.path.join(path, 'model.safetensors.index.json')
    if os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)['weight_map'].values()))
    else:
        files = ['model.safetensors']
    out = {}
    for fn in files:
        out.update(read_safetensors(os.path.join(path, fn)))
    return out


def dequantize(raw):
    """{name: float64 array}; FP8 tensors are multiplied by their 128x128 block
    scales (`<name>_scale_inv`, F32, ceil-sized grid) and the scales dropped."""
    w = {}
    for name, (dtype, shape, data) in raw.items():
        if name.endswith('_scale_inv'):
            continue
        a = _decode(dtype, data, shape)
        if dtype == 'F8_E4M3':
            sd, ss, sdata = raw[name + '_scale_inv']
            s = _decode(sd, sdata, ss)
            rows, cols = shape
            full = np.repeat(np.repeat(s, 128, axis=0), 128, axis=1)[:rows, :cols]
            a = a * full
        w[name] = a
    return w


def load(path):
    with open(os.path.join(path, 'config.json')) as f:
        cfg = json.load(f)
    return Model(cfg, dequantize(read_checkpoint_raw(path)))


# ---- configuration and math helpers ----------------------------------------------------------


class Config:
    def __init__(self, c):
        g = c.get
        self.V = c['vocab_size']
        self.d = c['hidden_size']
        self.L = c['num_hidden_layers']
        self.K_d = g('first_k_dense_replace') or 0
        self.freq = g('moe_layer_freq') or 1
        self.D = g('num_nextn_predict_layers') or 0
        self.n_h = c['num_attention_heads']
        self.r_q = g('q_lora_rank') or 0
        self.r_kv = c['kv_lora_rank']
        self.d_n = c['qk_nope_head_dim']
        self.d_r = c['qk_rope_head_dim']
        self.d_v = c['v_head_dim']
        self.d_q = self.d_n + self.d_r
        self.E = g('n_routed_experts') or 0
        self.E_s = g('n_shared_experts') or 0
        self.k = g('num_experts_per_tok') or 0
        self.G = g('n_group') or 1
        self.G_k = g('topk_group') or 1
        self.scoring = g('scoring_func') or 'softmax'
        self.bias = g('topk_method') == 'noaux_tc'
        self.norm_topk = bool(g('norm_topk_prob'))
        self.rho = float(g('routed_scaling_factor') or 1.0)
        self.eps = float(g('rms_norm_eps') or 1e-6)
        self.theta = float(g('rope_theta') or 10000.0)
        rs = g('rope_scaling')
        kind = rs and (rs.get('type') or rs.get('rope_type'))
        self.yarn = rs if kind == 'yarn' else None
        if rs and kind != 'yarn':
            raise ValueError('rope_scaling type %r not supported' % kind)
        if self.E:
            assert self.E % self.G == 0 and self.G_k * (self.E // self.G) >= self.k
            assert not (self.bias and self.G > 1 and self.E // self.G < 2)
        assert self.d_r % 2 == 0

    def is_moe(self, l):
        if self.E == 0:
            return False
        if l >= self.L:
            return any(self.is_moe(i) for i in range(self.L))
        return l >= self.K_d and l % self.freq == 0


def yarn_m(s, a):
    return 1.0 if s <= 1 else 0.1 * a * math.log(s) + 1.0


def rope_freqs(cfg):
    """theta'_i for i = 0 .. d_r/2-1 (spec §3.4)."""
    d_r, base = cfg.d_r, cfg.theta
    i = np.arange(d_r // 2, dtype=np.float64)
    theta = base ** (-2.0 * i / d_r)
    if not cfg.yarn:
        return theta
    y = cfg.yarn
    s = float(y['factor'])
    L0 = float(y['original_max_position_embeddings'])
    bf, bs = float(y.get('beta_fast', 32)), float(y.get('beta_slow', 1))

    def dim(beta):
        return d_r * math.log(L0 / (2 * math.pi * beta)) / (2 * math.log(base))

    lo = max(math.floor(dim(bf)), 0)
    hi = min(math.ceil(dim(bs)), d_r - 1)
    if lo == hi:
        hi += 0.001
    r = np.clip((i - lo) / (hi - lo), 0.0, 1.0)
    return theta * (1.0 - r) + (theta / s) * r


def softmax_scale(cfg):
    tau = cfg.d_q ** -0.5
    if cfg.yarn:
        m = yarn_m(float(cfg.yarn['factor']), float(cfg.yarn.get('mscale_all_dim', 0.0)))
        tau *= m * m
    return tau


def rope_amp(cfg):
    """Factor on cos/sin: m(s, mscale) / m(s, mscale_all_dim) (1 when equal)."""
    if not cfg.yarn:
        return 1.0
    s = float(cfg.yarn['factor'])
    return yarn_m(s, float(cfg.yarn.get('mscale', 1.0))) / \
        yarn_m(s, float(cfg.yarn.get('mscale_all_dim', 0.0)))


def rms_norm(x, g, eps):
    return g * x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)


def silu(z):
    return z / (1.0 + np.exp(-z))


def softmax(z, axis=-1):
    m = np.max(z, axis=axis, keepdims=True)
    e = np.exp(z - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def top_indices(v, k):
    """Indices of the k largest values, largest first; ties go to the lower index."""
    return np.argsort(-v, kind='stable')[:k]


# ---- caches -------------------------------------------------------------------------------------


class LayerCache:
    """One layer's cache. absorbed: rows [c (r_kv) | k_r (d_r)];
    naive: per-head keys [n_h, d_q] and values [n_h, d_v]. Plus positions."""

    def __init__(self):
        self.pos = np.zeros(0, dtype=np.int64)
        self.rows = None
        self.k = None
        self.v = None

    @staticmethod
    def _cat(a, b):
        return b.copy() if a is None else np.concatenate([a, b], axis=0)

    def append(self, pos, rows=None, k=None, v=None):
        self.pos = np.concatenate([self.pos, pos])
        if rows is not None:
            self.rows = self._cat(self.rows, rows)
        if k is not None:
            self.k = self._cat(self.k, k)
            self.v = self._cat(self.v, v)

    def truncate(self, n):
        self.pos = self.pos[:n]
        for a in ('rows', 'k', 'v'):
            if getattr(self, a) is not None:
                setattr(self, a, getattr(self, a)[:n])


class Cache:
    def __init__(self, n_layers):
        self.layers = [LayerCache() for _ in range(n_layers)]

    @property
    def length(self):
        return len(self.layers[0].pos)

    def truncate(self, n):
        for c in self.layers:
            c.truncate(n)


# ---- the model ----------------------------------------------------------------------------------


class Model:
    def __init__(self, cfg_dict, weights):
        self.c = Config(cfg_dict)
        self.w = weights
        self.freqs = rope_freqs(self.c)
        self.tau = softmax_scale(self.c)
        self.amp = rope_amp(self.c)
        # counters: fill_sensitive = routing decisions where filling dropped
        # groups with 0 instead of -inf would select other experts
        self.stats = {}

    def W(self, name):
        return self.w[name]

    # -- RoPE: interleaved pairs (2i, 2i+1) rotated by p*theta'_i
    def rope(self, x, pos):
        """x [T, d_r] or [T, H, d_r]; pos [T] absolute positions."""
        ang = pos.astype(np.float64)[:, None] * self.freqs[None, :]  # [T, d_r/2]
        cos, sin = np.cos(ang) * self.amp, np.sin(ang) * self.amp
        if x.ndim == 3:  # [T, H, d_r]
            cos, sin = cos[:, None, :], sin[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        y = np.empty_like(x)
        y[..., 0::2] = x0 * cos - x1 * sin
        y[..., 1::2] = x0 * sin + x1 * cos
        return y

    # -- MLA
    def split_kv(self, p, kva):
        """kv_a output -> (normalised latent c, un-rotated k_r): the norm
        covers only the first kv_lora_rank values."""
        c = self.c
        return rms_norm(kva[:, :c.r_kv], self.W(p + 'kv_a_layernorm.weight'), c.eps), \
            kva[:, c.r_kv:]

    @staticmethod
    def masked(qpos, kpos):
        """[S, T] True where key position > query position (not visible)."""
        return kpos[None, :] > qpos[:, None]

    def attention(self, l, x, pos, cache, mode):
        c = self.c
        p = 'model.layers.%d.self_attn.' % l
        T = x.shape[0]
        if c.r_q:
            cq = rms_norm(x @ self.W(p + 'q_a_proj.weight').T, self.W(p + 'q_a_layernorm.weight'),
                          c.eps)
            q = cq @ self.W(p + 'q_b_proj.weight').T
        else:
            q = x @ self.W(p + 'q_proj.weight').T
        q = q.reshape(T, c.n_h, c.d_q)
        q_n, q_r = q[..., :c.d_n], self.rope(q[..., c.d_n:], pos)
        kva = x @ self.W(p + 'kv_a_proj_with_mqa.weight').T
        lat, k_r = self.split_kv(p, kva)
        k_r = self.rope(k_r, pos)
        wkvb = self.W(p + 'kv_b_proj.weight').reshape(c.n_h, c.d_n + c.d_v, c.r_kv)
        w_uk, w_uv = wkvb[:, :c.d_n, :], wkvb[:, c.d_n:, :]
        if mode == 'naive':
            k_n = np.einsum('hjr,tr->thj', w_uk, lat)
            v = np.einsum('hjr,tr->thj', w_uv, lat)
            k = np.concatenate([k_n, np.broadcast_to(k_r[:, None, :], (T, c.n_h, c.d_r))], axis=2)
            cache.append(pos, k=k, v=v)
            qf = np.concatenate([q_n, q_r], axis=2)  # [T, H, d_q]
            scores = self.tau * np.einsum('shj,thj->hst', qf, cache.k)
        else:
            cache.append(pos, rows=np.concatenate([lat, k_r], axis=1))
            c_all, kr_all = cache.rows[:, :c.r_kv], cache.rows[:, c.r_kv:]
            q_hat = np.einsum('hjr,shj->shr', w_uk, q_n)  # [T, H, r_kv]
            scores = self.tau * (np.einsum('shr,tr->hst', q_hat, c_all)
                                 + np.einsum('shj,tj->hst', q_r, kr_all))
        scores = np.where(self.masked(pos, cache.pos)[None, :, :], -np.inf, scores)
        P = softmax(scores, axis=2)  # [H, S, T]
        if mode == 'naive':
            o = np.einsum('hst,thj->shj', P, cache.v)
        else:
            c_hat = np.einsum('hst,tr->shr', P, c_all)
            o = np.einsum('hjr,shr->shj', w_uv, c_hat)
        return o.reshape(T, c.n_h * c.d_v) @ self.W(p + 'o_proj.weight').T

    # -- FFN
    def mlp(self, prefix, x):
        g = x @ self.W(prefix + 'gate_proj.weight').T
        u = x @ self.W(prefix + 'up_proj.weight').T
        return (silu(g) * u) @ self.W(prefix + 'down_proj.weight').T

    def route(self, l, x):
        """Routing of one token (x [d]): (expert ids in selection order, weights)."""
        c = self.c
        p = 'model.layers.%d.mlp.gate.' % l
        z = self.W(p + 'weight') @ x
        s = 1.0 / (1.0 + np.exp(-z)) if c.scoring == 'sigmoid' else softmax(z)
        sel = s + self.W(p + 'e_score_correction_bias') if c.bias else s.copy()
        if c.G > 1:
            grp = sel.reshape(c.G, c.E // c.G)
            if c.bias:
                gs = np.array([np.sum(np.sort(row)[::-1][:2]) for row in grp])
            else:
                gs = grp.max(axis=1)
            keep = top_indices(gs, c.G_k)
            drop = np.ones(c.G, dtype=bool)
            drop[keep] = False
            dropped = np.repeat(drop, c.E // c.G)
            ids0 = top_indices(np.where(dropped, 0.0, sel), c.k)  # the wrong fill, for stats
            sel = np.where(dropped, -np.inf, sel)
            if set(ids0.tolist()) != set(top_indices(sel, c.k).tolist()):
                self.stats['fill_sensitive'] = self.stats.get('fill_sensitive', 0) + 1
        ids = top_indices(sel, c.k)
        w = s[ids]
        if c.norm_topk and c.k > 1:
            w = w / np.sum(w)
        return ids, w * c.rho

    def moe(self, l, x, routing):
        c = self.c
        p = 'model.layers.%d.mlp.' % l
        out = np.zeros_like(x)
        for t in range(x.shape[0]):
            ids, w = self.route(l, x[t])
            routing.append((ids, w))
            acc = np.zeros(c.d)
            for j, wj in sorted(zip(ids.tolist(), w.tolist())):
                acc += wj * self.mlp(p + 'experts.%d.' % j, x[t:t + 1])[0]
            out[t] = acc
        if c.E_s:
            out = out + self.mlp(p + 'shared_experts.', x)
        return out

    def block(self, l, h, pos, cache, mode, routing=None):
        c = self.c
        p = 'model.layers.%d.' % l
        a = h + self.attention(l, rms_norm(h, self.W(p + 'input_layernorm.weight'), c.eps), pos,
                               cache, mode)
        x = rms_norm(a, self.W(p + 'post_attention_layernorm.weight'), c.eps)
        if c.is_moe(l):
            r = []
            f = self.moe(l, x, r)
            if routing is not None:
                routing[l] = r
        else:
            f = self.mlp(p + 'mlp.', x)
        return a + f

    def new_cache(self):
        return Cache(self.c.L)

    def forward(self, tokens, cache, mode='absorbed', routing=None, hidden=None):
        """Evaluate tokens at positions cache.length ...; returns (logits [T, V],
        final-normed hidden states [T, d]). routing (dict) receives per MoE
        layer a list of (ids, weights) per token; hidden (list) the residual
        stream after the embedding and after every layer."""
        c = self.c
        tokens = np.asarray(tokens, dtype=np.int64)
        pos = cache.length + np.arange(len(tokens), dtype=np.int64)
        h = self.W('model.embed_tokens.weight')[tokens]
        if hidden is not None:
            hidden.append(h)
        for l in range(c.L):
            h = self.block(l, h, pos, cache.layers[l], mode, routing)
            if hidden is not None:
                hidden.append(h)
        hn = rms_norm(h, self.W('model.norm.weight'), c.eps)
        return hn @ self.W('lm_head.weight').T, hn

    # -- MTP (depth 1, module stored as layer L)
    def new_mtp_cache(self):
        return Cache(1)

    def mtp(self, hn, next_tokens, cache, mode='absorbed', routing=None):
        """Draft logits for entries (h_i, t_{i+1}) at positions cache.length ...;
        hn = main final-normed hidden states [T, d], next_tokens [T]."""
        c = self.c
        if c.D < 1:
            raise ValueError('model has no MTP module')
        l = c.L
        p = 'model.layers.%d.' % l
        next_tokens = np.asarray(next_tokens, dtype=np.int64)
        pos = cache.length + np.arange(len(next_tokens), dtype=np.int64)
        e = self.W(p + 'embed_tokens.weight')[next_tokens]
        cat = np.concatenate([rms_norm(e, self.W(p + 'enorm.weight'), c.eps),
                              rms_norm(hn, self.W(p + 'hnorm.weight'), c.eps)], axis=1)
        u = cat @ self.W(p + 'eh_proj.weight').T
        g = self.block(l, u, pos, cache.layers[0], mode, routing)
        gn = rms_norm(g, self.W(p + 'shared_head.norm.weight'), c.eps)
        return gn @ self.W(p + 'shared_head.head.weight').T
