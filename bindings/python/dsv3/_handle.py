"""Shared plumbing: argument checks, error raising and handle ownership."""

from __future__ import annotations

import math
import operator
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Type, TypeVar

from ._enums import Status
from ._ffi import Library
from .errors import Dsv3Error, error_class

_FLT_MAX = 3.4028234663852886e38

E = TypeVar("E")


def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    """Return value as int, or raise TypeError/ValueError (ctypes would truncate silently)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None
    if not lo <= v <= hi:
        raise ValueError(f"{name}={v} is out of range [{lo}, {hi}]")
    return v


def i32(name: str, value: Any) -> int:
    return check_int(name, value, -(1 << 31), (1 << 31) - 1)


def i64(name: str, value: Any) -> int:
    return check_int(name, value, -(1 << 63), (1 << 63) - 1)


def u32(name: str, value: Any) -> int:
    return check_int(name, value, 0, (1 << 32) - 1)


def u64(name: str, value: Any) -> int:
    return check_int(name, value, 0, (1 << 64) - 1)


def f32(name: str, value: Any) -> float:
    """Return value as float; NaN passes (the library rejects it), overflow does not."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, not bool")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}") from None
    if math.isfinite(v) and abs(v) > _FLT_MAX:
        raise ValueError(f"{name}={v} does not fit a 32-bit float")
    return v


def enum_arg(cls: Type[E], name: str, value: Any) -> E:
    """Accept an enum member, its int value or its name (case-insensitive)."""
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        try:
            return cls[value.upper()]  # type: ignore[index]
        except KeyError:
            pass
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            return cls(value)  # type: ignore[call-arg]
        except ValueError:
            pass
    choices = ", ".join(m.name.lower() for m in cls)  # type: ignore[attr-defined]
    raise ValueError(f"{name}={value!r} is not one of: {choices}")


def enum_or_int(cls: Type[E], value: int) -> Any:
    """Convert a value coming from C; unknown (newer) values stay plain ints."""
    try:
        return cls(value)  # type: ignore[call-arg]
    except ValueError:
        return value


def make_error(lib: Library, code: int, message: str) -> Dsv3Error:
    """Build the exception for a status code with the library's name for it."""
    if not message:
        message = lib.strerror(code)
    return error_class(code)(code, lib.err_name(code), message)


def raise_for(lib: Library, rc: int, errmsg: Optional[Callable[[], bytes]] = None) -> None:
    """Raise the exception for a failed call; errmsg reads the handle's message."""
    if rc >= 0:
        return
    msg = b""
    if errmsg is not None:
        msg = errmsg() or b""
    raise make_error(lib, rc, msg.decode("utf-8", "replace"))


class Owner:
    """Owns one C handle and frees it once closed and no call is using it.

    Calls take the handle with :meth:`use`; an exclusive owner (context,
    sampler: "serialize per handle") refuses a second concurrent user with
    :class:`dsv3.BusyError` instead of racing in C. :meth:`close` can be
    called at any time, from any thread (also from inside a callback): the
    free is deferred until the running call releases the handle.
    """

    __slots__ = ("_ptr", "_free", "_kind", "_exclusive", "_users", "_closing", "_lock", "_lib")

    def __init__(self, lib: Library, ptr: int, free: Callable[[int], None], kind: str,
                 exclusive: bool) -> None:
        self._lib = lib
        self._ptr: Optional[int] = ptr
        self._free = free
        self._kind = kind
        self._exclusive = exclusive
        self._users = 0
        self._closing = False
        self._lock = threading.Lock()

    @property
    def closed(self) -> bool:
        return self._closing

    def acquire(self) -> int:
        with self._lock:
            if self._closing or self._ptr is None:
                raise ValueError(f"operation on a closed {self._kind}")
            if self._exclusive and self._users:
                code = int(Status.E_BUSY)
                raise error_class(code)(
                    code, self._lib.err_name(code),
                    f"the {self._kind} is in use by another call (a running generation or "
                    f"another thread); one call at a time per {self._kind}")
            self._users += 1
            return self._ptr

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._closing and self._users == 0:
                self._free_locked()

    @contextmanager
    def use(self) -> Iterator[int]:
        ptr = self.acquire()
        try:
            yield ptr
        finally:
            self.release()

    def with_ptr(self, fn: Callable[[int], Any]) -> None:
        """Call fn(ptr) while the handle is guaranteed not to be freed (for cancel)."""
        with self._lock:
            if self._ptr is not None:
                fn(self._ptr)

    def close(self) -> None:
        with self._lock:
            self._closing = True
            if self._users == 0:
                self._free_locked()

    def _free_locked(self) -> None:
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            self._free(ptr)
