#!/usr/bin/python3
"""Deterministic synthetic DeepSeek-style checkpoints (the recipe of README.md).

Usage: synth.py CONFIG.json {bf16|fp8} OUT_DIR [--files N] [--seed S]

Writes OUT_DIR/config.json and the weights as safetensors: BF16 (plus the F32
router bias) or FP8 e4m3 projections with F32 128x128 block scales. The bytes
are identical to those written by the C port (tests/common/synth.c,
build/tests/dsv3-synth). Prints the weights hash.
SPDX-License-Identifier: MIT
"""
import argparse
import json
import math
import os
import sys

import numpy as np

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
DEFAULT_SEED = 0
CHUNK = 1 << 22  # values generated per numpy step

PROJECTIONS = ('q_a_proj', 'q_b_proj', 'q_proj', 'kv_a_proj_with_mqa', 'kv_b_proj', 'o_proj',
               'gate_proj', 'up_proj', 'down_proj')


# ---- primitives ---------------------------------------------------------------------

def fnv1a64(data, h=FNV_OFFSET):
    """FNV-1a 64 of a bytes-like object, continuing from state h."""
    for b in bytes(data):
        h = ((h ^ b) * FNV_PRIME) & MASK64
    return h


def splitmix64(seed, n, start=0):
    """Outputs start .. start+n-1 of splitmix64 seeded with `seed` (uint64 array).

    The state after k calls is seed + k*GOLDEN (mod 2^64), so the stream is
    computed directly from the call index.
    """
    with np.errstate(over='ignore'):
        k = np.arange(start + 1, start + n + 1, dtype=np.uint64)
        z = k * np.uint64(GOLDEN) + np.uint64(seed)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
        return z ^ (z >> np.uint64(31))


def uniform(r):
    """u = (r >> 11) * 2^-53 in [0, 1), exactly."""
    return (r >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)


def f32_to_bf16_bits(x):
    """float32 array -> uint16 BF16 bits, round to nearest even (no NaN here)."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = (b + np.uint64(0x7FFF) + ((b >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)
    return b.astype(np.uint16)


def tensor_seed(name, seed):
    return fnv1a64(name.encode()) ^ seed


# ---- configuration ---------------------------------------------------------------------

class Shape:
    """The numbers of a HF config.json that decide the tensor set."""

    def __init__(self, cfg):
        g = cfg.get
        self.V = cfg['vocab_size']
        self.d = cfg['hidden_size']
        self.f_d = cfg['intermediate_size']
        self.f_m = g('moe_intermediate_size')
        self.L = cfg['num_hidden_layers']
        self.K_d = g('first_k_dense_replace') or 0
        self.freq = g('moe_layer_freq') or 1
        self.D = g('num_nextn_predict_layers') or 0
        self.n_h = cfg['num_attention_heads']
        self.r_q = g('q_lora_rank') or 0
        self.r_kv = cfg['kv_lora_rank']
        self.d_n = cfg['qk_nope_head_dim']
        self.d_r = cfg['qk_rope_head_dim']
        self.d_v = cfg['v_head_dim']
        self.E = g('n_routed_experts') or 0
        self.E_s = g('n_shared_experts') or 0
        self.G = g('n_group') or 1
        self.bias = g('topk_method') == 'noaux_tc'

    def is_moe(self, layer):
        if self.E == 0:
            return False
        if layer >= self.L:  # MTP modules: MoE when the main model has MoE layers
            return any(self.is_moe(l) for l in range(self.L))
        return layer >= self.K_d and layer % self.freq == 0


def tensor_specs(cfg, fp8):
    """All tensors of the checkpoint, sorted by name (byte-wise).

    Each entry: dict(name, dtype, shape, kind, sigma, src); kind is one of
    'linear' (float weight), 'fp8' (e4m3 bytes), 'scale' (F32 block scales of
    the fp8 tensor named by src), 'norm', 'bias', 'copy' (same bytes as src).
    """
    s = Shape(cfg)
    out = []

    def lin(name, rows, cols, sigma=None, proj=True):
        sig = 1.0 / math.sqrt(cols) if sigma is None else sigma
        if fp8 and proj:
            out.append(dict(name=name, dtype='F8_E4M3', shape=[rows, cols], kind='fp8', sigma=sig))
            sr, sc = -(-rows // 128), -(-cols // 128)
            out.append(dict(name=name + '_scale_inv', dtype='F32', shape=[sr, sc], kind='scale',
                            sigma=sig, src=name))
        else:
            out.append(dict(name=name, dtype='BF16', shape=[rows, cols], kind='linear', sigma=sig))

    def norm(name, n):
        out.append(dict(name=name, dtype='BF16', shape=[n], kind='norm'))

    def mlp(prefix, f):
        lin(prefix + 'gate_proj.weight', f, s.d)
        lin(prefix + 'up_proj.weight', f, s.d)
        lin(prefix + 'down_proj.weight', s.d, f)

    lin('model.embed_tokens.weight', s.V, s.d, sigma=1.0, proj=False)
    lin('lm_head.weight', s.V, s.d, proj=False)
    norm('model.norm.weight', s.d)
    d_q = s.d_n + s.d_r
    for l in range(s.L + s.D):
        p = 'model.layers.%d.' % l
        norm(p + 'input_layernorm.weight', s.d)
        norm(p + 'post_attention_layernorm.weight', s.d)
        a = p + 'self_attn.'
        if s.r_q:
            lin(a + 'q_a_proj.weight', s.r_q, s.d)
            norm(a + 'q_a_layernorm.weight', s.r_q)
            lin(a + 'q_b_proj.weight', s.n_h * d_q, s.r_q)
        else:
            lin(a + 'q_proj.weight', s.n_h * d_q, s.d)
        lin(a + 'kv_a_proj_with_mqa.weight', s.r_kv + s.d_r, s.d)
        norm(a + 'kv_a_layernorm.weight', s.r_kv)
        lin(a + 'kv_b_proj.weight', s.n_h * (s.d_n + s.d_v), s.r_kv)
        lin(a + 'o_proj.weight', s.d, s.n_h * s.d_v)
        if s.is_moe(l):
            lin(p + 'mlp.gate.weight', s.E, s.d, sigma=3.0 / math.sqrt(s.d), proj=False)
            if s.bias:
                out.append(dict(name=p + 'mlp.gate.e_score_correction_bias', dtype='F32',
                                shape=[s.E], kind='bias', groups=s.G))
            for j in range(s.E):
                mlp(p + 'mlp.experts.%d.' % j, s.f_m)
            if s.E_s:
                mlp(p + 'mlp.shared_experts.', s.E_s * s.f_m)
        else:
            mlp(p + 'mlp.', s.f_d)
        if l >= s.L:
            norm(p + 'enorm.weight', s.d)
            norm(p + 'hnorm.weight', s.d)
            lin(p + 'eh_proj.weight', s.d, 2 * s.d, proj=False)
            out.append(dict(name=p + 'embed_tokens.weight', dtype='BF16', shape=[s.V, s.d],
                            kind='copy', src='model.embed_tokens.weight'))
            norm(p + 'shared_head.norm.weight', s.d)
            out.append(dict(name=p + 'shared_head.head.weight', dtype='BF16', shape=[s.V, s.d],
                            kind='copy', src='lm_head.weight'))
    out.sort(key=lambda t: t['name'].encode())
    return out


# ---- values ----------------------------------------------------------------------------------

def _numel(shape):
    n = 1
    for x in shape:
        n *= x
    return n


def tensor_bytes(spec, by_name, seed):
    """The raw little-endian bytes of one tensor."""
    kind = spec['kind']
    if kind == 'copy':
        src = by_name[spec['src']]
        return tensor_bytes(src, by_name, seed)
    n = _numel(spec['shape'])
    st = tensor_seed(spec['name'], seed)
    parts = []
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        r = splitmix64(st, m, start)
        if kind == 'fp8':
            b = ((r & np.uint64(1)) << np.uint64(7)) \
                | (((r >> np.uint64(1)) % np.uint64(11)) << np.uint64(3)) \
                | ((r >> np.uint64(5)) & np.uint64(7))
            parts.append(b.astype(np.uint8).tobytes())
            continue
        u = uniform(r)
        t = 2.0 * u - 1.0
        if kind == 'linear':
            amp = math.sqrt(3.0) * spec['sigma']
            v = (t * amp).astype(np.float32)
            parts.append(f32_to_bf16_bits(v).astype('<u2').tobytes())
        elif kind == 'norm':
            v = (1.0 + 0.2 * t).astype(np.float32)
            parts.append(f32_to_bf16_bits(v).astype('<u2').tobytes())
        elif kind == 'bias':
            v = 0.1 * t
            per = spec['shape'][0] // spec['groups']
            if spec['groups'] > 1:  # all but the first expert of each group
                idx = np.arange(start, start + m)
                v = np.where(idx % per != 0, v - 0.7, v)
            parts.append(v.astype('<f4').tobytes())
        elif kind == 'scale':
            c = 0.25 * spec['sigma']
            v = (c * (0.5 + u)).astype('<f4')
            parts.append(v.tobytes())
        else:
            raise ValueError(kind)
    return b''.join(parts)


def generate(cfg, variant, seed=DEFAULT_SEED):
    """[(spec, bytes)] in ascending name order, and the weights hash."""
    if variant not in ('bf16', 'fp8'):
        raise ValueError('variant must be bf16 or fp8')
    specs = tensor_specs(cfg, variant == 'fp8')
    by_name = {t['name']: t for t in specs}
    out = [(t, tensor_bytes(t, by_name, seed)) for t in specs]
    return out, weights_hash(out)


def weights_hash(tensors):
    """FNV-1a 64 over, per tensor in ascending byte-wise name order:
    name '\\n' dtype '\\n' dims joined by ',' '\\n' then the raw data bytes."""
    h = FNV_OFFSET
    for spec, data in sorted(tensors, key=lambda x: x[0]['name'].encode()):
        head = '%s\n%s\n%s\n' % (spec['name'], spec['dtype'], ','.join(str(x) for x in spec['shape']))
        h = fnv1a64(head.encode(), h)
        h = fnv1a64(data, h)
    return h


# ---- files -------------------------------------------------------------------------------------

def _st_header(tensors):
    parts = ['{"__metadata__":{"format":"pt"}']
    off = 0
    for spec, data in tensors:
        parts.append(',"%s":{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}' % (
            spec['name'], spec['dtype'], ','.join(str(x) for x in spec['shape']), off,
            off + len(data)))
        off += len(data)
    parts.append('}')
    h = ''.join(parts).encode()
    return h + b' ' * (-len(h) % 8)


def write_safetensors(path, tensors):
    """Our layout: u64 LE header length, JSON header padded with spaces to a
    multiple of 8, data in insertion order (same bytes as tests/common/st_writer.c)."""
    h = _st_header(tensors)
    with open(path, 'wb') as f:
        f.write(len(h).to_bytes(8, 'little'))
        f.write(h)
        for _, data in tensors:
            f.write(data)


def write_checkpoint(out_dir, tensors, n_files):
    os.makedirs(out_dir, exist_ok=True)
    if n_files <= 1:
        write_safetensors(os.path.join(out_dir, 'model.safetensors'), tensors)
        return
    n = len(tensors)
    if n_files > n:
        raise ValueError('more files than tensors')
    wm = []
    total = sum(len(d) for _, d in tensors)
    for k in range(n_files):
        lo, hi = n * k // n_files, n * (k + 1) // n_files
        fname = 'model-%05d-of-%05d.safetensors' % (k + 1, n_files)
        write_safetensors(os.path.join(out_dir, fname), tensors[lo:hi])
        wm += ['"%s":"%s"' % (t['name'], fname) for t, _ in tensors[lo:hi]]
    idx = '{"metadata":{"total_size":%d},"weight_map":{%s}}\n' % (total, ','.join(wm))
    with open(os.path.join(out_dir, 'model.safetensors.index.json'), 'w') as f:
        f.write(idx)


QUANT_CONFIG = (',\n  "quantization_config": {\n    "activation_scheme": "dynamic",\n'
                '    "fmt": "e4m3",\n    "quant_method": "fp8",\n'
                '    "weight_block_size": [128, 128]\n  }\n}\n')


def config_text(text, variant):
    """config.json as written next to the weights: the input text, plus a
    quantization_config member for the fp8 variant."""
    if variant != 'fp8':
        return text
    end = text.rstrip().rfind('}')
    return text[:end].rstrip() + QUANT_CONFIG


def synth(config_path, variant, out_dir, n_files=None, seed=DEFAULT_SEED):
    with open(config_path) as f:
        text = f.read()
    cfg = json.loads(text)
    tensors, h = generate(cfg, variant, seed)
    if n_files is None:
        n_files = 3 if variant == 'fp8' else 1
    write_checkpoint(out_dir, tensors, n_files)
    with open(os.path.join(out_dir, 'config.json'), 'w') as f:
        f.write(config_text(text, variant))
    return h, tensors


def main(argv):
    ap = argparse.ArgumentParser(description='write a synthetic checkpoint')
    ap.add_argument('config')
    ap.add_argument('variant', choices=['bf16', 'fp8'])
    ap.add_argument('out_dir')
    ap.add_argument('--files', type=int, default=None)
    ap.add_argument('--seed', type=lambda x: int(x, 0), default=DEFAULT_SEED)
    a = ap.parse_args(argv)
    h, tensors = synth(a.config, a.variant, a.out_dir, a.files, a.seed)
    print('%d tensors, %d bytes, weights hash %016x' % (
        len(tensors), sum(len(d) for _, d in tensors), h))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
