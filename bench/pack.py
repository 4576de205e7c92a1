"""Python side of bench/pack.ts: one process reads the same JPEG folder with
PIL (resize shorter side + centre crop, as the TypeScript reader), and the
same pack with numpy (random item order, batches), best of two passes.

usage: pack.py <jpeg folder> <pack folder> <size> <batch>
"""
import json
import os
import sys
import time

import numpy as np
import PIL
from PIL import Image

folder, pack, size, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
files = sorted(os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs if f.endswith(".jpg"))
rng = np.random.default_rng(0)


def read_jpeg(f):
    im = Image.open(f).convert("RGB")
    w, h = im.size
    s = size / min(w, h)
    im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
    left, top = (im.size[0] - size) // 2, (im.size[1] - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)))


def folder_pass():
    order = rng.permutation(len(files))
    for start in range(0, len(order), batch):
        np.stack([read_jpeg(files[i]) for i in order[start:start + batch]])
    return len(order)


index = json.load(open(os.path.join(pack, "index.json")))
item = index["size"] * index["size"] * index["channels"]
shards = [np.memmap(os.path.join(pack, s["file"]), np.uint8, mode="r") for s in index["shards"]]
first = np.cumsum([0] + [s["items"] for s in index["shards"]])


def pack_pass():
    order = rng.permutation(index["count"])
    for start in range(0, len(order), batch):
        out = np.empty((len(order[start:start + batch]), item), np.uint8)
        for k, i in enumerate(order[start:start + batch]):
            s = np.searchsorted(first, i, side="right") - 1
            j = i - first[s]
            out[k] = shards[s][j * item:(j + 1) * item]
    return len(order)


def rate(fn):
    best = 0
    for _ in range(2):
        t0 = time.perf_counter()
        n = fn()
        best = max(best, n / (time.perf_counter() - t0))
    return best


print(json.dumps({"folder": rate(folder_pass), "pack": rate(pack_pass), "pil": PIL.__version__}))
