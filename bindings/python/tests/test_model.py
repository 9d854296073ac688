"""End to end against the real library and a small model (DSV3_TEST_MODEL).

Skipped without DSV3_TEST_MODEL. Expected tokens come from the library's
own lower-level calls (decode + logits + argmax in Python), not from stored
output: greedy generation through dsv3_generate, the token stream and the
asyncio stream must all agree with that reference.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

import dsv3
from dsv3 import StopReason

N = 6  # tokens generated per check; keep the suite fast


def _prompt(model: dsv3.Model) -> list:
    if model.info.has_tokenizer:
        return model.tokenize("The quick brown fox", add_bos=True)
    v = model.info.vocab_size
    return [t % v for t in (1, 17, 42, 7)]


def _argmax(xs) -> int:
    return max(range(len(xs)), key=xs.__getitem__)


@pytest.fixture(scope="module")
def reference(model: dsv3.Model) -> list:
    """Greedy continuation computed with decode + logits + argmax."""
    prompt = _prompt(model)
    out = []
    with model.context(n_ctx=128) as ctx:
        ctx.decode(prompt)
        for _ in range(N):
            tok = _argmax(ctx.logits())
            out.append(tok)
            ctx.decode([tok])
    return out


def test_info(model: dsv3.Model) -> None:
    info = model.info
    assert info.vocab_size > 0 and info.n_layers > 0 and info.hidden_size > 0
    assert info.n_params > 0 and info.max_position > 0
    assert isinstance(info.backend, dsv3.Backend) and info.backend is not dsv3.Backend.AUTO


def test_progress_reports(model_path: str) -> None:
    seen = []
    with dsv3.Model(model_path, n_threads=2,
                    progress=lambda st, d, t: seen.append((st, d, t))) as m:
        assert m.info.vocab_size > 0
    assert seen and all(st is dsv3.ProgressStage.LOAD and d <= t for st, d, t in seen)
    assert seen[-1][1] == seen[-1][2]
    with pytest.raises(dsv3.CanceledError):
        dsv3.Model(model_path, progress=lambda st, d, t: False)


def test_tokenizer_round_trip(model: dsv3.Model) -> None:
    if not model.info.has_tokenizer:
        pytest.skip("the test model has no tokenizer")
    text = "Hello, world! héllo 日本語 🙂\n  tabs\tand spaces"
    toks = model.tokenize(text)
    assert toks and all(0 <= t < model.info.vocab_size for t in toks)
    assert model.detokenize(toks) == text
    bos = model.info.bos_token
    if bos is not None:
        assert model.tokenize(text, add_bos=True) == [bos] + toks
    assert b"".join(model.token_bytes(t) for t in toks) == text.encode()
    with pytest.raises(dsv3.Utf8Error):
        model.tokenize(b"bad \xff byte")
    with pytest.raises(dsv3.OutOfRangeError):
        model.detokenize([model.info.vocab_size])


def test_chat_template(model: dsv3.Model) -> None:
    if not model.info.has_chat_template:
        pytest.skip("the test model has no chat template")
    text = model.apply_chat_template([("system", "Be brief."), ("user", "Name a color.")])
    assert "Be brief." in text and "Name a color." in text
    assert text.index("Be brief.") < text.index("Name a color.")
    bos = model.info.bos_token
    if bos is not None and model.info.has_tokenizer:
        assert model.tokenize(text)[0] == bos
    with pytest.raises(dsv3.InvalidArgumentError):
        model.apply_chat_template([("wizard", "x")])


def test_greedy_generate_matches_reference(model: dsv3.Model, reference: list) -> None:
    with model.context(n_ctx=128) as ctx, dsv3.Sampler.greedy() as s:
        r = ctx.generate(_prompt(model), sampler=s, max_tokens=N, ignore_eos=True,
                         show_special=True)
        assert r.tokens == reference
        assert (r.stop_reason, r.n_generated) == (StopReason.MAX_TOKENS, N)
        assert r.n_prompt == len(_prompt(model))
        assert ctx.n_past == len(_prompt(model)) + N
        if model.info.has_tokenizer:
            assert r.text == model.detokenize(reference)


def test_stream_matches_reference(model: dsv3.Model, reference: list) -> None:
    with model.context(n_ctx=128) as ctx:
        st = ctx.stream(_prompt(model), sampler=dsv3.Sampler.greedy(), max_tokens=N,
                        ignore_eos=True)
        toks = list(st)
        assert [t.id for t in toks] == reference
        assert [t.index for t in toks] == list(range(N))
        assert st.result.tokens == reference


def test_asyncio_stream_matches_reference(model: dsv3.Model, reference: list) -> None:
    async def main():
        with model.context(n_ctx=128) as ctx:
            return [t.id async for t in ctx.astream(_prompt(model), max_tokens=N,
                                                    sampler=dsv3.Sampler.greedy(),
                                                    ignore_eos=True)]
    assert asyncio.run(main()) == reference


def _n_ctx(model: dsv3.Model) -> int:
    return min(4096, model.info.max_position)


def test_cancel_mid_generate(model: dsv3.Model, reference: list) -> None:
    # Deterministic: the cancel is made (on another thread) while the token
    # callback runs, so it reaches a running dsv3_generate.
    with model.context(n_ctx=_n_ctx(model)) as ctx:
        got = []

        def on_token(tok):
            got.append(tok.id)
            if len(got) == 2:
                t = threading.Thread(target=ctx.cancel)
                t.start()
                t.join()
        with pytest.raises(dsv3.CanceledError) as ei:
            ctx.generate(_prompt(model), sampler=dsv3.Sampler.greedy(), ignore_eos=True,
                         on_token=on_token)
        assert got == reference[:2]
        assert ei.value.result.tokens == got


def test_cancel_mid_stream(model: dsv3.Model, reference: list) -> None:
    with model.context(n_ctx=_n_ctx(model)) as ctx:
        got = []
        with pytest.raises(dsv3.CanceledError):
            for tok in ctx.stream(_prompt(model), sampler=dsv3.Sampler.greedy(),
                                  ignore_eos=True):
                got.append(tok.id)
                if len(got) == 1:
                    # the worker runs at most a small buffer ahead of this
                    # loop, so it is still generating
                    ctx.cancel()
        assert got[:1] == reference[:1]
        # the context is usable: start over and get the reference again
        ctx.clear()
        r = ctx.generate(_prompt(model), sampler=dsv3.Sampler.greedy(), max_tokens=N,
                         ignore_eos=True)
        assert r.tokens == reference


def test_break_frees_context(model: dsv3.Model, reference: list) -> None:
    with model.context(n_ctx=_n_ctx(model)) as ctx:
        for i, tok in enumerate(ctx.stream(_prompt(model), sampler=dsv3.Sampler.greedy(),
                                           ignore_eos=True)):
            if i == 1:
                break
        n = ctx.n_past  # no BusyError: the worker has stopped
        assert len(_prompt(model)) + 2 <= n <= _n_ctx(model)
        prompt = _prompt(model)
        ctx.truncate(len(prompt) - 1)  # roll back to before the last prompt token
        r = ctx.generate(prompt[-1:], sampler=dsv3.Sampler.greedy(), max_tokens=N,
                         ignore_eos=True)
        assert r.tokens == reference


def test_context_managers_and_free_order(model_path: str, reference: list) -> None:
    m = dsv3.Model(model_path, n_threads=2)
    prompt = _prompt(m)
    with m.context(n_ctx=64) as ctx:
        m.close()  # the context keeps the model alive in C
        assert m.closed
        r = ctx.generate(prompt, sampler=dsv3.Sampler.greedy(), max_tokens=2, ignore_eos=True)
        assert r.tokens == reference[:2]
    assert ctx.closed
    with pytest.raises(ValueError, match="closed"):
        ctx.n_past


def test_state_round_trip(model: dsv3.Model, reference: list) -> None:
    prompt = _prompt(model)
    with model.context(n_ctx=128) as a, model.context(n_ctx=128) as b:
        a.decode(prompt)
        b.load_state(a.save_state())
        assert b.n_past == len(prompt)
        assert _argmax(b.logits()) == reference[0]
