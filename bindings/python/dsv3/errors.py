"""Exceptions raised by the dsv3 binding.

Every failed libdsv3 call raises a :class:`Dsv3Error` subclass chosen by its
status code. The exception carries the numeric ``code``, its C ``name``
(from ``dsv3_err_name``, e.g. ``"DSV3_E_IO"``) and the ``message`` the handle
recorded (``dsv3_model_errmsg`` ...), or ``dsv3_strerror``'s text when the
handle had none.

Problems with the shared library itself (not found, not libdsv3, another
ABI) raise :class:`LibraryError` / :class:`AbiVersionError`.
"""

from __future__ import annotations

from typing import Dict, Optional, Type

from ._enums import Status

__all__ = [
    "Dsv3Error", "InvalidArgumentError", "OutOfMemoryError", "InputOutputError",
    "FormatError", "ChecksumError", "VersionError", "UnsupportedError",
    "NoDeviceError", "BackendError", "BufferTooSmallError", "ContextFullError",
    "CanceledError", "BusyError", "MisuseError", "InternalError",
    "OutOfRangeError", "Utf8Error", "LibraryError", "AbiVersionError",
    "error_class",
]


class Dsv3Error(Exception):
    """A libdsv3 call failed.

    Attributes:
        code: the negative status code (compare with :class:`dsv3.Status`).
        name: the code's C name, e.g. ``"DSV3_E_INVAL"``.
        message: the handle's message for the failed call.
    """

    #: The status code of this class; None for the base class.
    status: Optional[Status] = None

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}" if message else name)
        self.code = int(code)
        self.name = name
        self.message = message

    def __reduce__(self):  # keep pickling (multiprocessing) working
        return (type(self), (self.code, self.name, self.message))


class InvalidArgumentError(Dsv3Error, ValueError):
    """DSV3_E_INVAL: an argument was rejected."""

    status = Status.E_INVAL


class OutOfMemoryError(Dsv3Error, MemoryError):
    """DSV3_E_NOMEM."""

    status = Status.E_NOMEM


class InputOutputError(Dsv3Error, OSError):
    """DSV3_E_IO: reading or writing a file failed."""

    status = Status.E_IO


class FormatError(Dsv3Error):
    """DSV3_E_FORMAT: malformed or unsupported file contents."""

    status = Status.E_FORMAT


class ChecksumError(Dsv3Error):
    """DSV3_E_CHECKSUM."""

    status = Status.E_CHECKSUM


class VersionError(Dsv3Error):
    """DSV3_E_VERSION: unsupported format or ABI version."""

    status = Status.E_VERSION


class UnsupportedError(Dsv3Error):
    """DSV3_E_UNSUPPORTED: the operation or value is not supported (by this build)."""

    status = Status.E_UNSUPPORTED


class NoDeviceError(Dsv3Error):
    """DSV3_E_NODEV: no such device or backend."""

    status = Status.E_NODEV


class BackendError(Dsv3Error):
    """DSV3_E_BACKEND."""

    status = Status.E_BACKEND


class BufferTooSmallError(Dsv3Error):
    """DSV3_E_NOSPC (the binding sizes buffers itself; seen only on races)."""

    status = Status.E_NOSPC


class ContextFullError(Dsv3Error):
    """DSV3_E_CTX_FULL: the tokens do not fit into the context."""

    status = Status.E_CTX_FULL


class CanceledError(Dsv3Error):
    """DSV3_E_CANCELED: the operation was canceled."""

    status = Status.E_CANCELED


class BusyError(Dsv3Error):
    """DSV3_E_BUSY: the handle is in use by another call (e.g. a running stream)."""

    status = Status.E_BUSY


class MisuseError(Dsv3Error):
    """DSV3_E_MISUSE."""

    status = Status.E_MISUSE


class InternalError(Dsv3Error):
    """DSV3_E_INTERNAL."""

    status = Status.E_INTERNAL


class OutOfRangeError(Dsv3Error, ValueError):
    """DSV3_E_RANGE: a value (token id, row ...) is out of range."""

    status = Status.E_RANGE


class Utf8Error(Dsv3Error, ValueError):
    """DSV3_E_UTF8: the text is not valid UTF-8."""

    status = Status.E_UTF8


_BY_CODE: Dict[int, Type[Dsv3Error]] = {
    int(cls.status): cls
    for cls in (InvalidArgumentError, OutOfMemoryError, InputOutputError, FormatError,
                ChecksumError, VersionError, UnsupportedError, NoDeviceError, BackendError,
                BufferTooSmallError, ContextFullError, CanceledError, BusyError, MisuseError,
                InternalError, OutOfRangeError, Utf8Error)
    if cls.status is not None
}


def error_class(code: int) -> Type[Dsv3Error]:
    """The exception class for a status code (:class:`Dsv3Error` for unknown codes)."""
    return _BY_CODE.get(int(code), Dsv3Error)


class LibraryError(OSError):
    """The libdsv3 shared library could not be found or is not usable."""


class AbiVersionError(LibraryError):
    """The libdsv3 found has another ABI number than this binding was written for.

    Attributes:
        path: the library that was loaded.
        expected: the ABI number this binding needs.
        found: what the library's ``dsv3_abi_version()`` returned.
    """

    def __init__(self, path: str, expected: int, found: int) -> None:
        super().__init__(
            f"{path} has libdsv3 ABI {found}, but this dsv3 binding was written for ABI "
            f"{expected}; install a libdsv3.so.{expected} or a binding matching ABI {found} "
            f"(set DSV3_LIBRARY to choose the library)")
        self.path = path
        self.expected = expected
        self.found = found
