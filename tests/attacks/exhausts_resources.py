# Fill the disk and the memory: a 1 GiB file in the working folder and in /tmp, 20 GiB of memory.
import os

chunk = b"\0" * (16 << 20)
for path in ["big.bin", "/tmp/big.bin", os.path.expanduser("~/big.bin")]:
    try:
        with open(path, "wb") as handle:
            for _ in range(64):
                handle.write(chunk)
    except OSError:
        pass
try:
    hog = bytearray(20 << 30)
except MemoryError:
    hog = None
