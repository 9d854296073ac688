"""Error mapping and argument checks against the real library."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import pytest

import dsv3
from dsv3 import Status


def test_names_and_messages_come_from_c(lib: dsv3.Library) -> None:
    for code in Status:
        assert dsv3.err_name(code) == "DSV3_" + code.name
        assert dsv3.strerror(code)  # never empty
    assert dsv3.err_name(-1000) == "DSV3_E_UNKNOWN"
    assert dsv3.strerror(-1000) == "unknown error"


def test_error_classes_per_code() -> None:
    seen = set()
    for code in Status:
        if code == Status.OK:
            continue
        cls = dsv3.error_class(code)
        assert cls is not dsv3.Dsv3Error and issubclass(cls, dsv3.Dsv3Error)
        assert cls.status == code
        seen.add(cls)
    assert len(seen) == len(Status) - 1
    assert dsv3.error_class(-1000) is dsv3.Dsv3Error
    assert issubclass(dsv3.InvalidArgumentError, ValueError)
    assert issubclass(dsv3.OutOfMemoryError, MemoryError)
    assert issubclass(dsv3.InputOutputError, OSError)


def test_error_attributes_and_pickling() -> None:
    e = dsv3.error_class(-3)(-3, "DSV3_E_IO", "x: gone")
    assert (e.code, e.name, e.message) == (-3, "DSV3_E_IO", "x: gone")
    assert str(e) == "DSV3_E_IO: x: gone"
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is dsv3.InputOutputError and e2.message == "x: gone"


def test_model_load_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "no-such-model"
    with pytest.raises(dsv3.Dsv3Error) as ei:
        dsv3.Model(path)
    e = ei.value
    # Today's library has no loader (E_UNSUPPORTED); with one this is E_IO.
    assert e.code in (Status.E_IO, Status.E_UNSUPPORTED), e
    assert type(e) is dsv3.error_class(e.code)
    assert e.name == dsv3.err_name(e.code)
    assert str(path) in e.message


def test_model_arguments_are_checked_before_c(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_threads"):
        dsv3.Model(tmp_path, n_threads=1 << 40)
    with pytest.raises(TypeError, match="device"):
        dsv3.Model(tmp_path, device=1.5)
    with pytest.raises(ValueError, match="backend"):
        dsv3.Model(tmp_path, backend="tpu")
    with pytest.raises(ValueError, match="log_level"):
        dsv3.Model(tmp_path, log_level=99)
    with pytest.raises(ValueError, match="NUL"):
        dsv3.Model("a\0b")


def test_convert_missing_input(tmp_path: Path) -> None:
    with pytest.raises(dsv3.Dsv3Error) as ei:
        dsv3.convert(tmp_path / "missing-hf", tmp_path / "out")
    assert ei.value.code in (Status.E_IO, Status.E_UNSUPPORTED)
    assert ei.value.message


def test_sampler_defaults_are_the_documented_ones() -> None:
    # include/dsv3.h, dsv3_sampler_params: the documented defaults.
    d = dsv3.Sampler.defaults()
    assert d["seed"] == 0
    assert d["temperature"] == pytest.approx(0.8)
    assert d["top_k"] == 40
    assert d["top_p"] == pytest.approx(0.95)
    assert d["min_p"] == pytest.approx(0.05)
    assert d["repeat_penalty"] == 1.0
    assert d["frequency_penalty"] == 0.0
    assert d["presence_penalty"] == 0.0
    assert d["penalty_window"] == 64


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"top_k": 1 << 31}, ValueError, "top_k"),
    ({"penalty_window": -(1 << 31) - 1}, ValueError, "penalty_window"),
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": 1 << 64}, ValueError, "seed"),
    ({"temperature": "hot"}, TypeError, "temperature"),
    ({"top_p": 1e39}, ValueError, "top_p"),
    ({"top_k": 2.5}, TypeError, "top_k"),
    ({"top_k": True}, TypeError, "top_k"),
])
def test_sampler_arguments_are_checked_before_c(kwargs, exc, match) -> None:
    with pytest.raises(exc, match=match):
        dsv3.Sampler(**kwargs)


def test_sampler_unknown_argument() -> None:
    with pytest.raises(TypeError):
        dsv3.Sampler(temprature=0.5)  # type: ignore[call-arg]


def _sampler_or_skip(**kw) -> dsv3.Sampler:
    try:
        return dsv3.Sampler(**kw)
    except dsv3.UnsupportedError as e:
        pytest.skip(f"this libdsv3 has no sampler yet (dsv3_sampler_new: {e.name})")


def test_sampler_rejects_nan_in_c() -> None:
    _sampler_or_skip().close()
    with pytest.raises(dsv3.InvalidArgumentError) as ei:
        dsv3.Sampler(temperature=math.nan)
    assert ei.value.name == "DSV3_E_INVAL"
    assert ei.value.message


def test_sampler_greedy_and_bias() -> None:
    logits = [0.5, 3.0, -1.0, 2.5]
    with _sampler_or_skip(temperature=0) as s:
        assert s.sample(logits) == max(range(4), key=logits.__getitem__)
        s.set_logit_bias(1, -math.inf)
        assert s.sample(logits) == 3
        s.accept(3)
        s.reset()
        with pytest.raises(dsv3.InvalidArgumentError):
            s.sample([-math.inf] * 4)
    assert s.closed
    with pytest.raises(ValueError, match="closed"):
        s.sample(logits)


def test_sampler_seeded_draws_repeat() -> None:
    logits = [float(i % 7) for i in range(64)]
    with _sampler_or_skip(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, seed=42) as a, \
            dsv3.Sampler(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, seed=42) as b:
        draws_a = [a.sample(logits) for _ in range(32)]
        draws_b = [b.sample(logits) for _ in range(32)]
        assert draws_a == draws_b
        a.reset()
        assert [a.sample(logits) for _ in range(32)] == draws_a
