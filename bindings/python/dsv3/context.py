"""Contexts (``dsv3_context``): one sequence's state; decoding and generation."""

from __future__ import annotations

import array
import ctypes
from ctypes import POINTER, byref, c_float, c_int64, c_size_t, c_void_p, sizeof
from typing import Any, Callable, Optional, Sequence, Tuple, Union

from . import _ffi
from ._enums import ContextFlags, ContextParam, DecodeFlags, DType, Status
from ._handle import Owner, enum_arg, i32, i64, raise_for, u32
from .model import LibraryArg, Model, resolve_library, token_array
from .sampler import Sampler
from .stream import (AsyncTokenStream, Generation, GenerationResult, Token, TokenStream,
                     generation_params)

__all__ = ["Context", "Token", "GenerationResult", "param_bounds"]

Prompt = Union[str, Sequence[int]]


def param_bounds(key: Union[ContextParam, int], library: LibraryArg = None) -> Tuple[int, int]:
    """(min, max) of a writable context knob (``dsv3_context_param_bounds``)."""
    lib = resolve_library(library)
    lo, hi = c_int64(), c_int64()
    raise_for(lib, lib.dsv3_context_param_bounds(int(key), byref(lo), byref(hi)))
    return lo.value, hi.value


class Context:
    """One sequence on a model: latent KV cache, position, generation state.

    Used by one call at a time: while a generation or stream runs, other
    calls raise :class:`BusyError`; :meth:`cancel` and :meth:`close` work
    from any thread at any time. Use as a context manager or call
    :meth:`close`; the C context holds a reference to its model, so the
    model may be closed first.

    Args:
        model: the model.
        n_ctx: positions the cache holds (0: min(4096, the model's maximum)).
        n_threads: compute threads (0: number of CPUs).
        n_batch: tokens per internal forward chunk (0: 256).
        kv_dtype: cache element type (``DType.F32``, ``DType.BF16``; default F32).
        mtp: speculative decoding with the model's MTP module.
        naive_attention: decompressed MLA (slow; for testing).
    """

    def __init__(self, model: Model, *, n_ctx: int = 0, n_threads: int = 0, n_batch: int = 0,
                 kv_dtype: Union[DType, str, int] = DType.DEFAULT, mtp: bool = False,
                 naive_attention: bool = False) -> None:
        self._owner: Optional[Owner] = None
        self._active: Optional[Generation] = None
        self._model = model  # keeps the model's log callback alive as long as we are
        lib = model._lib
        self._lib = lib
        p = _ffi.ContextParams()
        raise_for(lib, lib.dsv3_context_params_init(byref(p), sizeof(p)))
        p.n_ctx = u32("n_ctx", n_ctx)
        p.n_threads = i32("n_threads", n_threads)
        p.n_batch = u32("n_batch", n_batch)
        p.kv_dtype = enum_arg(DType, "kv_dtype", kv_dtype)
        p.flags = int((ContextFlags.MTP if mtp else 0)
                      | (ContextFlags.NAIVE_ATTN if naive_attention else 0))
        handle = c_void_p()
        with model._use() as mh:
            rc = lib.dsv3_context_new(mh, byref(p), byref(handle))
            if rc < 0:
                if handle.value:
                    msg = lib.dsv3_context_errmsg(handle)
                    lib.dsv3_context_free(handle)
                else:
                    msg = lib.dsv3_model_errmsg(mh)
                raise_for(lib, rc, lambda: msg)
        self._owner = Owner(lib, handle.value, lib.dsv3_context_free, "context", exclusive=True)
        try:
            self._n_vocab = model.info.vocab_size
        except BaseException:
            self.close()
            raise

    @property
    def model(self) -> Model:
        return self._model

    # ---- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Release the context (idempotent). A running generation is canceled
        and the context is freed as soon as it has stopped."""
        gen = self._active
        if gen is not None:
            gen.request_stop()
        if self._owner is not None:
            self._owner.close()

    @property
    def closed(self) -> bool:
        return self._owner is None or self._owner.closed

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<dsv3.Context on {self._model!r}{' closed' if self.closed else ''}>"

    def _use(self) -> Any:
        if self._owner is None:
            raise ValueError("operation on a closed context")
        return self._owner.use()

    def _errmsg(self, ptr: int) -> Callable[[], bytes]:
        return lambda: self._lib.dsv3_context_errmsg(ptr)

    def cancel(self) -> None:
        """Stop a running decode or generation on this context (any thread).

        The interrupted call raises :class:`CanceledError`; the context stays
        usable. Does nothing when nothing runs.
        """
        gen = self._active
        if gen is not None:
            gen.request_stop(user_cancel=True)
        if self._owner is not None:
            self._owner.with_ptr(self._lib.dsv3_context_cancel)

    # ---- evaluation ---------------------------------------------------------------------

    def decode(self, tokens: Sequence[int], *, all_logits: bool = False) -> None:
        """Evaluate tokens at the current position and append them to the cache."""
        arr = token_array(tokens)
        flags = int(DecodeFlags.ALL_LOGITS) if all_logits else 0
        lib = self._lib
        with self._use() as h:
            raise_for(lib, lib.dsv3_context_decode(h, arr, len(arr), flags), self._errmsg(h))

    def logits(self, row: int = -1) -> "array.array[float]":
        """A copy of the logits of the last decode (``row`` -1: its last token)."""
        lib = self._lib
        ptr = POINTER(c_float)()
        with self._use() as h:
            raise_for(lib, lib.dsv3_context_logits(h, i32("row", row), byref(ptr)),
                      self._errmsg(h))
            out = array.array("f")
            out.frombytes(ctypes.string_at(ptr, self._n_vocab * sizeof(c_float)))
        return out

    @property
    def n_past(self) -> int:
        """Positions in the cache."""
        with self._use() as h:
            return int(self._lib.dsv3_context_n_past(h))

    def truncate(self, n_keep: int) -> None:
        """Drop cached positions ``n_keep`` and later (rollback)."""
        lib = self._lib
        with self._use() as h:
            raise_for(lib, lib.dsv3_context_truncate(h, u32("n_keep", n_keep)), self._errmsg(h))

    def clear(self) -> None:
        """Empty the cache and reset counters."""
        lib = self._lib
        with self._use() as h:
            raise_for(lib, lib.dsv3_context_clear(h), self._errmsg(h))

    # ---- knobs -----------------------------------------------------------------------------

    def get_param(self, key: Union[ContextParam, int]) -> int:
        """Read a knob or counter (``ContextParam``)."""
        lib = self._lib
        v = c_int64()
        with self._use() as h:
            raise_for(lib, lib.dsv3_context_get_param(h, i32("key", key), byref(v)),
                      self._errmsg(h))
        return v.value

    def set_param(self, key: Union[ContextParam, int], value: int) -> None:
        """Set a writable knob (``ContextParam.N_THREADS``, ``ContextParam.MTP``)."""
        lib = self._lib
        v = i64("value", value)
        with self._use() as h:
            raise_for(lib, lib.dsv3_context_set_param(h, i32("key", key), v), self._errmsg(h))

    @property
    def n_ctx(self) -> int:
        return self.get_param(ContextParam.N_CTX)

    @property
    def n_threads(self) -> int:
        return self.get_param(ContextParam.N_THREADS)

    @n_threads.setter
    def n_threads(self, value: int) -> None:
        self.set_param(ContextParam.N_THREADS, value)

    @property
    def mtp(self) -> bool:
        return bool(self.get_param(ContextParam.MTP))

    @mtp.setter
    def mtp(self, on: bool) -> None:
        self.set_param(ContextParam.MTP, 1 if on else 0)

    @property
    def mtp_stats(self) -> Tuple[int, int]:
        """(drafted, accepted) MTP draft tokens since creation or :meth:`clear`."""
        return (self.get_param(ContextParam.MTP_DRAFTED),
                self.get_param(ContextParam.MTP_ACCEPTED))

    # ---- state ---------------------------------------------------------------------------

    def save_state(self) -> bytes:
        """The sequence state (cache rows, position, last logits) as bytes."""
        lib = self._lib
        need = c_size_t()
        with self._use() as h:
            rc = lib.dsv3_context_state_save(h, None, 0, byref(need))
            if rc != Status.E_NOSPC:
                raise_for(lib, rc, self._errmsg(h))
            buf = ctypes.create_string_buffer(max(need.value, 1))
            raise_for(lib, lib.dsv3_context_state_save(h, buf, need.value, byref(need)),
                      self._errmsg(h))
            return buf.raw[:need.value]

    def load_state(self, data: bytes) -> None:
        """Restore a state from :meth:`save_state` (same model)."""
        raw = bytes(data)
        lib = self._lib
        with self._use() as h:
            raise_for(lib, lib.dsv3_context_state_load(h, raw, len(raw)), self._errmsg(h))

    # ---- generation ----------------------------------------------------------------------

    def _prompt_tokens(self, prompt: Prompt, add_bos: bool) -> Any:
        if isinstance(prompt, (str, bytes)):
            return token_array(self._model.tokenize(prompt, add_bos=add_bos))
        return token_array(prompt)

    def _start(self, prompt: Prompt, sampler: Optional[Sampler], max_tokens: int,
               stop: Sequence[str], ignore_eos: bool, show_special: bool,
               add_bos: bool) -> Generation:
        tokens = self._prompt_tokens(prompt, add_bos)
        params, keep = generation_params(self._lib, max_tokens, stop, ignore_eos, show_special)
        own = sampler is None
        if sampler is None:
            sampler = Sampler(library=self._lib)
        try:
            return Generation(self, sampler, own, tokens, params, keep)
        except BaseException:
            if own:
                sampler.close()
            raise

    def generate(self, prompt: Prompt, *, sampler: Optional[Sampler] = None,
                 max_tokens: int = 0, stop: Sequence[str] = (), ignore_eos: bool = False,
                 show_special: bool = False, add_bos: bool = True,
                 on_token: Optional[Callable[[Token], Optional[bool]]] = None
                 ) -> GenerationResult:
        """Evaluate the prompt, then produce tokens until a stop condition.

        Runs on the calling thread. Args:
            prompt: token ids, or text to tokenize (with BOS unless ``add_bos``
                is False; chat-template output already has it).
            sampler: a :class:`Sampler` (default: a fresh one with library defaults).
            max_tokens: stop after this many tokens (0: until the context is full).
            stop: stop strings (their text is not delivered).
            ignore_eos: keep going after the end-of-sequence token.
            show_special: include special tokens' text.
            on_token: called with each :class:`Token`; return False to stop.

        Returns the :class:`GenerationResult`. Raises :class:`CanceledError`
        (with the partial result as ``.result``) after :meth:`cancel`.
        """
        gen = self._start(prompt, sampler, max_tokens, stop, ignore_eos, show_special, add_bos)
        if on_token is not None:
            gen.sink = lambda tok: on_token(tok) is False
        try:
            gen.run()
        finally:
            gen.finish()
        return gen.outcome()

    def stream(self, prompt: Prompt, *, sampler: Optional[Sampler] = None, max_tokens: int = 0,
               stop: Sequence[str] = (), ignore_eos: bool = False, show_special: bool = False,
               add_bos: bool = True) -> TokenStream:
        """Generate on a worker thread and iterate over the tokens as they come.

        Arguments as for :meth:`generate`. Leaving the loop early (``break``,
        an exception, or :meth:`TokenStream.close`) cancels the generation.
        After the loop, ``stream.result`` holds the :class:`GenerationResult`.
        """
        gen = self._start(prompt, sampler, max_tokens, stop, ignore_eos, show_special, add_bos)
        return TokenStream(gen)

    def astream(self, prompt: Prompt, *, sampler: Optional[Sampler] = None,
                max_tokens: int = 0, stop: Sequence[str] = (), ignore_eos: bool = False,
                show_special: bool = False, add_bos: bool = True) -> AsyncTokenStream:
        """Like :meth:`stream`, as an async iterator for asyncio (call it in a coroutine).

        The generation runs on a worker thread that hands tokens to the event
        loop; cancelling the consuming task cancels the generation.
        """
        gen = self._start(prompt, sampler, max_tokens, stop, ignore_eos, show_special, add_bos)
        return AsyncTokenStream(gen)
