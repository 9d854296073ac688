"""Python binding of libdsv3, a C library that runs DeepSeek-V3-architecture models.

A thin ctypes layer over the stable C ABI (``include/dsv3.h``)::

    import dsv3

    with dsv3.Model("models/tiny") as model, model.context() as ctx:
        for tok in ctx.stream("Once upon a time", max_tokens=32,
                              sampler=dsv3.Sampler.greedy()):
            print(tok.text, end="", flush=True)

The shared library is found through ``dsv3.load_library(path)``, the
``DSV3_LIBRARY`` environment variable, or the system loader
(``libdsv3.so.<ABI>``); it must have the ABI number :data:`EXPECTED_ABI`.
"""

from ._enums import (Backend, ChatFlags, ContextFlags, ContextParam, DecodeFlags,
                     DetokenizeFlags, DType, GenerateFlags, LogLevel, ModelFlags,
                     ModelInfoFlags, Placement, ProgressStage, Status, StopReason,
                     TokenizeFlags)
from ._ffi import EXPECTED_ABI, Library, load_library
from ._misc import (abi_version, backend_available, backend_name, build_info, convert,
                    err_name, strerror, version, version_string)
from .context import Context, param_bounds
from .errors import (AbiVersionError, BackendError, BufferTooSmallError, BusyError,
                     CanceledError, ChecksumError, ContextFullError, Dsv3Error, FormatError,
                     InputOutputError, InternalError, InvalidArgumentError, LibraryError,
                     MisuseError, NoDeviceError, OutOfMemoryError, OutOfRangeError,
                     UnsupportedError, Utf8Error, VersionError, error_class)
from .model import Message, Model, ModelInfo
from .sampler import Sampler
from .stream import AsyncTokenStream, GenerationResult, Token, TokenStream

__version__ = "0.1.0"

__all__ = [
    "EXPECTED_ABI", "Library", "load_library",
    "version", "version_string", "abi_version", "build_info", "backend_name",
    "backend_available", "strerror", "err_name", "convert",
    "Model", "ModelInfo", "Message", "Context", "param_bounds", "Sampler",
    "Token", "GenerationResult", "TokenStream", "AsyncTokenStream",
    "Status", "LogLevel", "ProgressStage", "DType", "Backend", "ModelFlags", "Placement",
    "ModelInfoFlags", "TokenizeFlags", "DetokenizeFlags", "ChatFlags", "ContextFlags",
    "DecodeFlags", "ContextParam", "StopReason", "GenerateFlags",
    "Dsv3Error", "InvalidArgumentError", "OutOfMemoryError", "InputOutputError",
    "FormatError", "ChecksumError", "VersionError", "UnsupportedError", "NoDeviceError",
    "BackendError", "BufferTooSmallError", "ContextFullError", "CanceledError", "BusyError",
    "MisuseError", "InternalError", "OutOfRangeError", "Utf8Error", "LibraryError",
    "AbiVersionError", "error_class",
]
