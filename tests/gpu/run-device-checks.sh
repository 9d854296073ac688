#!/bin/sh
# run-device-checks.sh - everything to run on a machine with an NVIDIA GPU,
# in one go, from a plain working tree (no build directory needed):
#
#   1. check the tools (meson, ninja, nvcc, a C compiler, pkg-config with
#      libzstd and check, python3, objdump) and print what is missing;
#   2. configure and build with the CUDA backend (-Dcuda=enabled), code for
#      the architectures in GPU_ARCHS (default: 90, e.g. H100/H200);
#   3. the gpu test suite (every CUDA op against the CPU ops, forward passes
#      whole and with the routed experts on the CPU, the reference vectors
#      through the loader), and the check that libdsv3.so has no CUDA
#      library among its DT_NEEDED entries;
#   4. a timing on the "mini" synthetic model (dsv3-synth + dsv3 convert):
#      `dsv3 bench --backend cuda` when this build has that command, else
#      the build's dsv3-timing (prefill and greedy decode tokens/s), on the
#      GPU whole, with the experts on the CPU, and a short CPU run.
#
# Prints PASS/FAIL per step and a summary; exit status 0 only if all passed.
# Environment: BUILD_DIR (default build-gpu), GPU_ARCHS (default 90),
# JOBS (default: CPUs), WORK_DIR (default a temporary directory).
set -u
cd "$(dirname "$0")/../.." || exit 2

BUILD_DIR=${BUILD_DIR:-build-gpu}
GPU_ARCHS=${GPU_ARCHS:-90}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 4)}
failed=0
T0=$(date +%s)

pass() { echo "PASS: $*"; }
fail() {
    echo "FAIL: $*"
    failed=$((failed + 1))
}
elapsed() { echo "$(($(date +%s) - T0)) s"; }

# ---- 1. tools ------------------------------------------------------------------
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
    PATH=/usr/local/cuda/bin:$PATH
    export PATH
fi
missing=""
for t in meson ninja nvcc cc pkg-config python3 objdump; do
    command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
done
if command -v pkg-config >/dev/null 2>&1; then
    pkg-config --exists libzstd || missing="$missing libzstd(-dev)"
    pkg-config --exists check || missing="$missing check(-dev)"
fi
if [ -n "$missing" ]; then
    fail "tools: missing:$missing"
    exit 2
fi
pass "tools: meson $(meson --version), ninja $(ninja --version), $(nvcc --version | tail -1)"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader |
        sed 's/^/# gpu: /'
else
    echo "# nvidia-smi not found"
fi

# ---- 2. build --------------------------------------------------------------------
rm -rf "$BUILD_DIR"
B0=$(date +%s)
if meson setup "$BUILD_DIR" -Dcuda=enabled -Dgpu_archs="$GPU_ARCHS" -Dbuildtype=release \
    -Dexamples=false >"$BUILD_DIR.setup.log" 2>&1 &&
    ninja -C "$BUILD_DIR" -j "$JOBS" >"$BUILD_DIR.build.log" 2>&1; then
    pass "build with CUDA (sm $GPU_ARCHS) in $(($(date +%s) - B0)) s"
else
    tail -30 "$BUILD_DIR.setup.log" "$BUILD_DIR.build.log" 2>/dev/null
    fail "build with CUDA"
    echo "SUMMARY: $failed failed ($(elapsed))"
    exit 1
fi
grep -i "warning" "$BUILD_DIR.build.log" | sed 's/^/# build: /' | head -20

# ---- 3. tests ----------------------------------------------------------------------
if meson test -C "$BUILD_DIR" --suite gpu --print-errorlogs --num-processes 1 \
    --timeout-multiplier 2 >"$BUILD_DIR.gpu.log" 2>&1; then
    if grep -q "SKIP" "$BUILD_DIR.gpu.log" && ! grep -q "^ok " "$BUILD_DIR/meson-logs/testlog.txt"; then
        fail "gpu suite skipped: no usable CUDA device"
    else
        pass "gpu suite ($(grep -c '^ok ' "$BUILD_DIR/meson-logs/testlog.txt") checks)"
    fi
else
    fail "gpu suite"
fi
grep -E "^(not ok|# )" "$BUILD_DIR/meson-logs/testlog.txt" | head -40
if python3 tests/abi/check_needed.py "$BUILD_DIR/lib/libdsv3.so"; then
    pass "libdsv3.so has no CUDA library among its DT_NEEDED"
else
    fail "libdsv3.so depends on a CUDA library"
fi

# ---- 4. timing on the mini model ---------------------------------------------------
WORK_DIR=${WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/dsv3-gpu-XXXXXX")}
DSV3="$BUILD_DIR/tools/dsv3"
if "$BUILD_DIR/tests/dsv3-synth" tests/reference/configs/mini.json bf16 "$WORK_DIR/hf" \
    >"$WORK_DIR/synth.log" 2>&1 && "$DSV3" convert "$WORK_DIR/hf" "$WORK_DIR/mini" \
    >"$WORK_DIR/convert.log" 2>&1; then
    rm -rf "$WORK_DIR/hf"
    pass "mini model written and converted"
    if "$DSV3" bench --help 2>/dev/null | grep -q -- "--backend"; then
        if timeout 300 "$DSV3" bench -m "$WORK_DIR/mini" --backend cuda -p 128 -n 64; then
            pass "dsv3 bench --backend cuda"
        else
            fail "dsv3 bench --backend cuda"
        fi
    else
        echo "# dsv3 bench is not in this build: timing with dsv3-timing instead"
        for args in "--backend cuda -p 128 -n 64" "--backend cuda --experts-on-cpu -p 128 -n 64" \
            "--backend cpu -p 16 -n 4"; do
            # shellcheck disable=SC2086
            if timeout 300 "$BUILD_DIR/tests/dsv3-timing" "$WORK_DIR/mini" $args; then
                pass "dsv3-timing $args"
            else
                fail "dsv3-timing $args"
            fi
        done
    fi
else
    tail -5 "$WORK_DIR/synth.log" "$WORK_DIR/convert.log"
    fail "mini model"
fi
rm -rf "$WORK_DIR"

echo "SUMMARY: $failed failed ($(elapsed))"
[ "$failed" -eq 0 ]
