"""Models: loading, facts, tokenizer and chat template."""

from __future__ import annotations

import ctypes
import os
from ctypes import POINTER, byref, c_char, c_int32, c_size_t, c_void_p, sizeof
from dataclasses import dataclass
from typing import (TYPE_CHECKING, Any, Callable, Iterable, List, Mapping, NamedTuple,
                    Optional, Sequence, Tuple, Union)

from . import _ffi
from ._enums import (Backend, ChatFlags, DetokenizeFlags, DType, LogLevel, ModelFlags,
                     ModelInfoFlags, Placement, ProgressStage, Status, TokenizeFlags)
from ._ffi import Library, load_library
from ._handle import Owner, enum_arg, enum_or_int, i32, make_error, raise_for

if TYPE_CHECKING:
    from .context import Context

__all__ = ["Model", "ModelInfo", "Message", "LogCallback", "ProgressCallback", "resolve_library"]

#: ``log(level, message)``: called from library threads; must be thread-safe.
LogCallback = Callable[[LogLevel, str], None]
#: ``progress(stage, done, total)``: return False to cancel; raising cancels too.
ProgressCallback = Callable[[ProgressStage, int, int], Optional[bool]]

LibraryArg = Union[Library, str, "os.PathLike[str]", None]


def resolve_library(library: LibraryArg) -> Library:
    """A Library object, a path to load, or None for the default search."""
    if isinstance(library, Library):
        return library
    return load_library(library)


class Message(NamedTuple):
    """One chat message; role is "system", "user" or "assistant"."""

    role: str
    content: str


@dataclass(frozen=True)
class ModelInfo:
    """Facts about a loaded model (``dsv3_model_info``)."""

    flags: ModelInfoFlags
    vocab_size: int
    hidden_size: int
    n_layers: int
    n_dense_layers: int
    n_heads: int
    n_experts: int
    n_experts_used: int
    n_mtp_layers: int
    bos_token: Optional[int]
    eos_token: Optional[int]
    max_position: int
    weight_dtype: DType
    backend: Backend
    n_params: int
    n_params_active: int
    n_params_mtp: int
    bytes_on_disk: int
    bytes_in_memory: int
    bytes_per_token: int
    kv_bytes_per_token: int

    @property
    def has_mtp(self) -> bool:
        return bool(self.flags & ModelInfoFlags.HAS_MTP)

    @property
    def has_tokenizer(self) -> bool:
        return bool(self.flags & ModelInfoFlags.HAS_TOKENIZER)

    @property
    def has_chat_template(self) -> bool:
        return bool(self.flags & ModelInfoFlags.HAS_CHAT)


class _ProgressBridge:
    """Adapts a Python progress callback; remembers an exception it raised."""

    def __init__(self, fn: ProgressCallback) -> None:
        self.fn = fn
        self.error: Optional[BaseException] = None
        self.cfunc = _ffi.PROGRESS_FN(self._call)

    def _call(self, ev_p: Any, _ud: Any) -> int:
        if self.error is not None:
            return 1
        try:
            ev = ev_p.contents
            stage = enum_or_int(ProgressStage, ev.stage)
            return 1 if self.fn(stage, int(ev.done), int(ev.total)) is False else 0
        except BaseException as e:  # incl. KeyboardInterrupt: cancel, re-raise after the call
            self.error = e
            return 1


def make_log_bridge(fn: LogCallback) -> Any:
    def call(level: int, msg: Optional[bytes], _ud: Any) -> None:
        fn(enum_or_int(LogLevel, level), (msg or b"").decode("utf-8", "replace"))
    return _ffi.LOG_FN(call)


class Model:
    """A loaded model (``dsv3_model``): immutable, shareable across threads.

    Use as a context manager or call :meth:`close`; contexts keep the model's
    memory alive in C, so closing the model before its contexts is fine.

    Args:
        path: the model directory (or its ``model.dsv3`` file).
        backend: ``Backend`` or its name ("auto", "cpu", "cuda").
        device: GPU ordinal.
        n_threads: loader threads (0: number of CPUs).
        placement: where routed experts live.
        mmap: map raw shards instead of copying them.
        verify_checksums: check content checksums while loading.
        load_mtp: load the multi-token-prediction module if the model has one.
        log: ``log(level, message)``; called from library threads for the
            whole life of the model (also of its contexts).
        log_level: most verbose level passed to ``log`` (library default: WARN).
        progress: ``progress(stage, done, total)`` on this thread while
            loading; return False to cancel (:class:`CanceledError`), or raise
            to cancel and have the exception propagate.
        library: a :class:`Library`, or a path to libdsv3 (default: search).

    Raises:
        Dsv3Error: (a subclass per status code) when loading fails.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], *,
                 backend: Union[Backend, str, int] = Backend.AUTO, device: int = 0,
                 n_threads: int = 0, placement: Union[Placement, str, int] = Placement.DEFAULT,
                 mmap: bool = True, verify_checksums: bool = True, load_mtp: bool = True,
                 log: Optional[LogCallback] = None,
                 log_level: Optional[Union[LogLevel, str, int]] = None,
                 progress: Optional[ProgressCallback] = None,
                 library: LibraryArg = None) -> None:
        self._owner: Optional[Owner] = None
        self._info: Optional[ModelInfo] = None
        lib = resolve_library(library)
        self._lib = lib
        p = _ffi.ModelParams()
        raise_for(lib, lib.dsv3_model_params_init(byref(p), sizeof(p)))
        p.backend = enum_arg(Backend, "backend", backend)
        p.device = i32("device", device)
        p.n_threads = i32("n_threads", n_threads)
        p.placement = enum_arg(Placement, "placement", placement)
        p.flags = int((ModelFlags.NO_MMAP if not mmap else 0)
                      | (ModelFlags.SKIP_CHECKSUMS if not verify_checksums else 0)
                      | (ModelFlags.NO_MTP if not load_mtp else 0))
        if log_level is not None:
            p.log_level = enum_arg(LogLevel, "log_level", log_level)
        # The log callback may be called for as long as the C model lives,
        # which is until its last context is freed: contexts keep a reference
        # to this object, so the callback object lives at least that long.
        self._log_cb = make_log_bridge(log) if log is not None else None
        if self._log_cb is not None:
            p.log_fn = self._log_cb
        bridge = _ProgressBridge(progress) if progress is not None else None
        if bridge is not None:
            p.progress_fn = bridge.cfunc
        self.path = os.fspath(path)
        bpath = os.fsencode(path)
        if b"\0" in bpath:
            raise ValueError("model path contains a NUL character")
        handle = c_void_p()
        rc = lib.dsv3_model_load(bpath, byref(p), byref(handle))
        if rc < 0:
            msg = lib.dsv3_model_errmsg(handle) if handle.value else b""
            lib.dsv3_model_free(handle)
            err = make_error(lib, rc, (msg or b"").decode("utf-8", "replace"))
            if bridge is not None and bridge.error is not None:
                raise bridge.error from err
            raise err
        self._owner = Owner(lib, handle.value, lib.dsv3_model_free, "model", exclusive=False)

    # ---- lifetime ---------------------------------------------------------------

    def close(self) -> None:
        """Release the model (idempotent). Contexts made from it stay usable."""
        if self._owner is not None:
            self._owner.close()

    @property
    def closed(self) -> bool:
        return self._owner is None or self._owner.closed

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<dsv3.Model {self.path!r} {state}>"

    def _errmsg(self, ptr: int) -> Callable[[], bytes]:
        return lambda: self._lib.dsv3_model_errmsg(ptr)

    # ---- facts ----------------------------------------------------------------------

    @property
    def info(self) -> ModelInfo:
        """Facts about the model (read once; the model is immutable)."""
        if self._info is None:
            lib = self._lib
            raw = _ffi.ModelInfo()
            raw.struct_size = sizeof(raw)
            with self._use() as h:
                raise_for(lib, lib.dsv3_model_info_get(h, byref(raw)), self._errmsg(h))
            vals = {name: getattr(raw, name) for name, _ in _ffi.ModelInfo._fields_
                    if name not in ("struct_size", "reserved0")}
            vals["flags"] = ModelInfoFlags(vals["flags"])
            vals["weight_dtype"] = enum_or_int(DType, vals["weight_dtype"])
            vals["backend"] = enum_or_int(Backend, vals["backend"])
            for k in ("bos_token", "eos_token"):
                vals[k] = None if vals[k] < 0 else vals[k]
            self._info = ModelInfo(**vals)
        return self._info

    @property
    def vocab_size(self) -> int:
        return self.info.vocab_size

    def _use(self) -> Any:
        if self._owner is None:
            raise ValueError("operation on a closed model")
        return self._owner.use()

    # ---- text -------------------------------------------------------------------------

    def tokenize(self, text: Union[str, bytes], *, add_bos: bool = False,
                 special: bool = True) -> List[int]:
        """Split text into token ids like the model's Hugging Face tokenizer.

        Args:
            text: str, or UTF-8 bytes (invalid UTF-8 raises :class:`Utf8Error`).
            add_bos: prepend the BOS token.
            special: special/added token text becomes single tokens (else plain text).
        """
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        flags = (TokenizeFlags.ADD_BOS if add_bos else 0) | (
            0 if special else TokenizeFlags.NO_SPECIAL)
        lib = self._lib
        cap = len(data) + 2
        with self._use() as h:
            for _ in range(3):
                buf = (c_int32 * cap)()
                n = c_size_t()
                rc = lib.dsv3_tokenize(h, data, len(data), int(flags), buf, cap, byref(n))
                if rc == Status.E_NOSPC and n.value > cap:
                    cap = n.value
                    continue
                raise_for(lib, rc, self._errmsg(h))
                return buf[:n.value]
        raise RuntimeError("dsv3_tokenize kept asking for a larger buffer")

    def detokenize_bytes(self, tokens: Sequence[int], *, skip_special: bool = False) -> bytes:
        """The exact bytes of the tokens (may end inside a UTF-8 character)."""
        arr = token_array(tokens)
        flags = int(DetokenizeFlags.SKIP_SPECIAL) if skip_special else 0
        lib = self._lib
        cap = 8 * len(arr) + 16
        with self._use() as h:
            for _ in range(3):
                buf = ctypes.create_string_buffer(cap)
                n = c_size_t()
                rc = lib.dsv3_detokenize(h, arr, len(arr), flags,
                                         ctypes.cast(buf, POINTER(c_char)), cap, byref(n))
                if rc == Status.E_NOSPC and n.value + 1 > cap:
                    cap = n.value + 1
                    continue
                raise_for(lib, rc, self._errmsg(h))
                return buf.raw[:n.value]
        raise RuntimeError("dsv3_detokenize kept asking for a larger buffer")

    def detokenize(self, tokens: Sequence[int], *, skip_special: bool = False,
                   errors: str = "strict") -> str:
        """Turn token ids back into text (``errors`` as for ``bytes.decode``)."""
        return self.detokenize_bytes(tokens, skip_special=skip_special).decode("utf-8", errors)

    def token_bytes(self, token: int) -> bytes:
        """The raw bytes of one token (may be part of a UTF-8 character)."""
        lib = self._lib
        ptr = POINTER(c_char)()
        n = c_size_t()
        with self._use() as h:
            raise_for(lib, lib.dsv3_token_bytes(h, i32("token", token), byref(ptr), byref(n)),
                      self._errmsg(h))
            return ctypes.string_at(ptr, n.value) if n.value else b""

    def apply_chat_template(self, messages: Iterable[Union[Message, Tuple[str, str],
                                                          Mapping[str, str]]], *,
                            add_generation_prompt: bool = True) -> str:
        """Render messages with the model's chat template.

        ``messages`` holds :class:`Message` tuples, ``(role, content)`` pairs
        or ``{"role": ..., "content": ...}`` dicts. The result already starts
        with BOS: pass it to :meth:`tokenize` / ``Context.generate`` with
        ``add_bos=False``.
        """
        enc = []
        for m in messages:
            role, content = (m["role"], m["content"]) if isinstance(m, Mapping) else m
            if not isinstance(role, str) or not isinstance(content, str):
                raise TypeError("chat message role and content must be str")
            r, c = role.encode("utf-8"), content.encode("utf-8")
            if b"\0" in r or b"\0" in c:
                raise ValueError("chat messages must not contain NUL characters")
            enc.append((r, c))
        arr = (_ffi.ChatMessage * max(len(enc), 1))(*[_ffi.ChatMessage(r, c) for r, c in enc])
        flags = int(ChatFlags.ADD_GENERATION_PROMPT) if add_generation_prompt else 0
        lib = self._lib
        cap = sum(len(r) + len(c) for r, c in enc) + 256
        with self._use() as h:
            for _ in range(3):
                buf = ctypes.create_string_buffer(cap)
                n = c_size_t()
                rc = lib.dsv3_chat_apply(h, arr, len(enc), flags,
                                         ctypes.cast(buf, POINTER(c_char)), cap, byref(n))
                if rc == Status.E_NOSPC and n.value + 1 > cap:
                    cap = n.value + 1
                    continue
                raise_for(lib, rc, self._errmsg(h))
                return buf.raw[:n.value].decode("utf-8")
        raise RuntimeError("dsv3_chat_apply kept asking for a larger buffer")

    # ---- contexts -----------------------------------------------------------------

    def context(self, **kwargs: Any) -> "Context":
        """Create a :class:`dsv3.Context` on this model (see its arguments)."""
        from .context import Context
        return Context(self, **kwargs)


def token_array(tokens: Sequence[int]) -> Any:
    """A C int32 array from token ids, refusing what ctypes would truncate."""
    toks = list(tokens)
    for i, t in enumerate(toks):
        i32(f"tokens[{i}]", t)
    return (c_int32 * len(toks))(*toks)
