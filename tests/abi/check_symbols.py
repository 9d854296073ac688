#!/usr/bin/env python3
"""ABI gate: exported symbols == lib/libdsv3.sym == DSV3_API declarations.

usage: check_symbols.py LIBRARY MAPFILE HEADER...

Fails (exit 1) when the library exports a symbol that is not in the map file
or not declared DSV3_API in a public header, or when a declared/listed symbol
is missing from the library. Like libinput's symbols-leak-test, extended to
the headers.
"""
import re
import subprocess
import sys


def exported(lib):
    out = subprocess.check_output(["nm", "-D", "--defined-only", lib], text=True)
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        kind, name = parts[1], parts[2]
        name = name.split("@")[0]
        if kind == "A":  # version node names (DSV3_0.1)
            continue
        syms.add(name)
    return syms


def mapped(mapfile):
    text = re.sub(r"/\*.*?\*/", "", open(mapfile).read(), flags=re.S)
    syms = set()
    for block in re.findall(r"global:(.*?)(?:local:|\})", text, flags=re.S):
        syms |= {s.strip() for s in block.split(";") if s.strip()}
    return syms


def declared(headers):
    syms = set()
    for h in headers:
        text = re.sub(r"/\*.*?\*/", "", open(h).read(), flags=re.S)
        text = re.sub(r"^\s*#.*$", "", text, flags=re.M)  # preprocessor lines
        for decl in re.findall(r"DSV3_API\b([^;{]*?)\(", text, flags=re.S):
            m = re.search(r"(\w+)\s*$", decl)
            if m:
                syms.add(m.group(1))
    return syms


def main():
    lib, mapfile, headers = sys.argv[1], sys.argv[2], sys.argv[3:]
    e, m, d = exported(lib), mapped(mapfile), declared(headers)
    ok = True
    for label, diff in (
        ("exported but not in the map file", e - m),
        ("exported but not declared DSV3_API in a public header", e - d),
        ("in the map file but not exported", m - e),
        ("declared DSV3_API but not exported", d - e),
    ):
        if diff:
            ok = False
            print("FAIL: %s: %s" % (label, ", ".join(sorted(diff))))
    print("%d exported, %d in map, %d declared" % (len(e), len(m), len(d)))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
