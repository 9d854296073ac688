"""ctypes declarations of include/dsv3.h and loading of the shared library.

Nothing here has logic of its own: structs mirror the header field by field
(the binding tests compare sizes and offsets with the C ABI suite's layout
dump), and every function gets its exact C signature.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double, c_float,
                    c_int, c_int32, c_int64, c_size_t, c_uint32, c_uint64, c_void_p)
from typing import Dict, Optional, Union

from .errors import AbiVersionError, LibraryError

#: The ABI number (SONAME number, ``dsv3_abi_version()``) this binding is written for.
EXPECTED_ABI = 0

# ---- callback types -----------------------------------------------------------

LOG_FN = CFUNCTYPE(None, c_int32, c_char_p, c_void_p)
ALLOC_FN = CFUNCTYPE(c_void_p, c_size_t, c_void_p)
FREE_FN = CFUNCTYPE(None, c_void_p, c_void_p)


class Allocator(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("flags", c_uint32),
        ("alloc", ALLOC_FN),
        ("free", FREE_FN),
        ("user_data", c_void_p),
    ]


class ProgressEvent(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("stage", c_int32),
        ("done", c_uint64),
        ("total", c_uint64),
    ]


PROGRESS_FN = CFUNCTYPE(c_int, POINTER(ProgressEvent), c_void_p)


class ModelParams(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("flags", c_uint32),
        ("backend", c_int32),
        ("device", c_int32),
        ("n_threads", c_int32),
        ("placement", c_int32),
        ("log_level", c_int32),
        ("reserved0", c_uint32),
        ("log_fn", LOG_FN),
        ("log_user_data", c_void_p),
        ("progress_fn", PROGRESS_FN),
        ("progress_user_data", c_void_p),
        ("allocator", POINTER(Allocator)),
    ]


class ModelInfo(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("flags", c_uint32),
        ("vocab_size", c_int32),
        ("hidden_size", c_int32),
        ("n_layers", c_int32),
        ("n_dense_layers", c_int32),
        ("n_heads", c_int32),
        ("n_experts", c_int32),
        ("n_experts_used", c_int32),
        ("n_mtp_layers", c_int32),
        ("bos_token", c_int32),
        ("eos_token", c_int32),
        ("max_position", c_int32),
        ("weight_dtype", c_int32),
        ("backend", c_int32),
        ("reserved0", c_uint32),
        ("n_params", c_uint64),
        ("n_params_active", c_uint64),
        ("n_params_mtp", c_uint64),
        ("bytes_on_disk", c_uint64),
        ("bytes_in_memory", c_uint64),
        ("bytes_per_token", c_uint64),
        ("kv_bytes_per_token", c_uint64),
    ]


class ChatMessage(Structure):
    _fields_ = [
        ("role", c_char_p),
        ("content", c_char_p),
    ]


class ContextParams(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("flags", c_uint32),
        ("n_ctx", c_uint32),
        ("n_threads", c_int32),
        ("n_batch", c_uint32),
        ("kv_dtype", c_int32),
    ]


class SamplerParams(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("flags", c_uint32),
        ("seed", c_uint64),
        ("temperature", c_float),
        ("top_k", c_int32),
        ("top_p", c_float),
        ("min_p", c_float),
        ("repeat_penalty", c_float),
        ("frequency_penalty", c_float),
        ("presence_penalty", c_float),
        ("penalty_window", c_int32),
        ("allocator", POINTER(Allocator)),
    ]


class TokenEvent(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("token", c_int32),
        ("index", c_uint32),
        ("reserved0", c_uint32),
        ("text", POINTER(c_char)),
        ("text_len", c_size_t),
    ]


TOKEN_FN = CFUNCTYPE(c_int, POINTER(TokenEvent), c_void_p)


class GenerateParams(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("flags", c_uint32),
        ("max_tokens", c_int32),
        ("n_stop", c_uint32),
        ("stop", POINTER(c_char_p)),
    ]


class GenerateResult(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("stop_reason", c_int32),
        ("n_prompt", c_uint32),
        ("n_generated", c_uint32),
        ("prompt_seconds", c_double),
        ("generate_seconds", c_double),
        ("n_drafted", c_uint64),
        ("n_accepted", c_uint64),
    ]


class ConvertParams(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("flags", c_uint32),
        ("weights", c_int32),
        ("level", c_int32),
        ("shard_size", c_uint64),
        ("n_threads", c_int32),
        ("log_level", c_int32),
        ("log_fn", LOG_FN),
        ("log_user_data", c_void_p),
        ("progress_fn", PROGRESS_FN),
        ("progress_user_data", c_void_p),
    ]


#: C struct name -> ctypes mirror (compared with the ABI suite's layout dump).
STRUCTS = {
    "dsv3_allocator": Allocator,
    "dsv3_progress_event": ProgressEvent,
    "dsv3_model_params": ModelParams,
    "dsv3_model_info": ModelInfo,
    "dsv3_chat_message": ChatMessage,
    "dsv3_context_params": ContextParams,
    "dsv3_sampler_params": SamplerParams,
    "dsv3_token_event": TokenEvent,
    "dsv3_generate_params": GenerateParams,
    "dsv3_generate_result": GenerateResult,
    "dsv3_convert_params": ConvertParams,
}

# ---- functions -------------------------------------------------------------------

_p = c_void_p  # opaque handles travel as void pointers
_PROTOTYPES = {
    "dsv3_strerror": (c_char_p, [c_int]),
    "dsv3_err_name": (c_char_p, [c_int]),
    "dsv3_version": (c_uint32, []),
    "dsv3_version_string": (c_char_p, []),
    "dsv3_abi_version": (c_uint32, []),
    "dsv3_build_info": (c_char_p, []),
    "dsv3_backend_name": (c_char_p, [c_int32]),
    "dsv3_backend_available": (c_int, [c_int32]),
    "dsv3_model_params_init": (c_int, [POINTER(ModelParams), c_size_t]),
    "dsv3_model_load": (c_int, [c_char_p, POINTER(ModelParams), POINTER(_p)]),
    "dsv3_model_free": (None, [_p]),
    "dsv3_model_errmsg": (c_char_p, [_p]),
    "dsv3_model_info_get": (c_int, [_p, POINTER(ModelInfo)]),
    "dsv3_tokenize": (c_int, [_p, c_char_p, c_size_t, c_uint32, POINTER(c_int32), c_size_t,
                              POINTER(c_size_t)]),
    "dsv3_detokenize": (c_int, [_p, POINTER(c_int32), c_size_t, c_uint32, POINTER(c_char),
                                c_size_t, POINTER(c_size_t)]),
    "dsv3_token_bytes": (c_int, [_p, c_int32, POINTER(POINTER(c_char)), POINTER(c_size_t)]),
    "dsv3_chat_apply": (c_int, [_p, POINTER(ChatMessage), c_size_t, c_uint32, POINTER(c_char),
                                c_size_t, POINTER(c_size_t)]),
    "dsv3_context_params_init": (c_int, [POINTER(ContextParams), c_size_t]),
    "dsv3_context_new": (c_int, [_p, POINTER(ContextParams), POINTER(_p)]),
    "dsv3_context_free": (None, [_p]),
    "dsv3_context_errmsg": (c_char_p, [_p]),
    "dsv3_context_decode": (c_int, [_p, POINTER(c_int32), c_size_t, c_uint32]),
    "dsv3_context_logits": (c_int, [_p, c_int32, POINTER(POINTER(c_float))]),
    "dsv3_context_n_past": (c_uint32, [_p]),
    "dsv3_context_truncate": (c_int, [_p, c_uint32]),
    "dsv3_context_clear": (c_int, [_p]),
    "dsv3_context_cancel": (None, [_p]),
    "dsv3_context_set_param": (c_int, [_p, c_int32, c_int64]),
    "dsv3_context_get_param": (c_int, [_p, c_int32, POINTER(c_int64)]),
    "dsv3_context_param_bounds": (c_int, [c_int32, POINTER(c_int64), POINTER(c_int64)]),
    "dsv3_context_state_save": (c_int, [_p, c_void_p, c_size_t, POINTER(c_size_t)]),
    "dsv3_context_state_load": (c_int, [_p, c_void_p, c_size_t]),
    "dsv3_sampler_params_init": (c_int, [POINTER(SamplerParams), c_size_t]),
    "dsv3_sampler_new": (c_int, [POINTER(SamplerParams), POINTER(_p)]),
    "dsv3_sampler_free": (None, [_p]),
    "dsv3_sampler_errmsg": (c_char_p, [_p]),
    "dsv3_sampler_set_logit_bias": (c_int, [_p, c_int32, c_float]),
    "dsv3_sampler_sample": (c_int, [_p, POINTER(c_float), c_size_t, POINTER(c_int32)]),
    "dsv3_sampler_accept": (c_int, [_p, c_int32]),
    "dsv3_sampler_reset": (c_int, [_p]),
    "dsv3_generate_params_init": (c_int, [POINTER(GenerateParams), c_size_t]),
    "dsv3_generate": (c_int, [_p, _p, POINTER(c_int32), c_size_t, POINTER(GenerateParams),
                              TOKEN_FN, c_void_p, POINTER(GenerateResult)]),
    "dsv3_convert_params_init": (c_int, [POINTER(ConvertParams), c_size_t]),
    "dsv3_convert": (c_int, [c_char_p, c_char_p, POINTER(ConvertParams), POINTER(c_char),
                             c_size_t]),
}

#: Names of every C function the binding calls.
FUNCTIONS = tuple(_PROTOTYPES)


class Library:
    """A loaded libdsv3 whose ABI matches this binding.

    Each C function is an attribute of the same name with its signature set.
    Use :func:`load_library` rather than constructing it directly.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._cdll = ctypes.CDLL(path)
        except OSError as e:
            raise LibraryError(f"cannot load libdsv3 from {path!r}: {e}") from None
        try:
            abi_fn = self._cdll.dsv3_abi_version
        except AttributeError:
            raise LibraryError(f"{path} is not libdsv3: it has no dsv3_abi_version") from None
        abi_fn.restype = c_uint32
        abi_fn.argtypes = []
        # Check the ABI before touching anything else: another ABI may have
        # other signatures under the same names.
        found = int(abi_fn())
        if found != EXPECTED_ABI:
            raise AbiVersionError(path, EXPECTED_ABI, found)
        missing = []
        for name, (restype, argtypes) in _PROTOTYPES.items():
            try:
                fn = getattr(self._cdll, name)
            except AttributeError:
                missing.append(name)
                continue
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)
        if missing:
            raise LibraryError(f"{path} reports ABI {found} but lacks {', '.join(missing)}")
        self.abi_version = found

    def __repr__(self) -> str:
        return f"<dsv3.Library {self.path!r} abi {self.abi_version}>"

    def err_name(self, code: int) -> str:
        return self.dsv3_err_name(code).decode("utf-8", "replace")

    def strerror(self, code: int) -> str:
        return self.dsv3_strerror(code).decode("utf-8", "replace")


_cache: Dict[str, Library] = {}
_cache_lock = threading.Lock()


def _candidates() -> list:
    env = os.environ.get("DSV3_LIBRARY")
    if env:
        return [env]
    names = [f"libdsv3.so.{EXPECTED_ABI}"]  # the system loader, exact ABI first
    found = ctypes.util.find_library("dsv3")
    if found and found not in names:
        names.append(found)
    return names


def load_library(path: Optional[Union[str, "os.PathLike[str]"]] = None) -> Library:
    """Load libdsv3 and check that its ABI is the one this binding was written for.

    The library is found, in this order, at ``path``, at the environment
    variable ``DSV3_LIBRARY``, or by the system loader as
    ``libdsv3.so.<ABI>`` (then ``ctypes.util.find_library("dsv3")``).
    Loaded libraries are cached by path.

    Raises:
        LibraryError: not found or not libdsv3.
        AbiVersionError: the library has another ABI number.
    """
    names = [os.fspath(path)] if path is not None else _candidates()
    errors = []
    for name in names:
        with _cache_lock:
            lib = _cache.get(name)
            if lib is not None:
                return lib
            try:
                lib = Library(name)
            except AbiVersionError:
                raise
            except LibraryError as e:
                if len(names) == 1:
                    raise
                errors.append(str(e))
                continue
            _cache[name] = lib
            return lib
    raise LibraryError("libdsv3 not found (" + "; ".join(errors) + "); pass its path to "
                       "dsv3.load_library() or set DSV3_LIBRARY")
