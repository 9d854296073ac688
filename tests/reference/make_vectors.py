#!/usr/bin/python3
"""Write the reference test vectors (tests/reference/vectors/<case>/).

Usage: make_vectors.py [--out DIR] [CASE ...]      (default: every case)

For each case a synthetic checkpoint is written with synth.py into a
temporary directory, read back with model.py's own safetensors reader and
evaluated in float64. Self-checks (naive vs absorbed MLA, whole prefill vs
chunked prefill vs token-by-token decode) must agree to 1e-9 or the script
fails. See README.md for the file layout.
SPDX-License-Identifier: MIT
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model  # noqa: E402
import synth  # noqa: E402

# case name -> (config name, variant)
CASES = {
    'tiny-bf16': ('tiny', 'bf16'),
    'tiny-fp8': ('tiny', 'fp8'),
    'tiny-noq-bf16': ('tiny-noq', 'bf16'),
    'tiny-v2-bf16': ('tiny-v2', 'bf16'),
    'tiny-v2lite-bf16': ('tiny-v2lite', 'bf16'),
}
PROMPT_LEN = 12
N_DECODE = 4
N_GREEDY = 32
LONG_LEN = 200
MIN_MARGIN = 2e-3
SELF_TOL = 1e-9
FORMAT = 1


class Draw:
    """Token ids from splitmix64: 2 + r mod (V - 2)."""

    def __init__(self, seed, vocab):
        self.seed, self.vocab, self.i = seed, vocab, 0

    def take(self, n):
        r = synth.splitmix64(self.seed, n, self.i)
        self.i += n
        return [int(2 + x % (self.vocab - 2)) for x in r.tolist()]


def top2_margin(row):
    s = np.sort(row)
    return float(s[-1] - s[-2])


def check(name, a, b):
    err = float(np.max(np.abs(a - b)))
    if not err < SELF_TOL:
        raise AssertionError('%s: self-check differs by %g' % (name, err))
    return err


def f32(a):
    return np.ascontiguousarray(a, dtype='<f4')


def greedy(m, prompt, n):
    cache = m.new_cache()
    logits, _ = m.forward(prompt, cache)
    row = logits[-1]
    toks, margins = [], []
    for i in range(n):
        t = int(np.argmax(row))
        toks.append(t)
        margins.append(top2_margin(row))
        if i + 1 < n:
            row = m.forward([t], cache)[0][-1]
    return toks, margins


def run_case(m, seed, checks):
    """Everything for one prompt seed; returns (data dict, arrays dict)."""
    c = m.c
    m.stats.clear()
    dr = Draw(seed, c.V)
    prompt = [0] + dr.take(PROMPT_LEN - 1)
    dec = dr.take(N_DECODE)
    long_prompt = [0] + dr.take(LONG_LEN - 1)
    long_dec = dr.take(N_DECODE)

    toks, margins = greedy(m, prompt, N_GREEDY)
    if min(margins) < MIN_MARGIN or m.eos in toks:
        return None, None  # margins too small, or a generator would stop at EOS

    routing, hidden = {}, []
    cache = m.new_cache()
    pre, hn = m.forward(prompt, cache, routing=routing, hidden=hidden)
    kv = np.stack([cache.layers[l].rows for l in range(c.L)])
    rows = [pre] + [m.forward([t], cache)[0] for t in dec]
    logits = np.concatenate(rows)

    # self-checks: naive form, chunked prefill, one token at a time
    cn = m.new_cache()
    naive = np.concatenate([m.forward(prompt, cn, 'naive')[0]]
                           + [m.forward([t], cn, 'naive')[0] for t in dec])
    checks['naive_vs_absorbed'] = max(checks.get('naive_vs_absorbed', 0),
                                      check('naive', naive, logits))
    cc = m.new_cache()
    chunk = np.concatenate([m.forward(prompt[:5], cc)[0], m.forward(prompt[5:], cc)[0]]
                           + [m.forward(dec, cc)[0]])
    c1 = m.new_cache()
    one = np.concatenate([m.forward([t], c1)[0] for t in prompt + dec])
    checks['chunked_vs_prefill'] = max(checks.get('chunked_vs_prefill', 0),
                                       check('chunked', chunk, logits),
                                       check('one-by-one', one, logits))
    data = dict(prompt=prompt, decode_tokens=dec, greedy=toks, margins=margins)
    arrays = dict(logits=logits, hidden=np.stack(hidden), kv=kv)
    data['routing'] = {str(l): dict(experts=[r[0].tolist() for r in routing[l]],
                                    weights=[r[1].tolist() for r in routing[l]])
                       for l in sorted(routing)}

    if c.D:
        nxt = prompt[1:] + [int(np.argmax(pre[-1]))]
        mroute = {}
        mc = m.new_mtp_cache()
        draft = m.mtp(hn, nxt, mc, routing=mroute)
        mn = m.new_mtp_cache()
        dn = m.mtp(hn, nxt, mn, 'naive')
        checks['naive_vs_absorbed'] = max(checks['naive_vs_absorbed'], check('mtp naive', dn, draft))
        mi = m.new_mtp_cache()
        di = np.concatenate([m.mtp(hn[i:i + 1], nxt[i:i + 1], mi) for i in range(len(nxt))])
        checks['chunked_vs_prefill'] = max(checks['chunked_vs_prefill'], check('mtp incr', di, draft))
        arrays['mtp'] = draft
        data['mtp_next_tokens'] = nxt
        data['mtp_routing'] = dict(experts=[r[0].tolist() for r in mroute[c.L]],
                                   weights=[r[1].tolist() for r in mroute[c.L]])

    lc = m.new_cache()
    lp, _ = m.forward(long_prompt, lc)
    lrows = [lp[-1:]] + [m.forward([t], lc)[0] for t in long_dec]
    ln = m.new_cache()
    lnp, _ = m.forward(long_prompt, ln, 'naive')
    checks['naive_vs_absorbed'] = max(checks['naive_vs_absorbed'], check('long naive', lnp, lp))
    arrays['long'] = np.concatenate(lrows)
    data['long_prompt'] = long_prompt
    data['long_decode_tokens'] = long_dec
    if c.bias and c.G > 1 and not m.stats.get('fill_sensitive'):
        return None, None  # the -inf fill must make a difference somewhere
    checks['fill_sensitive_routings'] = m.stats.get('fill_sensitive', 0)
    return data, arrays


def make_case(case, out_root, tmp):
    cfg_name, variant = CASES[case]
    cfg_path = os.path.join(HERE, 'configs', cfg_name + '.json')
    ck = os.path.join(tmp, case)
    n_files = 3 if variant == 'fp8' else 1
    h, tensors = synth.synth(cfg_path, variant, ck, n_files, synth.DEFAULT_SEED)
    m = model.load(ck)
    with open(cfg_path) as f:
        m.eos = json.load(f).get('eos_token_id', 1)
    c = m.c
    base = synth.fnv1a64(('prompt:' + case).encode())
    for attempt in range(100):
        checks = {}
        data, arrays = run_case(m, base ^ attempt, checks)
        if data is not None:
            break
    else:
        raise RuntimeError('%s: no prompt with greedy margins >= %g' % (case, MIN_MARGIN))
    d = os.path.join(out_root, case)
    os.makedirs(d, exist_ok=True)
    files = {}

    def put(key, fname, a, layout):
        a = f32(a)
        a.tofile(os.path.join(d, fname))
        files[key] = dict(file=fname, shape=list(a.shape), layout=layout)

    put('logits', 'logits.bin', arrays['logits'],
        'prefill rows (one per prompt position) then one row per decode token; '
        'each row vocab_size float32 (dsv3 logits --all-positions --decode-tokens)')
    if 'mtp' in arrays:
        put('mtp_draft', 'mtp_draft.bin', arrays['mtp'],
            'MTP draft logits for prompt position i from (final-normed h_i, token i+1); '
            'last row uses mtp_next_tokens[-1], the argmax at the last position')
    put('long_logits', 'long_logits.bin', arrays['long'],
        'last prefill position of long_prompt, then one row per long_decode_tokens')
    put('hidden', 'hidden.bin', arrays['hidden'],
        '[num_hidden_layers + 1][prompt][hidden_size]: residual stream after the '
        'embedding and after each layer, prompt prefill')
    put('kv', 'kv.bin', arrays['kv'],
        '[num_hidden_layers][prompt][kv_lora_rank + qk_rope_head_dim]: absorbed cache rows '
        '(normalised latent, then rotated k_r), prompt prefill')
    meta = dict(
        format=FORMAT,
        case=case,
        config=cfg_name,
        variant=variant,
        seed='0x%016x' % synth.DEFAULT_SEED,
        files_in_checkpoint=n_files,
        weights_hash='0x%016x' % h,
        n_tensors=len(tensors),
        n_params=int(sum(int(np.prod(t['shape'])) for t, _ in tensors if t['kind'] != 'scale')),
        vocab_size=c.V,
        prompt_seed='0x%016x' % (base ^ attempt),
        prompt=data['prompt'],
        decode_tokens=data['decode_tokens'],
        greedy=dict(tokens=data['greedy'], min_margin=min(data['margins']),
                    margins=data['margins']),
        mtp_next_tokens=data.get('mtp_next_tokens'),
        long_prompt=data['long_prompt'],
        long_decode_tokens=data['long_decode_tokens'],
        routing=dict(layers=data['routing'], mtp=data.get('mtp_routing'),
                     note='per MoE layer, per prompt token: expert ids in selection order '
                          '(ties to the lower index) and final weights (after '
                          'renormalisation and routed_scaling_factor)'),
        self_checks=checks,
        tolerance=dict(logits_abs=1e-3, naive_vs_absorbed_abs=1e-4),
        outputs=files,
    )
    with open(os.path.join(d, 'meta.json'), 'w') as f:
        f.write(dump_meta(meta))
    return meta


def dump_meta(meta):
    """JSON with one top-level member per line (and one line per member of
    the nested objects), arrays kept on one line."""
    def enc(v, depth):
        if isinstance(v, dict) and depth < 2:
            ind = ' ' * (depth + 1)
            items = [ind + json.dumps(k) + ': ' + enc(x, depth + 1) for k, x in v.items()]
            return '{\n' + ',\n'.join(items) + '\n' + ' ' * depth + '}'
        return json.dumps(v, separators=(', ', ': '))
    return enc(meta, 0) + '\n'


def spec_checks():
    """Numbers stated in TINY_CONFIGS.md / ARCHITECTURE.md, checked against
    this reference's formulas and synth.py's tensor set."""
    def cfg(name):
        with open(os.path.join(HERE, 'configs', name + '.json')) as f:
            return json.load(f)

    def close(a, b, rel=1e-6):
        assert abs(a - b) <= rel * abs(b), (a, b)

    tiny = model.Config(cfg('tiny'))
    close(model.softmax_scale(tiny), 0.1871303)
    want = [1, 0.2371708, 0.05, 0.007905694, 0.0025, 0.0007905694, 0.00025, 0.00007905694]
    for a, b in zip(model.rope_freqs(tiny), want):
        close(a, b, 1e-6)
    close(model.softmax_scale(model.Config(cfg('mini'))), 0.0935652)
    close(model.softmax_scale(model.Config(cfg('lite'))), 0.1147214)
    # V3 ramp (d_r 64, L0 4096): pairs 0-10 kept, 23-31 divided by the factor
    f = model.rope_freqs(model.Config(cfg('mini')))
    th = 10000.0 ** (-2.0 * np.arange(32) / 64)
    assert np.allclose(f[:11], th[:11], rtol=0, atol=0) and np.allclose(f[23:], th[23:] / 4)
    close(f[16], th[16] * (1 - 6 / 13) + th[16] / 4 * (6 / 13), 1e-12)
    totals = {'tiny': 2482768, 'tiny-noq': 2451568, 'mini': 371522784,
              'lite': 15202645056 + 1012673088}
    for name, n in totals.items():
        got = sum(int(np.prod(t['shape'])) for t in synth.tensor_specs(cfg(name), False))
        assert got == n, (name, got, n)
    dec = model.fp8_e4m3_decode(np.arange(256, dtype=np.uint8))
    assert dec[0x7E] == 448 and dec[0x01] == 2.0 ** -9 and dec[0x08] == 2.0 ** -6
    assert dec[0x38] == 1.0 and dec[0xB8] == -1.0 and dec[0x80] == 0.0
    assert np.isnan(dec[0x7F]) and np.isnan(dec[0xFF]) and np.sum(np.isnan(dec)) == 2
    assert synth.splitmix64(0, 1)[0] == 0xE220A8397B1DCDAF
    assert synth.fnv1a64(b'a') == 0xAF63DC4C8601EC8C


def compare(case, new_root, old_root):
    """Regenerated vectors against committed ones: identical tokens, hashes
    and metadata; float outputs within 1e-6 (BLAS summation order may move
    the last float32 bit)."""
    def meta(root):
        with open(os.path.join(root, case, 'meta.json')) as f:
            return json.load(f)
    a, b = meta(new_root), meta(old_root)
    for k in a:
        if k not in ('greedy', 'routing', 'self_checks', 'outputs') and a[k] != b.get(k):
            raise AssertionError('%s: %s differs' % (case, k))
    assert a['greedy']['tokens'] == b['greedy']['tokens'], case
    assert a['outputs'] == b['outputs'], case
    for key, o in a['outputs'].items():
        x = np.fromfile(os.path.join(new_root, case, o['file']), dtype='<f4')
        y = np.fromfile(os.path.join(old_root, case, o['file']), dtype='<f4')
        err = float(np.max(np.abs(x - y)))
        if not err <= 1e-6:
            raise AssertionError('%s: %s differs by %g' % (case, o['file'], err))


def main(argv):
    ap = argparse.ArgumentParser(description='write reference test vectors')
    ap.add_argument('--out', default=os.path.join(HERE, 'vectors'))
    ap.add_argument('--check', action='store_true',
                    help='regenerate into a temporary directory and compare with --out')
    ap.add_argument('cases', nargs='*')
    a = ap.parse_args(argv)
    cases = a.cases or list(CASES)
    spec_checks()
    tmp = tempfile.mkdtemp(prefix='dsv3-ref-')
    try:
        for case in cases:
            if a.check:
                meta = make_case(case, os.path.join(tmp, 'vectors'), tmp)
                compare(case, os.path.join(tmp, 'vectors'), a.out)
            else:
                meta = make_case(case, a.out, tmp)
            print('%-18s hash %s  min greedy margin %.4g  self-checks %s' % (
                case, meta['weights_hash'], meta['greedy']['min_margin'],
                ' '.join(('%s=%d' if isinstance(v, int) else '%s=%.1e') % (k, v)
                         for k, v in meta['self_checks'].items())))
    finally:
        shutil.rmtree(tmp)
    if a.check:
        print('committed vectors reproduced')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
