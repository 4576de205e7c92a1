"""PyTorch side of bench/extrema-model.ts: the same ExtreMA model (the
independent reference in test/oracle/extrema_ref.py) with the same weights,
masks and inputs, timed the same way. Prints JSON.

usage: extrema_model.py spec.json inputs.safetensors
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test", "oracle"))
from timing import best  # noqa: E402
import extrema_ref as ref  # noqa: E402

ref.FUSED_ATTENTION = True

spec = json.load(open(sys.argv[1]))
x = load_file(sys.argv[2])
torch.set_num_threads(spec["threads"])
cfg = spec["config"]
model = ref.build(cfg)
model.load_state_dict({k[2:]: v for k, v in x.items() if k.startswith("w:")}, strict=True)
for p in model.momentum_encoder.parameters():
    p.requires_grad_(False)
student, teacher, visible, embed_images = x["student"], x["teacher"], x["visible"], x["embed"]
masks = visible.shape[1]


def step():
    p = model.predictor(model.base_encoder.head(model.base_encoder(student, visible)[0]))
    with torch.no_grad():
        z = model.momentum_encoder.head(model.momentum_encoder(teacher)[0])
    loss = ref.byol(p, z, masks)
    loss.backward()
    for q in model.parameters():
        q.grad = None


t_params = list(model.momentum_encoder.parameters())
s_params = list(model.base_encoder.parameters())


def ema_fused():
    with torch.no_grad():
        torch._foreach_lerp_(t_params, s_params, 1 - 0.996)


def ema_loop():
    with torch.no_grad():
        for t, s in zip(t_params, s_params):
            t.mul_(0.996).add_(s, alpha=1 - 0.996)


def embed():
    with torch.no_grad():
        model.momentum_encoder(embed_images)


results = {
    "step": best(step, spec["step_iters"], 3),
    "ema_fused": best(ema_fused, 50, 3),
    "ema_loop": best(ema_loop, 50, 3),
    "embed": best(embed, spec["embed_iters"], 3),
}
print(json.dumps({"torch": torch.__version__, "results": results}))
