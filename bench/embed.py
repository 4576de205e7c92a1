"""PyTorch side of bench/embed.ts: what `extrema embed` does, in Python, on the
same checkpoint and the same IDX file: read the gzipped IDX images, normalise
((x / 255 - 0.5) / 0.5 for one channel), run the teacher (the independent
reference in test/oracle/extrema_ref.py, fused attention) in batches without
gradients, save the features as safetensors. Timed from after `import torch`
(what a long-running Python process pays per file). Prints JSON.

usage: embed.py spec.json
"""
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test", "oracle"))
import extrema_ref as ref  # noqa: E402

ref.FUSED_ATTENTION = True

spec = json.load(open(sys.argv[1]))
torch.set_num_threads(spec["threads"])


def run():
    model = ref.build(spec["config"])
    model.load_state_dict(load_file(spec["checkpoint"]), strict=True)
    teacher = model.momentum_encoder.eval()
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
