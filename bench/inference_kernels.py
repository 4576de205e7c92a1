"""PyTorch side of bench/inference-kernels.ts: the demo encoder's attention
and LayerNorm calls at one batch size (the spec bench/inference-kernels.ts
writes), timed as F.scaled_dot_product_attention on views of a fused qkv
tensor and as F.layer_norm, in inference mode. Prints JSON:
{"sdpa": ms, "layer_norm": ms, "torch": version}.

usage: inference_kernels.py calls.json threads rounds
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
    b = spec["images"]
    attention = []
    for nq, nk in spec["attention"]:
        q = torch.randn(b, nq, 3, 3, 64, generator=g).permute(2, 0, 3, 1, 4)[0]
        _, k, v = torch.randn(b, nk, 3, 3, 64, generator=g).permute(2, 0, 3, 1, 4).unbind(0)
        attention.append((q, k, v))
    norms = [(torch.randn(b, tokens, 192, generator=g), torch.randn(192, generator=g), torch.randn(192, generator=g)) for tokens in spec["layerNorm"]]

    def attend():
        for q, k, v in attention:
            F.scaled_dot_product_attention(q, k, v)

    def normalise():
        for x, w, bias in norms:
            F.layer_norm(x, (192,), w, bias, 1e-6)

    with torch.inference_mode():
        out = {"sdpa": median_ms(attend, rounds), "layer_norm": median_ms(normalise, rounds), "torch": torch.__version__}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
