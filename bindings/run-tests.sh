#!/bin/sh
# Run a binding's test suite against the freshly built library.
#
#   sh bindings/run-tests.sh python|go
#
# meson (`meson test -C build --suite bindings`) sets DSV3_SOURCE_DIR,
# DSV3_BUILD_DIR, DSV3_LIBRARY, DSV3_DUMP_LAYOUT and, once a test model is
# built, DSV3_TEST_MODEL; run by hand, the defaults below point at ./build.
# Exits 77 (meson: skipped) when the language's toolchain is missing.
set -eu
lang=${1:?usage: run-tests.sh python|go}
src=${DSV3_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${DSV3_BUILD_DIR:-$src/build}
export DSV3_SOURCE_DIR="$src" DSV3_BUILD_DIR="$build"
export DSV3_LIBRARY="${DSV3_LIBRARY:-$build/lib/libdsv3.so.0}"
export DSV3_DUMP_LAYOUT="${DSV3_DUMP_LAYOUT:-$build/tests/abi/dump_layout}"

case $lang in
python)
    # Debian's pytest is installed for /usr/bin/python3 only.
    py=${DSV3_PYTHON:-}
    if [ -z "$py" ]; then
        for c in /usr/bin/python3 python3; do
            if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import pytest' 2>/dev/null; then
                py=$c
                break
            fi
        done
    fi
    if [ -z "$py" ]; then
        echo "skipped: no python3 with pytest (Debian package python3-pytest)"
        exit 77
    fi
    cd "$src/bindings/python"
    PYTHONDONTWRITEBYTECODE=1 exec "$py" -m pytest -q -rs -p no:cacheprovider tests
    ;;
go)
    if ! command -v go >/dev/null 2>&1; then
        echo "skipped: no Go toolchain (Debian package golang-go)"
        exit 77
    fi
    # No network: no module downloads; caches in the (writable) build directory.
    export GOCACHE="$build/bindings/go-cache" GOPATH="$build/bindings/go-path"
    export GOFLAGS="-mod=mod -tags=dsv3_nopkgconfig" GOPROXY=off GOSUMDB=off
    export GO111MODULE=on GOTOOLCHAIN=local CGO_ENABLED=1
    # Build against the build tree instead of an installed libdsv3.pc.
    export CGO_CFLAGS="-I$src/include -I$build/include"
    export CGO_LDFLAGS="-L$build/lib"
    export LD_LIBRARY_PATH="$build/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    cd "$src/bindings/go"
    go vet ./...
    exec go test -count=1 ./...
    ;;
*)
    echo "unknown binding: $lang" >&2
    exit 2
    ;;
esac
