"""Print what the libdsv3 found has, and what a model is made of.

usage: info.py [MODEL_DIR]
"""
import sys

import dsv3

print(dsv3.build_info())
print("ABI", dsv3.abi_version(), "version", dsv3.version_string())
for b in (dsv3.Backend.CPU, dsv3.Backend.CUDA):
    print(f"backend {b.name.lower()}: {'yes' if dsv3.backend_available(b) else 'no'}")
if len(sys.argv) > 1:
    try:
        with dsv3.Model(sys.argv[1]) as model:
            for key, value in vars(model.info).items():
                print(f"{key}: {value}")
    except dsv3.Dsv3Error as e:
        sys.exit(f"{sys.argv[1]}: {e.name}: {e.message}")
