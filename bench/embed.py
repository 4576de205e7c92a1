"""PyTorch side of bench/embed.ts: what `extrema embed` does, in Python, on the
same checkpoint and the same IDX file: read the gzipped IDX images, normalise
((x / 255 - 0.5) / 0.5 for one channel), run the teacher (the independent
reference in test/oracle/extrema_ref.py, fused attention) in batches without
gradients, save the features as safetensors. Timed from after `import torch`
(what a long-running Python process pays per file). Prints JSON.
With "packed" in the spec, every nn.Linear runs oneDNN's packed product and
each MLP's GELU is fused into fc1, through the same operators as extrema's
packed path (mkldnn::_reorder_linear_weight, mkldnn::_linear_pointwise;
what torch.compile's CPU freezing emits), so that path has a like-for-like
reference too.

usage: embed.py spec.json
"""
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test", "oracle"))
import extrema_ref as ref  # noqa: E402

ref.FUSED_ATTENTION = True

spec = json.load(open(sys.argv[1]))
torch.set_num_threads(spec["threads"])


class PackedLinear(nn.Module):
    def __init__(self, linear, attr="none"):
        super().__init__()
        self.weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), None)
        self.bias = None if linear.bias is None else linear.bias.detach()
        self.attr = attr

    def forward(self, x):
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, self.attr, [], "none" if self.attr == "gelu" else "")


class PackedMlp(nn.Module):
    def __init__(self, mlp):
        super().__init__()
        self.fc1 = PackedLinear(mlp.fc1, "gelu")
        self.fc2 = PackedLinear(mlp.fc2)

    def forward(self, x):
        return self.fc2(self.fc1(x))


def pack(module):
    for name, child in list(module.named_children()):
        if isinstance(child, ref.Mlp):
            setattr(module, name, PackedMlp(child))
        elif isinstance(child, nn.Linear):
            setattr(module, name, PackedLinear(child))
        else:
            pack(child)


def run():
    model = ref.build(spec["config"])
    model.load_state_dict(load_file(spec["checkpoint"]), strict=True)
    teacher = model.momentum_encoder.eval()
    if spec.get("packed"):
        pack(teacher)
    raw = gzip.open(spec["images"], "rb").read()
    n, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    images = torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, 1, h, w).copy())
    out = torch.empty(n, teacher.norm.weight.shape[0])
    with torch.no_grad():
        for i in range(0, n, spec["batch"]):
            x = images[i:i + spec["batch"]].float().div(255).sub(0.5).div(0.5)
            out[i:i + x.shape[0]] = teacher(x)[0]
    save_file({"features": out}, spec["out"])


times = []
for _ in range(spec["repeats"]):
    t0 = time.perf_counter()
    run()
    times.append(time.perf_counter() - t0)
print(json.dumps({"torch": torch.__version__, "seconds": min(times)}))
