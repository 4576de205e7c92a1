"""PyTorch side of bench/finetune-step.ts: one fine-tuning step of timm's
mean-pooled VisionTransformer (imported through test/oracle/timm_vit.py, which
serves an inert torchvision stand-in) with the same weights, inputs, soft
targets, drop path and AdamW parameter groups, timed the same way. Prints JSON.

The step: forward (train mode, so drop path is live), timm's
SoftTargetCrossEntropy, backward, torch.optim.AdamW(fused=True) over the
layer-decay groups (each group's lr = lr * lr_scale, as ours sets it), and
zero_grad() (set_to_none, as our zeroGrad). fused=True because our AdamW runs
the same _fused_adamw_ kernel on CPU; torch's default there is foreach.

usage: finetune_step.py spec.json inputs.safetensors
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "oracle"))
from timing import best  # noqa: E402
from timm_vit import VisionTransformer  # noqa: E402  (installs the torchvision stand-in first)
from timm.loss import SoftTargetCrossEntropy  # noqa: E402
import timm  # noqa: E402

spec = json.load(open(sys.argv[1]))
x = load_file(sys.argv[2])
torch.set_num_threads(spec["threads"])
m = spec["model"]
model = VisionTransformer(
    img_size=m["img_size"], patch_size=m["patch_size"], in_chans=m["in_chans"], num_classes=m["num_classes"],
    embed_dim=m["embed_dim"], depth=m["depth"], num_heads=m["num_heads"], mlp_ratio=m["mlp_ratio"],
    qkv_bias=m["qkv_bias"], global_pool="avg", class_token=False, fc_norm=True, drop_path_rate=m["drop_path_rate"],
)
model.load_state_dict({k[2:]: v for k, v in x.items() if k.startswith("w:")}, strict=True)
model.train()

params = dict(model.named_parameters())
groups = [
    {"params": [params[n] for n in g["names"]], "lr": spec["lr"] * g["lr_scale"], "weight_decay": g["weight_decay"]}
    for g in spec["groups"]
]
grouped = sum(len(g["names"]) for g in spec["groups"])
if grouped != len(params):
    raise SystemExit(f"Expected the groups to hold all {len(params)} parameters of the timm model but they hold {grouped}")
opt = torch.optim.AdamW(groups, lr=spec["lr"], betas=tuple(spec["betas"]), weight_decay=spec["weight_decay"], fused=True)
criterion = SoftTargetCrossEntropy()
images, targets = x["images"], x["targets"]


def step():
    loss = criterion(model(images), targets)
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss.item()


print(json.dumps({"torch": torch.__version__, "timm": timm.__version__, "step": best(step, 1, spec["repeats"])}))
