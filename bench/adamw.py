"""PyTorch side of bench/adamw.ts: torch.optim.AdamW(fused=True) and
(foreach=True) on the same parameter shapes and groups, timed the same way.
Prints JSON.

usage: adamw.py spec.json
"""
import json
import sys

import torch

from timing import best

spec = json.load(open(sys.argv[1]))
torch.set_num_threads(spec["threads"])
device = spec["device"]


def no_decay(name, shape):
    return len(shape) <= 1 or name.endswith(".bias") or name.split(".")[-1] in ("pos_embed", "cls_token")


def measure(kind):
    g = torch.Generator().manual_seed(0)
    params = []
    for name, shape in spec["shapes"]:
        p = torch.randn(shape, generator=g).to(device).requires_grad_(True)
        p.grad = torch.randn(shape, generator=g).to(device)
        params.append((name, p))
    groups = [
        {"params": [p for n, p in params if not no_decay(n, p.shape)], "weight_decay": 0.05},
        {"params": [p for n, p in params if no_decay(n, p.shape)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), **{kind: True})
    return best(opt.step, spec["iters"], settle=torch.cuda.synchronize if device != "cpu" else None)


print(json.dumps({"torch": torch.__version__, "results": {"torch_fused": measure("fused"), "torch_foreach": measure("foreach")}}))
