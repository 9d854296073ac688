#!/bin/sh
# ABI gate: compare the built library with the committed baseline
# (abi/libdsv3.abi, written by `abidw` at release time, see docs/abi.md).
# abidiff's exit status is a bit field: 1/2 tool error, 4 ABI changed
# (compatible, e.g. added functions: needs a CHANGELOG entry), 8 incompatible.
# Incompatible changes fail unless DSV3_ABI_VERSION differs from the baseline's
# SONAME (i.e. the ABI number was bumped).
set -u
lib=$1 src=$2
base=$src/abi/libdsv3.abi
if ! command -v abidiff >/dev/null 2>&1; then
    echo "abidiff not found (Debian package abigail-tools)" >&2
    exit 77
fi
abidiff --no-added-syms --headers-dir2 "$src/include" --suppressions "$src/abi/libdsv3.abignore" \
    "$base" "$lib"
rc=$?
if [ $((rc & 3)) -ne 0 ]; then
    echo "abidiff failed to run (status $rc)" >&2
    exit 1
fi
if [ $((rc & 8)) -ne 0 ]; then
    base_soname=$(sed -n 's/.*soname=.\([^"'\'']*\).*/\1/p' "$base" | head -n 1)
    this_soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
    if [ "$base_soname" = "$this_soname" ]; then
        echo "FAIL: incompatible ABI change without an ABI number bump ($this_soname)" >&2
        exit 1
    fi
    echo "incompatible change with ABI bump $base_soname -> $this_soname"
fi
if [ $((rc & 4)) -ne 0 ]; then
    echo "note: ABI changed compatibly since the baseline; record it in CHANGELOG.md"
fi
exit 0
