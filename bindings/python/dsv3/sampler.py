"""Samplers (``dsv3_sampler``): turn logits into tokens."""

from __future__ import annotations

import array
from ctypes import POINTER, byref, c_float, c_int32, c_void_p, cast, sizeof
from typing import Any, Dict, Optional, Sequence, Union

from . import _ffi
from ._ffi import Library
from ._handle import Owner, f32, i32, raise_for, u64
from .model import LibraryArg, resolve_library

__all__ = ["Sampler"]

_FLOAT_FIELDS = ("temperature", "top_p", "min_p", "repeat_penalty", "frequency_penalty",
                 "presence_penalty")
_INT_FIELDS = ("top_k", "penalty_window")
FIELDS = ("seed",) + _FLOAT_FIELDS + _INT_FIELDS


def _init_params(lib: Library) -> Any:
    p = _ffi.SamplerParams()
    raise_for(lib, lib.dsv3_sampler_params_init(byref(p), sizeof(p)))
    return p


class Sampler:
    """A sampler chain: logit bias, penalties, then greedy or a seeded draw.

    The chain always runs: logit bias -> repetition/frequency/presence
    penalties -> (temperature <= 0: greedy argmax) -> top-k -> softmax with
    temperature -> top-p -> min-p -> random draw. Arguments left at None
    take the library's defaults (see :meth:`defaults`). Values are validated
    by the library; NaN or out-of-range values raise
    :class:`InvalidArgumentError`.

    A sampler is used by one call at a time (a running generation holds it).
    """

    def __init__(self, *, temperature: Optional[float] = None, top_k: Optional[int] = None,
                 top_p: Optional[float] = None, min_p: Optional[float] = None,
                 repeat_penalty: Optional[float] = None,
                 frequency_penalty: Optional[float] = None,
                 presence_penalty: Optional[float] = None,
                 penalty_window: Optional[int] = None, seed: Optional[int] = None,
                 library: LibraryArg = None) -> None:
        self._owner: Optional[Owner] = None
        lib = resolve_library(library)
        self._lib = lib
        p = _init_params(lib)
        given = dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                     repeat_penalty=repeat_penalty, frequency_penalty=frequency_penalty,
                     presence_penalty=presence_penalty, penalty_window=penalty_window)
        for name, value in given.items():
            if value is not None:
                setattr(p, name, i32(name, value) if name in _INT_FIELDS else f32(name, value))
        if seed is not None:
            p.seed = u64("seed", seed)
        self._params = {name: getattr(p, name) for name in FIELDS}
        handle = c_void_p()
        rc = lib.dsv3_sampler_new(byref(p), byref(handle))
        if rc < 0:
            msg = lib.dsv3_sampler_errmsg(handle) if handle.value else b""
            lib.dsv3_sampler_free(handle)
            raise_for(lib, rc, lambda: msg)
        self._owner = Owner(lib, handle.value, lib.dsv3_sampler_free, "sampler", exclusive=True)

    @classmethod
    def greedy(cls, **kwargs: Any) -> "Sampler":
        """A sampler that always picks the most likely token (temperature 0)."""
        return cls(temperature=0.0, **kwargs)

    @staticmethod
    def defaults(library: LibraryArg = None) -> Dict[str, Union[int, float]]:
        """The library's default parameters (``dsv3_sampler_params_init``)."""
        p = _init_params(resolve_library(library))
        return {name: getattr(p, name) for name in FIELDS}

    @property
    def params(self) -> Dict[str, Union[int, float]]:
        """The parameters this sampler was created with (as stored in C types)."""
        return dict(self._params)

    # ---- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Release the sampler (idempotent; deferred while a generation uses it)."""
        if self._owner is not None:
            self._owner.close()

    @property
    def closed(self) -> bool:
        return self._owner is None or self._owner.closed

    def __enter__(self) -> "Sampler":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<dsv3.Sampler {self._params}{' closed' if self.closed else ''}>"

    def _use(self) -> Any:
        if self._owner is None:
            raise ValueError("operation on a closed sampler")
        return self._owner.use()

    def _errmsg(self, ptr: int) -> Any:
        return lambda: self._lib.dsv3_sampler_errmsg(ptr)

    # ---- operations -----------------------------------------------------------------------

    def set_logit_bias(self, token: int, bias: float) -> None:
        """Add bias to a token's logit (0 removes it, ``-math.inf`` bans the token)."""
        lib = self._lib
        with self._use() as h:
            raise_for(lib, lib.dsv3_sampler_set_logit_bias(h, i32("token", token),
                                                           f32("bias", bias)), self._errmsg(h))

    def sample(self, logits: Union[Sequence[float], "array.array[float]"]) -> int:
        """Pick a token from logits (a float32 ``array``/buffer or any float sequence).

        Does not record the token: call :meth:`accept` with the token used.
        """
        if isinstance(logits, array.array) and logits.typecode == "f":
            n = len(logits)
            buf: Any = (c_float * n).from_buffer(logits) if n else (c_float * 0)()
        else:
            vals = [f32("logits", v) for v in logits]
            n = len(vals)
            buf = (c_float * n)(*vals)
        tok = c_int32()
        lib = self._lib
        with self._use() as h:
            raise_for(lib, lib.dsv3_sampler_sample(h, cast(buf, POINTER(c_float)), n, byref(tok)),
                      self._errmsg(h))
        return tok.value

    def accept(self, token: int) -> None:
        """Record a token in the penalty history."""
        lib = self._lib
        with self._use() as h:
            raise_for(lib, lib.dsv3_sampler_accept(h, i32("token", token)), self._errmsg(h))

    def reset(self) -> None:
        """Forget the history and restart the random stream from the seed."""
        lib = self._lib
        with self._use() as h:
            raise_for(lib, lib.dsv3_sampler_reset(h), self._errmsg(h))
