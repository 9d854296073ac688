"""Fixtures of the Python binding tests.

Environment (set by ``meson test --suite bindings``; defaults for a manual
run from a checkout with a ``build`` directory):

- DSV3_LIBRARY: the freshly built library (default BUILD/lib/libdsv3.so.0).
- DSV3_SOURCE_DIR / DSV3_BUILD_DIR: the checkout and its build directory.
- DSV3_DUMP_LAYOUT: the ABI suite's layout dumper (default BUILD/tests/abi/dump_layout).
- DSV3_TEST_MODEL: a small model directory for the end-to-end tests; they are
  skipped without it.
- CC: the C compiler used to build the scripted fake library (default cc).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SOURCE_DIR = Path(os.environ.get("DSV3_SOURCE_DIR") or HERE.parents[2])
BUILD_DIR = Path(os.environ.get("DSV3_BUILD_DIR") or SOURCE_DIR / "build")

sys.path.insert(0, str(HERE.parent))  # the package under test, not an installed one

if not os.environ.get("DSV3_LIBRARY"):
    os.environ["DSV3_LIBRARY"] = str(BUILD_DIR / "lib" / "libdsv3.so.0")

import dsv3  # noqa: E402

NO_MODEL = ("no test model: set DSV3_TEST_MODEL to a model directory (meson sets it once "
            "tests/meson.build defines dsv3_test_model)")


@pytest.fixture(scope="session")
def lib() -> "dsv3.Library":
    """The real, freshly built libdsv3."""
    return dsv3.load_library()


@pytest.fixture(scope="session")
def layout() -> dict:
    """The ABI suite's layout dump (sizes, offsets, enumerator values)."""
    exe = os.environ.get("DSV3_DUMP_LAYOUT") or str(BUILD_DIR / "tests" / "abi" / "dump_layout")
    return json.loads(subprocess.check_output([exe]))


def _build_fake(tmp: Path, name: str, *defines: str) -> str:
    cc = os.environ.get("CC") or "cc"
    if not shutil.which(cc):
        pytest.fail(f"C compiler {cc!r} not found; it is needed to build the fake library")
    out = tmp / name
    subprocess.check_call([cc, "-std=c11", "-D_DEFAULT_SOURCE", "-shared", "-fPIC", "-O1",
                           "-I", str(SOURCE_DIR / "include"), "-I", str(BUILD_DIR / "include"),
                           *defines, str(SOURCE_DIR / "bindings" / "testdata" / "fake_dsv3.c"),
                           "-o", str(out), "-lm"])
    return str(out)


@pytest.fixture(scope="session")
def fake_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fake")


@pytest.fixture(scope="session")
def fake_lib(fake_dir: Path) -> "dsv3.Library":
    """The scripted fake libdsv3 (bindings/testdata/fake_dsv3.c) with the right ABI."""
    return dsv3.load_library(_build_fake(fake_dir, "libdsv3-fake.so"))


@pytest.fixture(scope="session")
def fake_abi999(fake_dir: Path) -> str:
    """Path of a fake libdsv3 whose dsv3_abi_version() returns 999."""
    return _build_fake(fake_dir, "libdsv3-abi999.so", "-DFAKE_ABI=999")


@pytest.fixture
def live(fake_lib: "dsv3.Library"):
    """fake_live_handles(): handles of the fake not yet freed."""
    fn = fake_lib._cdll.fake_live_handles
    fn.restype = __import__("ctypes").c_int
    return fn


@pytest.fixture
def fake_model(fake_lib: "dsv3.Library", tmp_path: Path):
    with dsv3.Model(tmp_path, library=fake_lib) as m:
        yield m


@pytest.fixture(scope="session")
def model_path() -> str:
    path = os.environ.get("DSV3_TEST_MODEL")
    if not path:
        pytest.skip(NO_MODEL)
    return path


@pytest.fixture(scope="module")
def model(model_path: str):
    with dsv3.Model(model_path, n_threads=2) as m:
        yield m
