"""PyTorch side of bench/serve-forward.ts: the median time of one forward pass
of the teacher that bench/serve_export.py exports (uint8 pixels in, features
out; PyTorch eager, inference mode), at one batch size.

usage: serve_forward.py checkpoint.safetensors threads batch iters
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_export import load_teacher  # noqa: E402


def main():
    checkpoint, threads, n, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    model, size, channels = load_teacher(checkpoint)
    # The pixels bench/serve-forward.ts feeds the other engines.
    pixels = ((torch.arange(n * size * size * channels) * 37 + 11) % 256).to(torch.uint8).view(n, size, size, channels)
    with torch.inference_mode():
        for _ in range(max(5, iters // 10)):
            model(pixels)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            model(pixels)
            times.append(time.perf_counter() - t0)
    times.sort()
    print(json.dumps({"ms": times[len(times) // 2] * 1e3, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
