#!/bin/sh
# Write the small test model: the synthetic tiny checkpoint (tests/reference
# recipe) converted to a libdsv3 model directory.
# usage: make_test_model.sh DSV3_SYNTH DSV3_CLI CONFIG.json VARIANT OUT_DIR STAMP
set -eu
synth=$1 cli=$2 config=$3 variant=$4 out=$5 stamp=$6
tmp="$out.hf.$$"
rm -rf "$tmp" "$out"
"$synth" "$config" "$variant" "$tmp" >/dev/null
"$cli" convert "$tmp" "$out" 2>/dev/null
rm -rf "$tmp"
touch "$stamp"
