"""PyTorch side of bench/gpu-step.ts: the same ExtreMA step (the reference
model of test/oracle/extrema_ref.py with fused attention, random init) in
eager PyTorch on the same device, timed the same way. Prints JSON.

usage: gpu_step.py '{"config": {...}, "batch": 128, "steps": 10, "device": "cuda"}'
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test", "oracle"))
from timing import best  # noqa: E402
import extrema_ref as ref  # noqa: E402

ref.FUSED_ATTENTION = True

spec = json.loads(sys.argv[1])
cfg, b, steps, device = spec["config"], spec["batch"], spec["steps"], spec["device"]
cuda = device.startswith("cuda")
model = ref.build(cfg).to(device)
for p in model.momentum_encoder.parameters():
    p.requires_grad_(False)
e = cfg["encoder"]
n = (e["imgSize"][0] // e["patchSize"]) * (e["imgSize"][1] // e["patchSize"])
masks = cfg["numMasks"]
kept = n - int(n * cfg["maskRatio"])
g = torch.Generator(device=device).manual_seed(0)
student = torch.randn(b, e["inChans"], *e["imgSize"], generator=g, device=device)
teacher = torch.randn(b, e["inChans"], *e["imgSize"], generator=g, device=device)

student_params = list(model.base_encoder.parameters()) + list(model.predictor.parameters())
decay = [p for p in student_params if p.ndim > 1]
no_decay = [p for p in student_params if p.ndim <= 1]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}], lr=1.5e-4, betas=(0.9, 0.95), fused=True)
t_params = list(model.momentum_encoder.parameters())
s_params = list(model.base_encoder.parameters())


def sync():
    if cuda:
        torch.cuda.synchronize(device)


def forward():
    # disjoint masks: one random permutation of the patches per image, cut into kept-sized pieces
    order = torch.rand(b, n, generator=g, device=device).argsort(1)
    visible = order[:, : masks * kept].reshape(b, masks, kept).sort(2).values
    with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16):
        p = model.predictor(model.base_encoder.head(model.base_encoder(student, visible)[0]))
        with torch.no_grad():
            z = model.momentum_encoder.head(model.momentum_encoder(teacher)[0])
        return ref.byol(p.float(), z.float(), masks)


def ema():
    with torch.no_grad():
        torch._foreach_lerp_(t_params, s_params, 1 - 0.996)


def step():
    forward().backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    ema()


for _ in range(3):
    step()
sync()
if cuda:
    torch.cuda.reset_peak_memory_stats(device)
t0 = time.perf_counter()
for _ in range(steps):
    step()
host_issue = (time.perf_counter() - t0) / steps
sync()
step_time = (time.perf_counter() - t0) / steps
peak = torch.cuda.max_memory_allocated(device) if cuda else None


def fwd_bwd():
    forward().backward()
    opt.zero_grad(set_to_none=True)


t = {
    "step": step_time, "hostIssue": host_issue, "peakBytes": peak,
    "forward": best(forward, steps, 2, sync),
    "forwardBackward": best(fwd_bwd, steps, 2, sync),
}
forward().backward()
t["optimizer"] = best(opt.step, steps, 2, sync)
grads = [p.grad for p in student_params]


def zero_grad():
    for p, gr in zip(student_params, grads):
        p.grad = gr
    opt.zero_grad(set_to_none=True)


t["zeroGrad"] = best(zero_grad, steps, 2, sync)
t["ema"] = best(ema, steps, 2, sync)
gpu = torch.cuda.get_device_name(device) if cuda else "cpu"
print(json.dumps({"t": t, "torch": torch.__version__, "gpu": gpu}))
