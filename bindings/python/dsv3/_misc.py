"""Library-wide queries and checkpoint conversion."""

from __future__ import annotations

import ctypes
import os
from ctypes import byref, sizeof
from typing import Optional, Union

from . import _ffi
from ._enums import Backend, DType, LogLevel
from ._handle import enum_arg, i32, make_error, raise_for, u64
from .model import (LibraryArg, LogCallback, ProgressCallback, _ProgressBridge,
                    make_log_bridge, resolve_library)

__all__ = ["version", "version_string", "abi_version", "build_info", "backend_name",
           "backend_available", "strerror", "err_name", "convert"]


def version(library: LibraryArg = None) -> int:
    """The linked library's version as major*10000 + minor*100 + patch."""
    return int(resolve_library(library).dsv3_version())


def version_string(library: LibraryArg = None) -> str:
    """The linked library's version, e.g. "0.1.0"."""
    return resolve_library(library).dsv3_version_string().decode()


def abi_version(library: LibraryArg = None) -> int:
    """The linked library's ABI number (equal to ``dsv3.EXPECTED_ABI`` once loaded)."""
    return int(resolve_library(library).dsv3_abi_version())


def build_info(library: LibraryArg = None) -> str:
    """One line describing what the library build contains."""
    return resolve_library(library).dsv3_build_info().decode("utf-8", "replace")


def backend_name(backend: Union[Backend, int], library: LibraryArg = None) -> Optional[str]:
    """Name of a backend id ("cpu", "cuda"), or None for an unknown id."""
    name = resolve_library(library).dsv3_backend_name(i32("backend", backend))
    return name.decode() if name is not None else None


def backend_available(backend: Union[Backend, str, int], library: LibraryArg = None) -> bool:
    """Whether a backend is compiled in and usable on this machine."""
    b = enum_arg(Backend, "backend", backend)
    return bool(resolve_library(library).dsv3_backend_available(int(b)))


def strerror(code: int, library: LibraryArg = None) -> str:
    """The library's description of a status code."""
    return resolve_library(library).strerror(i32("code", code))


def err_name(code: int, library: LibraryArg = None) -> str:
    """The library's name of a status code, e.g. "DSV3_E_NOMEM"."""
    return resolve_library(library).err_name(i32("code", code))


def convert(hf_dir: Union[str, "os.PathLike[str]"], out_dir: Union[str, "os.PathLike[str]"], *,
            weights: Union[DType, str, int] = DType.DEFAULT, level: int = 0,
            shard_size: int = 0, n_threads: int = 0, log: Optional[LogCallback] = None,
            log_level: Optional[Union[LogLevel, str, int]] = None,
            progress: Optional[ProgressCallback] = None, library: LibraryArg = None) -> None:
    """Convert a Hugging Face DeepSeek checkpoint directory into a libdsv3 model.

    Args:
        hf_dir: directory with config.json, safetensors and tokenizer files.
        out_dir: the model directory to write.
        weights: element type of matrices (``DType.DEFAULT``: as stored).
        level: zstd level (0: 3; -1: uncompressed shards).
        shard_size: bytes per shard (0: 2 GiB).
        n_threads: compression threads (0: number of CPUs).
        log, log_level, progress: as for :class:`dsv3.Model`.
    """
    lib = resolve_library(library)
    p = _ffi.ConvertParams()
    raise_for(lib, lib.dsv3_convert_params_init(byref(p), sizeof(p)))
    p.weights = enum_arg(DType, "weights", weights)
    p.level = i32("level", level)
    p.shard_size = u64("shard_size", shard_size)
    p.n_threads = i32("n_threads", n_threads)
    if log_level is not None:
        p.log_level = enum_arg(LogLevel, "log_level", log_level)
    log_cb = make_log_bridge(log) if log is not None else None
    if log_cb is not None:
        p.log_fn = log_cb
    bridge = _ProgressBridge(progress) if progress is not None else None
    if bridge is not None:
        p.progress_fn = bridge.cfunc
    src, dst = os.fsencode(hf_dir), os.fsencode(out_dir)
    if b"\0" in src or b"\0" in dst:
        raise ValueError("path contains a NUL character")
    errbuf = ctypes.create_string_buffer(1024)
    rc = lib.dsv3_convert(src, dst, byref(p), ctypes.cast(errbuf, ctypes.POINTER(ctypes.c_char)),
                          len(errbuf))
    if rc < 0:
        err = make_error(lib, rc, errbuf.value.decode("utf-8", "replace"))
        if bridge is not None and bridge.error is not None:
            raise bridge.error from err
        raise err

