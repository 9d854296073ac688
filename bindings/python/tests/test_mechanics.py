"""What the binding itself does, against the scripted fake library.

bindings/testdata/fake_dsv3.c implements the C API with predictable
behaviour (byte tokenizer, letters 'a', 'b', ... as generated tokens, one
every 2 ms, real cancellation and busy flags), so buffer sizing, callbacks,
worker threads, cancellation, asyncio and handle lifetimes are tested here
without a model. The same scenarios against a real model are in test_model.py.
"""

from __future__ import annotations

import asyncio
import gc
import math
import threading
import time
from pathlib import Path

import pytest

import dsv3
from dsv3 import Status, StopReason

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def test_load_errors_carry_code_name_message(fake_lib, tmp_path: Path, live) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(dsv3.InputOutputError) as ei:
        dsv3.Model(missing, library=fake_lib)
    e = ei.value
    assert (e.code, e.name) == (Status.E_IO, "DSV3_E_IO")
    assert str(missing) in e.message and "No such file" in e.message
    assert live() == 0  # the failed handle was freed


def test_progress_and_log_callbacks(fake_lib, tmp_path: Path, live) -> None:
    events, logs = [], []
    with dsv3.Model(tmp_path, library=fake_lib, log_level="info",
                    log=lambda lvl, msg: logs.append((lvl, msg)),
                    progress=lambda st, d, t: events.append((st, d, t))) as m:
        assert events == [(dsv3.ProgressStage.LOAD, i * 100, 300) for i in range(4)]
        assert logs == [(dsv3.LogLevel.INFO, "fake model loaded")]
        assert live() == 1
        assert not m.closed
    assert m.closed and live() == 0


def test_progress_cancel_and_exception(fake_lib, tmp_path: Path, live) -> None:
    with pytest.raises(dsv3.CanceledError, match="canceled"):
        dsv3.Model(tmp_path, library=fake_lib, progress=lambda st, d, t: d < 100)

    def boom(st, d, t):
        raise KeyError("from the callback")
    with pytest.raises(KeyError) as ei:
        dsv3.Model(tmp_path, library=fake_lib, progress=boom)
    assert isinstance(ei.value.__cause__, dsv3.CanceledError)
    assert live() == 0


def test_info(fake_model) -> None:
    info = fake_model.info
    assert (info.vocab_size, info.bos_token, info.eos_token) == (258, 256, 257)
    assert info.has_tokenizer and info.has_chat_template and not info.has_mtp
    assert info.backend is dsv3.Backend.CPU and info.weight_dtype is dsv3.DType.F32
    assert fake_model.info is info  # read once


def test_text_round_trip(fake_model) -> None:
    text = "héllo, 世界 🙂"
    toks = fake_model.tokenize(text)
    assert toks == list(text.encode())
    assert fake_model.tokenize(text, add_bos=True) == [256] + toks
    assert fake_model.detokenize(toks) == text
    assert fake_model.tokenize("<s>x") == [256, ord("x")]
    assert fake_model.tokenize("<s>x", special=False) == list(b"<s>x")
    assert fake_model.detokenize([256, 104, 257], skip_special=True) == "h"
    assert fake_model.detokenize_bytes(toks[:2]) == "h\u00e9".encode()[:2]
    with pytest.raises(UnicodeDecodeError):
        fake_model.detokenize(toks[:2])
    assert fake_model.detokenize(toks[:2], errors="replace") == "h\ufffd"
    assert fake_model.token_bytes(0xC3) == b"\xc3" and fake_model.token_bytes(257) == b"</s>"
    assert fake_model.tokenize("") == [] and fake_model.detokenize([]) == ""


def test_text_errors(fake_model) -> None:
    with pytest.raises(dsv3.Utf8Error) as ei:
        fake_model.tokenize(b"ok\xff")
    assert ei.value.message == "text is not valid UTF-8"
    with pytest.raises(dsv3.OutOfRangeError, match="vocabulary"):
        fake_model.detokenize([1, 999])
    with pytest.raises(ValueError, match=r"tokens\[1\]"):
        fake_model.detokenize([1, 1 << 40])  # ctypes would truncate this to 0
    with pytest.raises(UnicodeEncodeError):
        fake_model.tokenize("\udcff")


def test_chat_template(fake_model) -> None:
    msgs = [dsv3.Message("system", "be brief"), ("user", "hi"),
            {"role": "assistant", "content": "hello"}]
    out = fake_model.apply_chat_template(msgs)
    assert out == "<s>system: be brief\nuser: hi\nassistant: hello\nassistant: "
    assert fake_model.apply_chat_template(msgs[:1], add_generation_prompt=False) == \
        "<s>system: be brief\n"
    many = [("user", "")] * 200  # larger than the first buffer guess: E_NOSPC, retry
    assert fake_model.apply_chat_template(many) == "<s>" + "user: \n" * 200 + "assistant: "
    with pytest.raises(dsv3.InvalidArgumentError, match="role"):
        fake_model.apply_chat_template([("robot", "x")])
    with pytest.raises(ValueError, match="NUL"):
        fake_model.apply_chat_template([("user", "a\0b")])


def test_decode_logits_sample(fake_model) -> None:
    with fake_model.context(n_ctx=64) as ctx, dsv3.Sampler.greedy(library=ctx.model._lib) as s:
        ctx.decode([1, 2, 65])
        assert ctx.n_past == 3
        logits = ctx.logits()
        assert len(logits) == 258 and logits[66] == 1.0 and sum(logits) == 1.0
        assert s.sample(logits) == 66
        s.set_logit_bias(66, -math.inf)
        assert s.sample(logits) == 0
        with pytest.raises(dsv3.OutOfRangeError):
            ctx.logits(5)
        with pytest.raises(dsv3.ContextFullError):
            ctx.decode([1] * 100)
        ctx.truncate(1)
        assert ctx.n_past == 1
        with pytest.raises(dsv3.OutOfRangeError):
            ctx.truncate(9)


def test_params_and_state(fake_model) -> None:
    with fake_model.context(n_ctx=32, n_threads=3) as ctx:
        assert (ctx.n_ctx, ctx.n_threads) == (32, 3)
        ctx.n_threads = 5
        assert ctx.get_param(dsv3.ContextParam.N_THREADS) == 5
        with pytest.raises(dsv3.OutOfRangeError):
            ctx.n_threads = 0
        assert dsv3.param_bounds(dsv3.ContextParam.N_THREADS, library=ctx.model._lib) == (1, 1024)
        ctx.decode([7, 8])
        blob = ctx.save_state()
        ctx.clear()
        assert ctx.n_past == 0
        ctx.load_state(blob)
        assert ctx.n_past == 2
        with pytest.raises(dsv3.FormatError):
            ctx.load_state(b"nonsense")


def test_generate(fake_model) -> None:
    with fake_model.context() as ctx, dsv3.Sampler.greedy(library=ctx.model._lib) as s:
        r = ctx.generate("`", sampler=s, max_tokens=5)  # the fake continues "`" with "abc..."
        assert r.text == "abcde" and r.tokens == [ord(c) for c in "abcde"]
        assert (r.stop_reason, r.n_prompt, r.n_generated) == (StopReason.MAX_TOKENS, 2, 5)
        assert ctx.n_past == 7  # BOS + "`" + 5
        r = ctx.generate([], sampler=s)
        assert r.text == LETTERS[5:] and r.stop_reason is StopReason.EOS
        r = ctx.generate([96], sampler=s, stop=["d"])
        assert r.text == "abc" and r.stop_reason is StopReason.STRING
        seen = []
        r = ctx.generate([96], sampler=s, on_token=lambda t: seen.append(t) or len(seen) < 3)
        assert r.stop_reason is StopReason.CALLBACK and "".join(t.text for t in seen) == "abc"
        assert [t.index for t in seen] == [0, 1, 2]
        r = ctx.generate([96], sampler=s, max_tokens=28, ignore_eos=True, show_special=True)
        assert r.text == LETTERS + "</s>a"


def test_generate_argument_checks(fake_model) -> None:
    with fake_model.context() as ctx:
        with pytest.raises(TypeError, match="sequence"):
            ctx.generate([96], stop="abc")
        with pytest.raises(ValueError, match="max_tokens"):
            ctx.generate([96], max_tokens=-1)
        with pytest.raises(ValueError, match="prompt|tokens"):
            ctx.generate([1 << 33])
        assert ctx.generate([96], max_tokens=1).text == "a"  # still usable


def test_generate_callback_exception_propagates(fake_model) -> None:
    def bad(tok):
        raise RuntimeError("stop here")
    with fake_model.context() as ctx:
        with pytest.raises(RuntimeError, match="stop here"):
            ctx.generate([96], on_token=bad)
        assert ctx.generate([96], max_tokens=2).text == "ab"


def test_stream_matches_generate(fake_model) -> None:
    with fake_model.context() as ctx:
        stream = ctx.stream([96], max_tokens=10)
        toks = list(stream)
        assert "".join(t.text for t in toks) == "abcdefghij"
        assert stream.result.stop_reason is StopReason.MAX_TOKENS
        assert stream.result.tokens == [t.id for t in toks]
        assert threading.active_count() == 1 or all(
            t.name != "dsv3-generate" for t in threading.enumerate())


def test_stream_break_cancels(fake_model) -> None:
    with fake_model.context() as ctx:
        t0 = time.monotonic()
        for i, tok in enumerate(ctx.stream([96], ignore_eos=True)):  # unbounded otherwise
            if i == 2:
                break
        # the worker has stopped: the context is free again right away
        assert ctx.generate([96], max_tokens=1).text == "a"
        assert time.monotonic() - t0 < 2.0
        assert ctx.n_past < 100


def test_close_reaches_c_during_prefill(fake_model) -> None:
    # Token 255 makes the fake's prompt evaluation take 5 s unless canceled:
    # no token callback runs meanwhile, so only dsv3_context_cancel stops it.
    with fake_model.context() as ctx:
        for wait in (0.2, 0.0):  # 0: the cancel may come before the C call starts
            t0 = time.monotonic()
            st = ctx.stream([255])
            time.sleep(wait)
            st.close()
            assert time.monotonic() - t0 < wait + 2.0
            assert st.result.n_generated == 0
            if st.result.stop_reason is not StopReason.NONE:  # the C call had started
                assert st.result.stop_reason is StopReason.CANCELED


def _cancel_until(ctx, done: threading.Event) -> threading.Thread:
    """Cancel from another thread until done is set (a cancel that comes
    before a call starts is forgotten by the library)."""
    def loop():
        while not done.wait(0.01):
            ctx.cancel()
    t = threading.Thread(target=loop)
    t.start()
    return t


def test_cancel_decode_from_another_thread(fake_model) -> None:
    with fake_model.context() as ctx:
        done = threading.Event()
        t = _cancel_until(ctx, done)
        t0 = time.monotonic()
        try:
            with pytest.raises(dsv3.CanceledError, match="evaluation canceled"):
                ctx.decode([1, 255])
        finally:
            done.set()
            t.join()
        assert time.monotonic() - t0 < 2.0 and ctx.n_past == 0


def test_stream_backpressure(fake_model) -> None:
    # A slow consumer slows the generation down: it runs at most a buffer ahead.
    from dsv3.stream import BUFFER
    with fake_model.context() as ctx:
        with ctx.stream([96], ignore_eos=True) as st:
            next(st)
            time.sleep(0.3)  # the fake makes a token every 2 ms
        assert 1 <= st.result.n_generated <= BUFFER + 3

    async def main():
        with fake_model.context() as ctx:
            async with ctx.astream([96], ignore_eos=True) as ast:
                await ast.__anext__()
                await asyncio.sleep(0.3)
            return ast.result.n_generated
    assert 1 <= asyncio.run(main()) <= BUFFER + 3


def test_stream_close_and_with(fake_model) -> None:
    with fake_model.context() as ctx:
        with ctx.stream([96], ignore_eos=True) as st:
            first = next(st)
        assert first.text == "a"
        assert st.result is not None and st.result.n_generated < 1000
        assert list(st) == []  # closed streams are exhausted
        st.close()


def test_cancel_from_another_thread(fake_model) -> None:
    with fake_model.context() as ctx:
        got = []
        with pytest.raises(dsv3.CanceledError) as ei:
            for tok in ctx.stream([96], ignore_eos=True):
                got.append(tok)
                if len(got) == 2:
                    threading.Thread(target=ctx.cancel).start()
        assert ei.value.code == Status.E_CANCELED and ei.value.name == "DSV3_E_CANCELED"
        assert ei.value.result.n_generated >= len(got) >= 2
        # sync generate is canceled the same way

        def on_token(tok):
            t = threading.Thread(target=ctx.cancel)
            t.start()
            t.join()
        with pytest.raises(dsv3.CanceledError):
            ctx.generate([96], ignore_eos=True, on_token=on_token)
        assert ctx.generate([96], max_tokens=1).text == "a"


def test_stream_cancel_method(fake_model) -> None:
    with fake_model.context() as ctx:
        st = ctx.stream([96], ignore_eos=True)
        next(st)
        st.cancel()
        with pytest.raises(dsv3.CanceledError):
            for _ in st:
                pass


def test_busy_while_streaming(fake_model) -> None:
    with fake_model.context() as ctx, dsv3.Sampler(library=ctx.model._lib) as s:
        with ctx.stream([96], sampler=s, ignore_eos=True) as st:
            next(st)
            with pytest.raises(dsv3.BusyError) as ei:
                ctx.decode([1])
            assert ei.value.name == "DSV3_E_BUSY"
            with pytest.raises(dsv3.BusyError):
                s.sample([1.0, 2.0])  # the running generation holds the sampler
            with pytest.raises(dsv3.BusyError):
                ctx.stream([1])
        ctx.decode([1])
        assert s.sample([1.0, 2.0]) == 1


def test_close_context_during_stream(fake_model, live) -> None:
    ctx = fake_model.context()
    st = ctx.stream([96], ignore_eos=True)
    next(st)
    ctx.close()  # cancels; the handle is freed once the worker lets go
    rest = list(st)
    assert len(rest) < 1000 and st.result is not None
    assert ctx.closed
    with pytest.raises(ValueError, match="closed context"):
        ctx.decode([1])
    assert live() == 1  # only the model is left


def test_free_order_is_free(fake_lib, tmp_path: Path, live) -> None:
    logs = []
    model = dsv3.Model(tmp_path, library=fake_lib, log=lambda l, m: logs.append(m))
    ctx = model.context()
    model.close()
    assert live() == 2  # the context keeps the C model alive
    with pytest.raises(ValueError, match="closed model"):
        model.tokenize("x")
    assert ctx.generate([96], max_tokens=3).text == "abc"
    with pytest.raises(ValueError, match="closed model"):
        ctx.generate("text prompt")  # text needs the model's tokenizer
    ctx.close()
    assert live() == 0


def test_handles_freed_by_garbage_collection(fake_lib, tmp_path: Path, live) -> None:
    def make():
        m = dsv3.Model(tmp_path, library=fake_lib)
        c = m.context()
        s = dsv3.Sampler(library=fake_lib)
        st = c.stream([1], sampler=s, ignore_eos=True)
        next(st)
        return st
    make()  # dropped mid-stream: __del__ stops the worker, then everything is freed
    gc.collect()
    assert live() == 0


def test_sampler_failure_frees_handle(fake_lib, live) -> None:
    with pytest.raises(dsv3.InvalidArgumentError) as ei:
        dsv3.Sampler(temperature=math.nan, library=fake_lib)
    assert ei.value.message == "temperature must be a number >= 0"
    assert live() == 0


def test_asyncio_stream(fake_model) -> None:
    async def main():
        with fake_model.context() as ctx:
            ticks = 0

            async def ticker():  # the loop keeps running while tokens come
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.001)
            t = asyncio.ensure_future(ticker())
            st = ctx.astream([96], max_tokens=25)
            text = "".join([tok.text async for tok in st])
            t.cancel()
            assert text == "abcdefghijklmnopqrstuvwxy" and st.result.n_generated == 25
            assert ticks > 3
            async with ctx.astream([96], ignore_eos=True) as st2:
                async for tok in st2:
                    break
            assert st2.result is not None and st2.result.n_generated < 1000
            assert ctx.generate([96], max_tokens=1).text == "a"
    asyncio.run(main())


def test_asyncio_task_cancel(fake_model) -> None:
    async def consume(ctx, got):
        async for tok in ctx.astream([96], ignore_eos=True):
            got.append(tok)

    async def main():
        with fake_model.context() as ctx:
            got = []
            task = asyncio.ensure_future(consume(ctx, got))
            while len(got) < 3:
                await asyncio.sleep(0.005)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            gc.collect()
            # the generation stopped; the context is usable again
            for _ in range(200):
                try:
                    return ctx.generate([96], max_tokens=2).text
                except dsv3.BusyError:
                    await asyncio.sleep(0.005)
    assert asyncio.run(main()) == "ab"


def test_asyncio_cancel_raises(fake_model) -> None:
    async def main():
        with fake_model.context() as ctx:
            st = ctx.astream([96], ignore_eos=True)
            n = 0
            with pytest.raises(dsv3.CanceledError):
                async for _ in st:
                    n += 1
                    if n == 2:
                        ctx.cancel()
    asyncio.run(main())


def test_astream_needs_a_loop(fake_model) -> None:
    with fake_model.context() as ctx:
        with pytest.raises(RuntimeError, match="event loop"):
            ctx.astream([1])
        assert ctx.generate([96], max_tokens=1).text == "a"  # nothing left holding it
