"""The binding's view of the C ABI against the library and the ABI suite."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

import pytest

import dsv3
from dsv3 import _ffi
from dsv3._enums import ALL_ENUMS


def _binding_side(name: str) -> bool:
    # The libuv bridge (dsv3_uv.h) is C-only; the bindings do not mirror it.
    return not name.lower().startswith("dsv3_uv")


def test_abi_number_matches(lib: dsv3.Library, layout: dict) -> None:
    assert lib.abi_version == dsv3.EXPECTED_ABI
    assert dsv3.abi_version() == dsv3.EXPECTED_ABI
    # the headers the ABI suite compiled agree with the binding
    assert layout["abi_version"] == dsv3.EXPECTED_ABI


def test_version_queries(lib: dsv3.Library) -> None:
    s = dsv3.version_string()
    major, minor, patch = (int(x) for x in s.split("."))
    assert dsv3.version() == major * 10000 + minor * 100 + patch
    assert s in dsv3.build_info()
    assert f"abi {dsv3.EXPECTED_ABI}" in dsv3.build_info()
    assert dsv3.backend_name(dsv3.Backend.CPU) == "cpu"
    assert dsv3.backend_name(12345) is None
    assert dsv3.backend_available("cpu") is True
    with pytest.raises(ValueError, match="backend"):
        dsv3.backend_available("tpu")


def test_every_function_is_bound(lib: dsv3.Library) -> None:
    syms = (Path(os.environ.get("DSV3_SOURCE_DIR", Path(__file__).parents[3]))
            / "lib" / "libdsv3.sym").read_text()
    exported = {w.strip().rstrip(";") for w in syms.split() if w.strip().startswith("dsv3_")}
    assert {s for s in exported if _binding_side(s)} == set(_ffi.FUNCTIONS)


def test_struct_layouts_match_dump(layout: dict) -> None:
    c_structs = {k: v for k, v in layout["structs"].items() if _binding_side(k)}
    assert set(_ffi.STRUCTS) == set(c_structs), "structs added to or removed from dsv3.h"
    for name, cls in _ffi.STRUCTS.items():
        want = c_structs[name]
        got = {f: getattr(cls, f).offset for f, _ in cls._fields_}
        assert list(got) == list(want["fields"]), f"{name}: field names or order differ"
        assert got == want["fields"], f"{name}: field offsets differ"
        assert ctypes.sizeof(cls) == want["size"], f"{name}: size differs"


def test_enum_values_match_dump(layout: dict) -> None:
    c_enums = {k: v for k, v in layout["enums"].items() if _binding_side(k)}
    mine = {}
    for cls, prefix in ALL_ENUMS.items():
        for m in cls:
            mine[prefix + m.name] = int(m.value)
    assert set(mine) == set(c_enums), "enumerators added to or removed from dsv3.h"
    assert mine == c_enums


# ---- finding and checking the library ---------------------------------------------


def test_explicit_path_and_cache(lib: dsv3.Library) -> None:
    again = dsv3.load_library(lib.path)
    assert again is lib
    assert repr(lib).startswith("<dsv3.Library")


def test_abi_mismatch_is_refused(fake_abi999: str) -> None:
    with pytest.raises(dsv3.AbiVersionError) as ei:
        dsv3.load_library(fake_abi999)
    e = ei.value
    assert (e.expected, e.found, e.path) == (dsv3.EXPECTED_ABI, 999, fake_abi999)
    assert "ABI 999" in str(e) and f"ABI {dsv3.EXPECTED_ABI}" in str(e)
    assert isinstance(e, dsv3.LibraryError)


def test_abi_mismatch_through_environment(fake_abi999: str, monkeypatch) -> None:
    monkeypatch.setenv("DSV3_LIBRARY", fake_abi999)
    with pytest.raises(dsv3.AbiVersionError, match="999"):
        dsv3.load_library()
    with pytest.raises(dsv3.AbiVersionError):
        dsv3.Model("/nonexistent")  # every entry point checks through the same loader


def test_not_libdsv3_is_refused() -> None:
    libc = ctypes.util.find_library("c")
    with pytest.raises(dsv3.LibraryError, match="not libdsv3"):
        dsv3.load_library(libc)


def test_missing_library_is_refused(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(dsv3.LibraryError, match="cannot load"):
        dsv3.load_library(tmp_path / "libdsv3.so.0")
    monkeypatch.setenv("DSV3_LIBRARY", str(tmp_path / "nope.so"))
    with pytest.raises(dsv3.LibraryError):
        dsv3.load_library()
