#!/bin/sh
# Full pipeline for the tiny-stories demo model (see README.md).
#   sh tools/train/run.sh            data, training (resumes), export
# Environment: WORK (default /work/artifacts/dsv3-tiny-stories-work),
# HF_OUT (default /work/artifacts/dsv3-tiny-stories-hf), TIME_BUDGET (minutes, default 100).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
WORK=${WORK:-/work/artifacts/dsv3-tiny-stories-work}
HF_OUT=${HF_OUT:-/work/artifacts/dsv3-tiny-stories-hf}
TIME_BUDGET=${TIME_BUDGET:-100}
PY=/usr/bin/python3
# Debian's torch uses the reference BLAS unless told otherwise; OpenBLAS
# (Debian package libopenblas0-openmp) is about 15x faster for this job.
if [ -d /usr/lib/x86_64-linux-gnu/openblas-openmp ]; then
    LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export LD_LIBRARY_PATH
fi
# Do not busy-wait in OpenMP barriers on a shared machine.
OMP_WAIT_POLICY=PASSIVE
export OMP_WAIT_POLICY
[ -f "$WORK/data.npz" ] || $PY "$here/data.py" --work "$WORK"
nice -n 10 $PY "$here/train.py" --work "$WORK" --steps 100000 --time-budget "$TIME_BUDGET"
nice -n 10 $PY "$here/export.py" --work "$WORK" --hf-out "$HF_OUT"
