"""PyTorch side of bench/packed-linear.ts: one pass over the demo encoder's
37 Linear layers (the shapes and order bench/packed-linear.ts builds), timed
as F.linear (+ F.gelu for the MLPs' first layer) and as oneDNN's packed
product from Python (torch.ops.mkldnn._linear_pointwise, GELU fused), in
inference mode. Prints JSON: {"linear": ms, "mkldnn": ms, "torch": version}.

usage: packed_linear.py layers.json threads rounds
"""
import json
import sys

import torch
import torch.nn.functional as F
from timing import median_ms


def main():
    spec, threads, rounds = json.load(open(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    layers = []
    for rows, k, n, gelu in spec:
        x = torch.randn(rows, k, generator=g)
        w = torch.randn(n, k, generator=g) * 0.05
        b = torch.randn(n, generator=g)
        layers.append((x, w, b, gelu, torch.ops.mkldnn._reorder_linear_weight(w, None)))

    def plain():
        for x, w, b, gelu, _ in layers:
            y = F.linear(x, w, b)
            if gelu:
                F.gelu(y)

    def packed():
        for x, _, b, gelu, pw in layers:
            torch.ops.mkldnn._linear_pointwise(x, pw, b, "gelu" if gelu else "none", [], "none" if gelu else "")

    out = {"torch": torch.__version__}
    with torch.inference_mode():
        for name, fn in (("linear", plain), ("mkldnn", packed)):
            out[name] = median_ms(fn, rounds)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
