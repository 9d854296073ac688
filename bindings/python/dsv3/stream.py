"""Generation runs: one ``dsv3_generate`` call, synchronous or streamed.

A stream runs ``dsv3_generate`` on a worker thread. The token callback puts
:class:`Token` objects on a queue (a ``queue.SimpleQueue``, or an
``asyncio.Queue`` fed through ``loop.call_soon_threadsafe``); the consumer
iterates over the queue. At most BUFFER tokens wait there: then the
callback waits for the consumer, so generation follows its pace. Stopping early sets a flag that the callback sees
and calls ``dsv3_context_cancel``, then waits for the worker to finish, so
the context is free again when ``close()`` returns.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import queue
import threading
import weakref
from ctypes import byref, sizeof
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, List, NamedTuple, Optional, Sequence, Tuple

from . import _ffi
from ._enums import GenerateFlags, Status, StopReason
from ._ffi import Library
from ._handle import enum_or_int, i32, make_error, raise_for
from .errors import Dsv3Error

if TYPE_CHECKING:
    from .context import Context
    from .sampler import Sampler

__all__ = ["Token", "GenerationResult", "TokenStream", "AsyncTokenStream"]


class Token(NamedTuple):
    """One generated token.

    ``text`` is the new complete UTF-8 text it adds; it may be empty while a
    character or a possible stop string is incomplete.
    """

    id: int
    index: int
    text: str


@dataclass(frozen=True)
class GenerationResult:
    """What a generation did (``dsv3_generate_result`` plus the tokens and text)."""

    tokens: List[int]
    text: str
    stop_reason: StopReason
    n_prompt: int
    n_generated: int
    prompt_seconds: float
    generate_seconds: float
    n_drafted: int = 0
    n_accepted: int = 0


def generation_params(lib: Library, max_tokens: int, stop: Sequence[str], ignore_eos: bool,
                      show_special: bool) -> Tuple[Any, Any]:
    """Fill dsv3_generate_params; returns (params, objects to keep alive)."""
    p = _ffi.GenerateParams()
    raise_for(lib, lib.dsv3_generate_params_init(byref(p), sizeof(p)))
    if isinstance(stop, (str, bytes)):
        raise TypeError("stop must be a sequence of strings, not a single string")
    enc = []
    for s in stop:
        if not isinstance(s, str):
            raise TypeError(f"stop strings must be str, not {type(s).__name__}")
        b = s.encode("utf-8")
        if b"\0" in b or not b:
            raise ValueError("stop strings must be non-empty and contain no NUL character")
        enc.append(b)
    arr = (ctypes.c_char_p * max(len(enc), 1))(*enc)
    mt = i32("max_tokens", max_tokens)
    if mt < 0:
        raise ValueError("max_tokens must be >= 0 (0: until the context is full)")
    p.max_tokens = mt
    p.n_stop = len(enc)
    p.stop = ctypes.cast(arr, ctypes.POINTER(ctypes.c_char_p)) if enc else None
    p.flags = int((GenerateFlags.IGNORE_EOS if ignore_eos else 0)
                  | (GenerateFlags.SHOW_SPECIAL if show_special else 0))
    return p, (arr, enc)


_live: "weakref.WeakSet[Generation]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:  # do not leave worker threads inside the library at exit
    for g in list(_live):
        if g.thread is not None:
            _stop_and_join(g, g.thread)


class Generation:
    """One dsv3_generate call. Holds the context and the sampler exclusively
    from construction until :meth:`finish`."""

    def __init__(self, ctx: "Context", sampler: "Sampler", own_sampler: bool, tokens: Any,
                 params: Any, keep: Any) -> None:
        if sampler._lib is not ctx._lib:
            raise ValueError("the sampler and the context come from different libdsv3 copies")
        self._lib: Library = ctx._lib
        self.ctx = ctx
        self.sampler = sampler
        self.own_sampler = own_sampler
        self.prompt = tokens
        self.params = params
        self._keep = keep
        #: called with each Token on the generating thread; a true return stops.
        self.sink: Callable[[Token], Any] = lambda tok: None
        self.thread: Optional[threading.Thread] = None
        self.error: Optional[BaseException] = None
        self.tokens: List[int] = []
        self.texts: List[str] = []
        self.raw = _ffi.GenerateResult()
        self.raw.struct_size = sizeof(self.raw)
        self.rc = 0
        self.errmsg = b""
        self._lock = threading.Lock()
        self._running = False
        self._stop = False
        self._user_cancel = False
        self._finished = False
        self._ctx_ptr = ctx._owner.acquire()  # type: ignore[union-attr]
        try:
            self._smp_ptr = sampler._owner.acquire()  # type: ignore[union-attr]
        except BaseException:
            ctx._owner.release()  # type: ignore[union-attr]
            raise
        ctx._active = self
        self._cb = _ffi.TOKEN_FN(self._on_token)
        _live.add(self)

    @property
    def stop_requested(self) -> bool:
        return self._stop

    def request_stop(self, user_cancel: bool = False) -> None:
        """Stop the run (any thread). user_cancel: report it as CanceledError."""
        with self._lock:
            self._stop = True
            if user_cancel:
                self._user_cancel = True
            if self._running:
                self._lib.dsv3_context_cancel(self._ctx_ptr)

    def _on_token(self, ev_p: Any, _ud: Any) -> int:
        if self._stop:
            return 1
        try:
            ev = ev_p.contents
            n = int(ev.text_len)
            text = ctypes.string_at(ev.text, n).decode("utf-8") if n else ""
            tok = Token(int(ev.token), int(ev.index), text)
            self.tokens.append(tok.id)
            self.texts.append(text)
            if self.sink(tok):
                self._stop = True
        except BaseException as e:  # incl. KeyboardInterrupt: stop, re-raise later
            if self.error is None:
                self.error = e
            self._stop = True
        return 1 if self._stop else 0

    def run(self) -> None:
        """Make the C call (on the generating thread)."""
        lib = self._lib
        with self._lock:
            if self._stop:
                self.rc = int(Status.E_CANCELED)
                return
            self._running = True
        try:
            self.rc = lib.dsv3_generate(self._ctx_ptr, self._smp_ptr, self.prompt,
                                        len(self.prompt), byref(self.params), self._cb, None,
                                        byref(self.raw))
        finally:
            with self._lock:
                self._running = False
        if self.rc < 0:
            self.errmsg = lib.dsv3_context_errmsg(self._ctx_ptr) or b""

    def finish(self) -> None:
        """Give the context and the sampler back (once)."""
        if self._finished:
            return
        self._finished = True
        _live.discard(self)
        if self.ctx._active is self:
            self.ctx._active = None
        self.ctx._owner.release()  # type: ignore[union-attr]
        self.sampler._owner.release()  # type: ignore[union-attr]
        if self.own_sampler:
            self.sampler.close()

    def result(self) -> GenerationResult:
        r = self.raw
        return GenerationResult(
            tokens=list(self.tokens), text="".join(self.texts),
            stop_reason=enum_or_int(StopReason, r.stop_reason), n_prompt=r.n_prompt,
            n_generated=r.n_generated, prompt_seconds=r.prompt_seconds,
            generate_seconds=r.generate_seconds, n_drafted=r.n_drafted,
            n_accepted=r.n_accepted)

    def outcome(self) -> GenerationResult:
        """The result, or raise what went wrong (with ``.result`` attached)."""
        res = self.result()
        if self.error is not None:
            raise self.error
        rc = self.rc
        canceled = rc == Status.E_CANCELED or res.stop_reason in (StopReason.CALLBACK,
                                                                   StopReason.CANCELED)
        if self._user_cancel and canceled:
            err: Dsv3Error = make_error(self._lib, int(Status.E_CANCELED),
                                        self.errmsg.decode("utf-8", "replace")
                                        or "generation canceled")
            err.result = res  # type: ignore[attr-defined]
            raise err
        if rc < 0:
            if rc == Status.E_CANCELED and self._stop:
                return res  # stopped by its consumer (break, close)
            err = make_error(self._lib, rc, self.errmsg.decode("utf-8", "replace"))
            err.result = res  # type: ignore[attr-defined]
            raise err
        return res


_DONE = object()


def _work(gen: Generation, done: Callable[[Any], None]) -> None:
    try:
        gen.run()
    except BaseException as e:  # pragma: no cover - ctypes call itself failed
        if gen.error is None:
            gen.error = e
    finally:
        gen.finish()
        done(_DONE)


def _start_thread(gen: Generation, done: Callable[[Any], None]) -> threading.Thread:
    t = threading.Thread(target=_work, args=(gen, done), name="dsv3-generate", daemon=True)
    gen.thread = t
    try:
        t.start()
    except BaseException:
        gen.finish()
        raise
    return t


_RESEND = 0.05
#: Tokens a stream may run ahead of its consumer (then the generation waits).
BUFFER = 16


def _bounded(gen: Generation, put: Callable[[Any], None]) -> Tuple[Callable[[Token], bool],
                                                                    threading.Semaphore]:
    """A sink that blocks the generating thread while BUFFER tokens wait to
    be consumed, so that a slow consumer slows the generation down and the
    cache does not run far ahead of what was read. It gives up (stopping the
    generation) once a stop is requested."""
    slots = threading.Semaphore(BUFFER)

    def sink(tok: Token) -> bool:
        while not slots.acquire(timeout=0.02):
            if gen.stop_requested:
                return True
        put(tok)
        return False
    return sink, slots


def _stop_and_join(gen: Generation, thread: threading.Thread) -> None:
    """Stop a run and wait for its worker.

    A cancel that reaches the context just before dsv3_generate starts is
    forgotten by the library, so it is sent again until the worker is done.
    """
    if thread is threading.current_thread():
        gen.request_stop()
        return
    while thread.is_alive():
        gen.request_stop()
        thread.join(_RESEND)


class TokenStream:
    """Iterator over the tokens of a generation running on a worker thread.

    ``for tok in stream`` yields :class:`Token` objects; at the end
    :attr:`result` holds the :class:`GenerationResult`. Errors of the
    generation are raised from the loop. Leaving the loop early (``break``
    drops the stream), :meth:`close` or ``with`` stop the generation and wait
    for the worker, so the context is free again afterwards.
    """

    def __init__(self, gen: Generation) -> None:
        self._gen = gen
        self._done = False
        self._result: Optional[GenerationResult] = None
        q: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._queue = q
        gen.sink, self._slots = _bounded(gen, q.put)  # the worker never references self
        self._thread = _start_thread(gen, q.put)

    def __iter__(self) -> "TokenStream":
        return self

    def __next__(self) -> Token:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is not _DONE:
            self._slots.release()
            return item
        self._thread.join()
        self._done = True
        try:
            self._result = self._gen.outcome()
        except Dsv3Error as e:
            self._result = getattr(e, "result", None)
            raise
        raise StopIteration

    @property
    def result(self) -> Optional[GenerationResult]:
        """The :class:`GenerationResult` once the stream has ended, else None."""
        return self._result

    def cancel(self) -> None:
        """Cancel from any thread: the loop ends with :class:`CanceledError`."""
        self._gen.request_stop(user_cancel=True)

    def close(self) -> None:
        """Stop the generation quietly and wait for the worker (idempotent)."""
        if self._done:
            return
        _stop_and_join(self._gen, self._thread)
        self._done = True
        self._result = self._gen.result()

    def __enter__(self) -> "TokenStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class AsyncTokenStream:
    """Async iterator over the tokens of a generation (asyncio).

    The worker thread hands each token to the event loop with
    ``loop.call_soon_threadsafe``. ``async for tok in stream`` yields
    :class:`Token` objects; cancelling the consuming task, ``break``,
    :meth:`aclose` or ``async with`` stop the generation.
    """

    def __init__(self, gen: Generation) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            gen.finish()
            raise RuntimeError("astream() needs a running asyncio event loop; call it "
                               "inside a coroutine") from None
        self._gen = gen
        self._done = False
        self._result: Optional[GenerationResult] = None
        q: "asyncio.Queue[Any]" = asyncio.Queue()
        self._queue = q

        def put(item: Any) -> None:  # raises RuntimeError once the loop is closed: stops
            loop.call_soon_threadsafe(q.put_nowait, item)

        def put_done(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(q.put_nowait, item)
            except RuntimeError:
                pass

        gen.sink, self._slots = _bounded(gen, put)
        self._thread = _start_thread(gen, put_done)

    def __aiter__(self) -> "AsyncTokenStream":
        return self

    async def __anext__(self) -> Token:
        if self._done:
            raise StopAsyncIteration
        try:
            item = await self._queue.get()
        except BaseException:  # the task was cancelled: cancel the generation
            self._gen.request_stop()
            raise
        if item is not _DONE:
            self._slots.release()
            return item
        self._thread.join()
        self._done = True
        try:
            self._result = self._gen.outcome()
        except Dsv3Error as e:
            self._result = getattr(e, "result", None)
            raise
        raise StopAsyncIteration

    @property
    def result(self) -> Optional[GenerationResult]:
        """The :class:`GenerationResult` once the stream has ended, else None."""
        return self._result

    def cancel(self) -> None:
        """Cancel from any thread: the loop ends with :class:`CanceledError`."""
        self._gen.request_stop(user_cancel=True)

    async def aclose(self) -> None:
        """Stop the generation quietly and wait for the worker without blocking the loop."""
        if self._done:
            return
        self._gen.request_stop()
        while True:
            try:
                if (await asyncio.wait_for(self._queue.get(), _RESEND)) is _DONE:
                    break
            except asyncio.TimeoutError:
                self._gen.request_stop()  # see _stop_and_join
        self._thread.join()
        self._done = True
        self._result = self._gen.result()

    async def __aenter__(self) -> "AsyncTokenStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def __del__(self) -> None:
        try:
            if not self._done:
                _stop_and_join(self._gen, self._thread)
        except Exception:
            pass
