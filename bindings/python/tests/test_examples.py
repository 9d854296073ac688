"""The examples, and the README's copies of them, work as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dsv3
from conftest import NO_MODEL, SOURCE_DIR

EXAMPLES = SOURCE_DIR / "bindings" / "python" / "examples"


def test_readme_shows_the_examples() -> None:
    readme = (SOURCE_DIR / "bindings" / "README.md").read_text()
    blocks = re.findall(r"<!-- file: (bindings/python/\S+) -->\n```python\n(.*?)```", readme,
                        flags=re.S)
    assert blocks, "bindings/README.md shows no Python example"
    for path, code in blocks:
        assert (SOURCE_DIR / path).read_text() == code, f"README copy of {path} is stale"


def _run(script: str, *args: str, library: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DSV3_LIBRARY=library,
               PYTHONPATH=str(SOURCE_DIR / "bindings" / "python"))
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_stream_example_on_fake(fake_lib: dsv3.Library, tmp_path: Path) -> None:
    # The fake continues "Once upon a time" (last letter 'e') with "fgh...z", then EOS.
    r = _run("stream.py", str(tmp_path), library=fake_lib.path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "fghijklmnopqrstuvwxyz\n"


def test_async_example_on_fake(fake_lib: dsv3.Library, tmp_path: Path) -> None:
    r = _run("async_stream.py", str(tmp_path), "w", library=fake_lib.path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "xyz\n"


def test_info_example(lib: dsv3.Library, tmp_path: Path) -> None:
    r = _run("info.py", library=lib.path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == dsv3.build_info()
    r = _run("info.py", str(tmp_path / "missing"), library=lib.path)
    assert r.returncode == 1 and "DSV3_E_" in r.stderr


def test_examples_on_model(lib: dsv3.Library) -> None:
    model = os.environ.get("DSV3_TEST_MODEL")
    if not model:
        pytest.skip(NO_MODEL)
    r = _run("info.py", model, library=lib.path)
    assert r.returncode == 0 and "vocab_size" in r.stdout, r.stderr
    with dsv3.Model(model) as m:
        if not m.info.has_tokenizer:
            pytest.skip("the test model has no tokenizer (the example prompts with text)")
    r = _run("stream.py", model, "Hello", library=lib.path)
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
