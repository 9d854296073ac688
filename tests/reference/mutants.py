#!/usr/bin/python3
"""Show that the committed vectors catch typical implementation mistakes.

Usage: mutants.py [CASE ...]

Each mutant is the reference model with one deliberate mistake (a pitfall of
ARCHITECTURE.md). For every vector case it reports the largest absolute
difference from the committed vectors (logits, MTP draft, long prompt); a
mutant counts as caught when that exceeds the 1e-3 tolerance or the greedy
continuation changes. Exit status 1 if a mutant that applies to a case is not
caught by any case.
SPDX-License-Identifier: MIT
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_vectors  # noqa: E402
import model  # noqa: E402
import synth  # noqa: E402

TOL = 1e-3


def _rope_half(self, x, pos):
    ang = pos.astype(np.float64)[:, None] * self.freqs[None, :]
    cos, sin = np.cos(ang), np.sin(ang)
    if x.ndim == 3:
        cos, sin = cos[:, None, :], sin[:, None, :]
    h = x.shape[-1] // 2
    x0, x1 = x[..., :h], x[..., h:]
    return np.concatenate([x0 * cos - x1 * sin, x0 * sin + x1 * cos], axis=-1)


def _no_yarn(m):
    m.freqs = m.c.theta ** (-2.0 * np.arange(m.c.d_r // 2) / m.c.d_r)
    m.tau = m.c.d_q ** -0.5


def _tau_plain(m):
    m.tau = m.c.d_q ** -0.5


def _tau_dn(m):
    m.tau = m.tau * (m.c.d_q / m.c.d_n) ** 0.5


def _route_factory(**kw):
    """A route() with optional mistakes."""
    def route(self, l, x):
        c = self.c
        p = 'model.layers.%d.mlp.gate.' % l
        z = self.W(p + 'weight') @ x
        sig = c.scoring == 'sigmoid'
        if kw.get('swap_scoring'):
            sig = not sig
        s = 1.0 / (1.0 + np.exp(-z)) if sig else model.softmax(z)
        b = self.W(p + 'e_score_correction_bias') if c.bias else 0.0
        sel = s + b
        if c.G > 1 and not kw.get('no_groups'):
            grp = sel.reshape(c.G, c.E // c.G)
            top2 = c.bias
            if kw.get('group_other'):
                top2 = not top2
            gs = np.array([np.sum(np.sort(r)[::-1][:2]) for r in grp]) if top2 else grp.max(axis=1)
            keep = model.top_indices(gs, c.G_k)
            drop = np.ones(c.G, dtype=bool)
            drop[keep] = False
            fill = 0.0 if kw.get('zero_fill') else -np.inf
            sel = np.where(np.repeat(drop, c.E // c.G), fill, sel)
        ids = model.top_indices(sel, c.k)
        w = (s + b)[ids] if kw.get('bias_in_weights') else s[ids]
        norm = c.norm_topk and c.k > 1
        if kw.get('flip_norm'):
            norm = not norm
        if norm:
            w = w / np.sum(w)
        if not kw.get('no_rho'):
            w = w * c.rho
        return ids, w
    return route


def _attention_factory(mistake):
    base = model.Model.attention

    def attention(self, l, x, pos, cache, mode):
        w = self.w
        p = 'model.layers.%d.self_attn.' % l
        saved = {}
        c = self.c
        if mistake == 'kvb_values_first':
            n = p + 'kv_b_proj.weight'
            saved[n] = w[n]
            a = w[n].reshape(c.n_h, c.d_n + c.d_v, c.r_kv)
            w[n] = np.concatenate([a[:, c.d_n:], a[:, :c.d_n]], axis=1).reshape(w[n].shape)
        if mistake == 'q_rope_first':
            n = p + ('q_b_proj.weight' if c.r_q else 'q_proj.weight')
            saved[n] = w[n]
            a = w[n].reshape(c.n_h, c.d_q, -1)
            w[n] = np.concatenate([a[:, c.d_r:], a[:, :c.d_r]], axis=1).reshape(w[n].shape)
        if mistake == 'kva_rope_first':
            n = p + 'kv_a_proj_with_mqa.weight'
            saved[n] = w[n]
            w[n] = np.concatenate([w[n][c.d_r:], w[n][:c.d_r]], axis=0)
        try:
            return base(self, l, x, pos, cache, mode)
        finally:
            w.update(saved)
    return attention


def _split_kv_all(self, p, kva):
    # RMSNorm statistics over latent and k_r together
    c = self.c
    ms = np.sqrt(np.mean(kva * kva, axis=-1, keepdims=True) + c.eps)
    return self.W(p + 'kv_a_layernorm.weight') * kva[:, :c.r_kv] / ms, kva[:, c.r_kv:]


def _mtp_factory(mistake):
    def mtp(self, hn, next_tokens, cache, mode='absorbed', routing=None):
        c = self.c
        l = c.L
        p = 'model.layers.%d.' % l
        next_tokens = np.asarray(next_tokens, dtype=np.int64)
        pos = cache.length + np.arange(len(next_tokens), dtype=np.int64)
        e = self.W(p + 'embed_tokens.weight')[next_tokens]
        h = hn
        if mistake == 'mtp_prenorm_h':
            # un-normalised residual stream instead of the final-normed state
            h = self._last_h
        en = model.rms_norm(e, self.W(p + 'enorm.weight'), c.eps)
        hh = model.rms_norm(h, self.W(p + 'hnorm.weight'), c.eps)
        cat = np.concatenate([hh, en] if mistake == 'mtp_swap' else [en, hh], axis=1)
        u = cat @ self.W(p + 'eh_proj.weight').T
        g = self.block(l, u, pos, cache.layers[0], mode, routing)
        if mistake == 'mtp_main_norm':
            gn = model.rms_norm(g, self.W('model.norm.weight'), c.eps)
        else:
            gn = model.rms_norm(g, self.W(p + 'shared_head.norm.weight'), c.eps)
        return gn @ self.W(p + 'shared_head.head.weight').T
    return mtp


def _keep_prenorm(m):
    base = model.Model.forward

    def forward(self, tokens, cache, mode='absorbed', routing=None, hidden=None):
        hs = [] if hidden is None else hidden
        out = base(self, tokens, cache, mode, routing, hs)
        self._last_h = hs[-1]
        return out
    m.forward = forward.__get__(m)


def _fp8_normal_subnormals(m, raw):
    # decode e = 0 as if it had an implicit leading 1
    for name, (dt, shape, data) in raw.items():
        if dt == 'F8_E4M3':
            b = np.frombuffer(data, dtype=np.uint8)
            v = model.fp8_e4m3_decode(b)
            sub = ((b >> 3) & 15) == 0
            alt = np.where(b >> 7, -1.0, 1.0) * (1.0 + (b & 7) / 8.0) * 2.0 ** -7
            v = np.where(sub, alt, v).reshape(shape)
            ss = raw[name + '_scale_inv']
            s = model._decode(ss[0], ss[2], ss[1])
            full = np.repeat(np.repeat(s, 128, 0), 128, 1)[:shape[0], :shape[1]]
            m.w[name] = v * full


def _fp8_grid_stride(m, raw):
    # index the flattened scale grid with the number of block rows as the
    # stride instead of the number of block columns, a typical indexing slip
    for name, (dt, shape, data) in raw.items():
        if dt == 'F8_E4M3':
            ss = raw[name + '_scale_inv']
            s = model._decode(ss[0], ss[2], ss[1])
            v = model.fp8_e4m3_decode(np.frombuffer(data, dtype=np.uint8)).reshape(shape)
            rows, cols = shape
            i = np.arange(rows)[:, None] // 128
            j = np.arange(cols)[None, :] // 128
            flat = s.reshape(-1)
            k = (i * s.shape[0] + j) % flat.size
            m.w[name] = v * flat[k]


MUTANTS = {
    'rope_half_split': lambda m, raw: setattr(m, 'rope', _rope_half.__get__(m)),
    'yarn_off': lambda m, raw: _no_yarn(m),
    'scale_without_mscale': lambda m, raw: _tau_plain(m),
    'scale_uses_d_nope': lambda m, raw: _tau_dn(m),
    'q_rope_part_first': lambda m, raw: setattr(m, 'attention',
                                                _attention_factory('q_rope_first').__get__(m)),
    'kv_a_rope_rows_first': lambda m, raw: setattr(m, 'attention',
                                                   _attention_factory('kva_rope_first').__get__(m)),
    'kv_b_values_first': lambda m, raw: setattr(m, 'attention',
                                                _attention_factory('kvb_values_first').__get__(m)),
    'latent_norm_includes_rope': lambda m, raw: setattr(m, 'split_kv', _split_kv_all.__get__(m)),
    'no_causal_mask': lambda m, raw: setattr(m, 'masked', lambda q, k: np.zeros(
        (len(q), len(k)), dtype=bool)),
    'bias_in_weights': lambda m, raw: setattr(m, 'route',
                                              _route_factory(bias_in_weights=True).__get__(m)),
    'group_score_other': lambda m, raw: setattr(m, 'route',
                                                _route_factory(group_other=True).__get__(m)),
    'zero_fill_dropped_groups': lambda m, raw: setattr(m, 'route',
                                                       _route_factory(zero_fill=True).__get__(m)),
    'no_group_limit': lambda m, raw: setattr(m, 'route',
                                             _route_factory(no_groups=True).__get__(m)),
    'renorm_flipped': lambda m, raw: setattr(m, 'route',
                                             _route_factory(flip_norm=True).__get__(m)),
    'no_routed_scale': lambda m, raw: setattr(m, 'route', _route_factory(no_rho=True).__get__(m)),
    'scoring_swapped': lambda m, raw: setattr(m, 'route',
                                              _route_factory(swap_scoring=True).__get__(m)),
    'mtp_concat_h_first': lambda m, raw: setattr(m, 'mtp', _mtp_factory('mtp_swap').__get__(m)),
    'mtp_prenorm_hidden': lambda m, raw: (_keep_prenorm(m), setattr(
        m, 'mtp', _mtp_factory('mtp_prenorm_h').__get__(m))),
    'mtp_main_final_norm': lambda m, raw: setattr(m, 'mtp',
                                                  _mtp_factory('mtp_main_norm').__get__(m)),
    'fp8_subnormal_as_normal': _fp8_normal_subnormals,
    'fp8_scale_grid_index': _fp8_grid_stride,
}


def applies(name, m, variant):
    c = m.c
    if name.startswith('mtp') and not c.D:
        return False
    if name.startswith('fp8') and variant != 'fp8':
        return False
    if name in ('zero_fill_dropped_groups', 'no_group_limit', 'group_score_other') and c.G == 1:
        return False
    if name in ('zero_fill_dropped_groups', 'bias_in_weights') and not c.bias:
        return False  # identical behaviour without a bias (softmax scores are > 0)
    if name == 'no_routed_scale' and c.rho == 1.0:
        return False
    if name == 'kv_b_values_first' and c.d_n != c.d_v:
        return False
    if name == 'renorm_flipped' and c.k == 1:
        return False
    return True


def evaluate(m, meta, vdir):
    """Largest difference from the committed vectors and greedy agreement."""
    out = meta['outputs']

    def load(key):
        return np.fromfile(os.path.join(vdir, out[key]['file']), dtype='<f4').reshape(
            out[key]['shape']).astype(np.float64)
    cache = m.new_cache()
    pre, hn = m.forward(meta['prompt'], cache)
    err = 0.0
    if 'mtp_draft' in out:
        nxt = meta['prompt'][1:] + [int(np.argmax(pre[-1]))]
        d = m.mtp(hn, nxt, m.new_mtp_cache())
        err = max(err, float(np.max(np.abs(d - load('mtp_draft')))))
    rows = [pre] + [m.forward([t], cache)[0] for t in meta['decode_tokens']]
    err = max(err, float(np.max(np.abs(np.concatenate(rows) - load('logits')))))
    lc = m.new_cache()
    lp = m.forward(meta['long_prompt'], lc)[0][-1:]
    lrows = [lp] + [m.forward([t], lc)[0] for t in meta['long_decode_tokens']]
    err = max(err, float(np.max(np.abs(np.concatenate(lrows) - load('long_logits')))))
    toks, _ = make_vectors.greedy(m, meta['prompt'], len(meta['greedy']['tokens']))
    return err, toks == meta['greedy']['tokens']


def main(argv):
    cases = argv or list(make_vectors.CASES)
    tmp = tempfile.mkdtemp(prefix='dsv3-mut-')
    caught = {k: [] for k in MUTANTS}
    relevant = {k: [] for k in MUTANTS}
    try:
        for case in cases:
            cfg_name, variant = make_vectors.CASES[case]
            vdir = os.path.join(HERE, 'vectors', case)
            with open(os.path.join(vdir, 'meta.json')) as f:
                meta = json.load(f)
            ck = os.path.join(tmp, case)
            synth.synth(os.path.join(HERE, 'configs', cfg_name + '.json'), variant, ck,
                        meta['files_in_checkpoint'], int(meta['seed'], 16))
            raw = model.read_checkpoint_raw(ck)
            base = model.load(ck)
            err0, same0 = evaluate(base, meta, vdir)
            print('%s: reference itself: max diff %.2e, greedy %s' % (
                case, err0, 'same' if same0 else 'DIFFERENT'))
            for name, apply in MUTANTS.items():
                m = model.load(ck)
                if not applies(name, m, variant):
                    continue
                apply(m, raw)
                err, same = evaluate(m, meta, vdir)
                ok = err > TOL or not same
                relevant[name].append(case)
                if ok:
                    caught[name].append(case)
                print('  %-28s max diff %9.3e  greedy %-9s %s' % (
                    name, err, 'same' if same else 'changed', 'caught' if ok else 'MISSED'))
    finally:
        shutil.rmtree(tmp)
    bad = [k for k in MUTANTS if relevant[k] and not caught[k]]
    print('summary:')
    for k in MUTANTS:
        print('  %-28s caught by %s' % (k, ', '.join(caught[k]) or '-'))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
