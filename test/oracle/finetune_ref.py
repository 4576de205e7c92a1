# Independent PyTorch reference for fine-tuning (the authors' BEiT-based
# run_class_finetuning.py, written from the issue and the reference facts, not
# from our code): a mean-pooled ViT (patch conv + trainable pos_embed,
# pre-norm blocks, mean over tokens, fc_norm, head), BEiT's layer-decay
# parameter groups in torch.optim.AdamW, the per-iteration lr (linear warmup
# over fractional epochs then half-cosine to min_lr, as MAE's
# adjust_learning_rate), label-smoothed cross-entropy, on given batches.
#
# usage: finetune_ref.py spec.json in.safetensors out.safetensors
# spec: depth, heads, patch, eps, num_classes, base_lr, min_lr, warmup_epochs,
#       epochs, steps_per_epoch, steps, weight_decay, layer_decay, betas,
#       smoothing, mean, std
# in:   the initial weights (timm names), "images" uint8 [S, B, C, H, W] and
#       "labels" int64 [S, B]: the batches of the S steps in order
# out:  "losses" [S] float64 and the final weights under their names
import json
import math
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

spec = json.load(open(sys.argv[1]))
inputs = load_file(sys.argv[2])
images = inputs.pop("images")
labels = inputs.pop("labels")
torch.manual_seed(0)

# float64: the reference is the exact computation; ours runs in float32.
DT = torch.float64
params = {k: torch.nn.Parameter(v.clone().to(DT)) for k, v in inputs.items()}
depth, heads, patch, eps = spec["depth"], spec["heads"], spec["patch"], spec["eps"]


def P(name):
    return params[name]


def forward(x):
    x = F.conv2d(x, P("patch_embed.proj.weight"), P("patch_embed.proj.bias"), stride=patch)
    x = x.flatten(2).transpose(1, 2) + P("pos_embed")
    b, n, d = x.shape
    for i in range(depth):
        pre = f"blocks.{i}."
        h = F.layer_norm(x, (d,), P(pre + "norm1.weight"), P(pre + "norm1.bias"), eps)
        qkv = F.linear(h, P(pre + "attn.qkv.weight"), P(pre + "attn.qkv.bias"))
        q, k, v = qkv.reshape(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-2, -1)) * (d // heads) ** -0.5).softmax(-1)
        h = (a @ v).transpose(1, 2).reshape(b, n, d)
        x = x + F.linear(h, P(pre + "attn.proj.weight"), P(pre + "attn.proj.bias"))
        h = F.layer_norm(x, (d,), P(pre + "norm2.weight"), P(pre + "norm2.bias"), eps)
        h = F.gelu(F.linear(h, P(pre + "mlp.fc1.weight"), P(pre + "mlp.fc1.bias")))
        x = x + F.linear(h, P(pre + "mlp.fc2.weight"), P(pre + "mlp.fc2.bias"))
    x = F.layer_norm(x.mean(1), (d,), P("fc_norm.weight"), P("fc_norm.bias"), eps)
    return F.linear(x, P("head.weight"), P("head.bias"))


# BEiT's get_parameter_groups + LayerDecayValueAssigner: embeddings are layer 0,
# blocks.i layer i + 1, the rest depth + 1; no weight decay for 1-D tensors,
# biases and the position embedding.
def layer_id(name):
    if name in ("cls_token", "pos_embed") or name.startswith("patch_embed"):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1


groups = {}
for name, p in params.items():
    no_decay = p.ndim == 1 or name.endswith(".bias") or name in ("pos_embed", "cls_token")
    lid = layer_id(name)
    key = (lid, no_decay)
    if key not in groups:
        groups[key] = {"params": [], "weight_decay": 0.0 if no_decay else spec["weight_decay"],
                       "lr_scale": spec["layer_decay"] ** (depth + 1 - lid)}
    groups[key]["params"].append(p)
opt = torch.optim.AdamW(list(groups.values()), lr=spec["base_lr"], betas=tuple(spec["betas"]), eps=1e-8)


def lr_at(epoch):
    base, final, warm, total = spec["base_lr"], spec["min_lr"], spec["warmup_epochs"], spec["epochs"]
    if epoch < warm:
        return base * epoch / warm
    return final + (base - final) * 0.5 * (1.0 + math.cos(math.pi * (epoch - warm) / (total - warm)))


mean = torch.tensor(spec["mean"], dtype=DT).view(1, -1, 1, 1)
std = torch.tensor(spec["std"], dtype=DT).view(1, -1, 1, 1)
losses = []
for s in range(spec["steps"]):
    lr = lr_at(s / spec["steps_per_epoch"])
    for g in opt.param_groups:
        g["lr"] = lr * g["lr_scale"]
    x = (images[s].to(DT) / 255.0 - mean) / std
    loss = F.cross_entropy(forward(x), labels[s], label_smoothing=spec["smoothing"])
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())

out = {k: v.detach().float().contiguous() for k, v in params.items()}
out["losses"] = torch.tensor(losses, dtype=torch.float64)
save_file(out, sys.argv[3])
