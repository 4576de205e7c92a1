"""Oracle for test/tensor/ops.test.ts: evaluates each case's PyTorch
expression on the same inputs and returns outputs and input gradients of
sum(out_i * w_i). Runs on spec["device"] (cpu by default); results come back
on the CPU for the safetensors file."""
import json
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

spec = json.load(open(sys.argv[1]))
data = load_file(sys.argv[2])
device = torch.device(spec.get("device", "cpu"))
out = {}
for case in spec["cases"]:
    name = case["name"]
    env = {"torch": torch, "F": F}
    for n in case["inputs"]:
        t = data[f"{name}/{n}"].to(device).clone()
        if case["grad"] and t.is_floating_point():
            t.requires_grad_(True)
        env[n] = t
    if case.get("seed") is not None:
        torch.manual_seed(case["seed"])
    y = eval(case["py"], env)
    ys = list(y) if isinstance(y, (tuple, list)) else [y]
    for i, yi in enumerate(ys):
        out[f"{name}/out{i}"] = yi.detach().cpu().clone().contiguous()
    if case["grad"]:
        loss = sum((yi * data[f"{name}/w{i}"].to(device)).sum() for i, yi in enumerate(ys) if yi.is_floating_point())
        loss.backward()
        for n in case["inputs"]:
            g = getattr(env[n], "grad", None)
            if g is not None:
                out[f"{name}/grad/{n}"] = g.cpu().clone().contiguous()
save_file(out, sys.argv[3])
