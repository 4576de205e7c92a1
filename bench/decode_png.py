"""Python side of bench/decode.ts: the same folder of PNGs decoded by PIL
(convert to RGB, then luma to one channel as decodeImage does), one file
after another. Prints JSON: {"images_per_s": ..., "pil": version}.

usage: decode_png.py folder rounds
"""
import json
import os
import sys
import time

import numpy as np
from PIL import Image, __version__ as pil_version


def main():
    folder, rounds = sys.argv[1], int(sys.argv[2])
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".png"))
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for f in files:
            with Image.open(f) as im:
                np.asarray(im.convert("L"))
        best = max(best, len(files) / (time.perf_counter() - t0))
    print(json.dumps({"images_per_s": best, "pil": pil_version}))


if __name__ == "__main__":
    main()
