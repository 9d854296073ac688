#!/usr/bin/env python3
"""libdsv3.so must load on machines without CUDA: no CUDA library may be a
DT_NEEDED entry (the CUDA runtime is linked statically and loads the driver
itself when a device is used).

usage: check_needed.py LIBRARY
"""
import re
import subprocess
import sys

FORBIDDEN = re.compile(r"^lib(cuda|cudart|cublas|cublasLt|nvrtc|nvJitLink|nvidia-ml|cufft|curand|"
                       r"cusparse|cusolver|nccl)\b")


def main():
    out = subprocess.check_output(["objdump", "-p", sys.argv[1]], text=True)
    needed = [line.split()[1] for line in out.splitlines() if line.split()[:1] == ["NEEDED"]]
    if not needed:
        print("no DT_NEEDED entries found (objdump output not understood)")
        return 1
    bad = [n for n in needed if FORBIDDEN.match(n)]
    print("DT_NEEDED: " + ", ".join(needed))
    if bad:
        print("FAIL: hard dependencies on CUDA libraries: " + ", ".join(bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
