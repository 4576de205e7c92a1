"""Independent PyTorch reference for ExtreMA, written from the facts about the
authors' code (shared/reference/official-implementation.md), not from the
TypeScript. Used as the oracle by test/extrema/*.test.ts.

usage: extrema_ref.py spec.json in.safetensors out.safetensors
spec: {"config": {...ExtremaConfig...}, "task": "encoder" | "extrema" | "ca_block" | "posembed" | "train_sgd" | "train_adamw" | "features",
       "device": "cpu" (default) | "cuda" | "cuda:N"}
inputs: "w:<state key>" weights, plus task inputs (images, visible, ...).
"""
import json
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

# The tests keep the explicit softmax (it also yields the attention maps);
# the benchmark switches to PyTorch's fused kernel, as production code would.
FUSED_ATTENTION = False


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class SelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.last_attn = None

    def forward(self, x):
        B, N, D = x.shape
        h = self.heads
        q, k, v = self.qkv(x).view(B, N, 3, h, D // h).permute(2, 0, 3, 1, 4)
        if FUSED_ATTENTION:
            return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, D))
        a = (q @ k.transpose(-1, -2)) * (D // h) ** -0.5
        a = a.softmax(-1)
        self.last_attn = a
        return self.proj((a @ v).transpose(1, 2).reshape(B, N, D))


class ClassAttn(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.last_attn = None

    def forward(self, u):
        B, N, D = u.shape
        h = self.heads
        q = self.q(u[:, :1]).view(B, 1, h, D // h).transpose(1, 2)
        k = self.k(u).view(B, N, h, D // h).transpose(1, 2)
        v = self.v(u).view(B, N, h, D // h).transpose(1, 2)
        if FUSED_ATTENTION:
            return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, 1, D))
        a = ((q * (D // h) ** -0.5) @ k.transpose(-1, -2)).softmax(-1)
        self.last_attn = a
        return self.proj((a @ v).transpose(1, 2).reshape(B, 1, D))


class Block(nn.Module):
    def __init__(self, dim, heads, ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CABlock(nn.Module):
    def __init__(self, dim, heads, ratio, init):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ClassAttn(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * ratio))
        self.gamma_1 = nn.Parameter(init * torch.ones(dim))
        self.gamma_2 = nn.Parameter(init * torch.ones(dim))

    def forward(self, x, cls):
        u = torch.cat([cls, x], dim=1)
        cls = cls + self.gamma_1 * self.attn(self.norm1(u))
        return cls + self.gamma_2 * self.mlp(self.norm2(cls))


def sincos(dim, gh, gw):
    # column index in the first half, row index in the second; sin then cos
    q = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float64) / q)
    rows, cols = torch.meshgrid(torch.arange(gh, dtype=torch.float64), torch.arange(gw, dtype=torch.float64), indexing="ij")
    c = cols.reshape(-1, 1) * omega
    r = rows.reshape(-1, 1) * omega
    return torch.cat([c.sin(), c.cos(), r.sin(), r.cos()], 1).float().unsqueeze(0)


def head(dims, norm="layer"):
    # "layer": the authors' heads; "batch": BYOL's original BatchNorm1d heads
    # (batch statistics in train mode, running statistics kept as buffers)
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers += [nn.BatchNorm1d(dims[i + 1]) if norm == "batch" else nn.LayerNorm(dims[i + 1]), nn.GELU()]
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    def __init__(self, e, proj, norm="layer"):
        super().__init__()
        D = e["embedDim"]
        p = e["patchSize"]
        H, W = e["imgSize"]
        self.pooling = e["pooling"]
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(e["inChans"], D, p, p)
        if self.pooling != "mean":
            self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.register_buffer("pos_embed", sincos(D, H // p, W // p))
        self.blocks = nn.ModuleList([Block(D, e["numHeads"], e["mlpRatio"]) for _ in range(e["depth"])])
        self.blocks_token = nn.ModuleList([CABlock(D, e["numHeads"], e["mlpRatio"], e["layerScaleInit"]) for _ in range(e["classAttentionLayers"])])
        self.norm = nn.LayerNorm(D, eps=1e-6)
        self.head = head(proj, norm) if proj else nn.Identity()

    def forward(self, img, keep=None):
        x = self.patch_embed.proj(img).flatten(2).transpose(1, 2) + self.pos_embed
        B, N, D = x.shape
        if keep is not None:
            # one encoder pass over the M views, concatenated mask by mask
            x = torch.cat([torch.gather(x, 1, keep[:, m, :, None].expand(-1, -1, D)) for m in range(keep.shape[1])], 0)
        if self.pooling == "class-token":
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)
        for blk in self.blocks:
            x = blk(x)
        if self.pooling == "class-attention":
            cls = self.cls_token.expand(x.shape[0], -1, -1)
            for blk in self.blocks_token:
                cls = blk(x, cls)
            x = self.norm(torch.cat([cls, x], 1))
            return x[:, 0], x[:, 1:]
        x = self.norm(x)
        if self.pooling == "class-token":
            return x[:, 0], x[:, 1:]
        return x.mean(1), x


def build(cfg):
    e = cfg["encoder"]
    proj = [e["embedDim"]] + [cfg["projectorHiddenDim"]] * (cfg["projectorLayers"] - 1) + [cfg["projectorDim"]]
    pred = [cfg["projectorDim"]] + [cfg["predictorHiddenDim"]] * (cfg["predictorLayers"] - 1) + [cfg["projectorDim"]]
    norm = cfg.get("headNorm", "layer")
    m = nn.Module()
    m.base_encoder = Encoder(e, proj, norm)
    m.momentum_encoder = Encoder(e, proj, norm)
    m.predictor = head(pred, norm)
    return m


def byol(p, z, masks):
    zn = F.normalize(z, dim=1)
    losses = [(F.normalize(pm, dim=1) - zn).pow(2).sum(1).mean() for pm in p.chunk(masks, 0)]
    return sum(losses) / masks


def step_loss(model, x, t):
    """The BYOL loss of training step t on the given views and masks (x["students"|"teachers"|"visibles"][t])."""
    keep = x["visibles"][t]
    p = model.predictor(model.base_encoder.head(model.base_encoder(x["students"][t], keep)[0]))
    with torch.no_grad():
        z = model.momentum_encoder.head(model.momentum_encoder(x["teachers"][t])[0])
    return byol(p, z, keep.shape[1])


def ema_(model, m):
    """teacher = m teacher + (1 - m) student over the parameters (buffers stay the teacher's own)."""
    for a, b in zip(model.momentum_encoder.parameters(), model.base_encoder.parameters()):
        a.mul_(m).add_(b, alpha=1 - m)


def report_training(out, model, losses):
    """The per-step losses and every final tensor of the state dict (buffers too), for the TS side to compare."""
    out["losses"] = torch.stack(losses)
    for k, v in model.state_dict().items():
        out["final:" + k] = v


def infonce(p, z, masks, T):
    k = F.normalize(z, dim=1)
    labels = torch.arange(z.shape[0], device=z.device)
    losses = [F.cross_entropy(F.normalize(pm, dim=1) @ k.t() / T, labels) * 2 * T for pm in p.chunk(masks, 0)]
    return sum(losses) / masks


def main():
    spec = json.load(open(sys.argv[1]))
    x = load_file(sys.argv[2])
    cfg = spec["config"]
    out = {}
    weights = {k[2:]: v for k, v in x.items() if k.startswith("w:")}
    model = build(cfg)
    # strict: the TypeScript state-dict names must be exactly the authors' names
    model.load_state_dict(weights, strict=True)
    if spec.get("dtype") == "float64":
        model.double()
        x = {k: (v.double() if v.is_floating_point() else v) for k, v in x.items()}
    device = torch.device(spec.get("device", "cpu"))
    model.to(device)
    x = {k: v.to(device) for k, v in x.items()}
    task = spec["task"]
    if task == "posembed":
        e = cfg["encoder"]
        p = e["patchSize"]
        out["pos_embed"] = sincos(e["embedDim"], e["imgSize"][0] // p, e["imgSize"][1] // p)
    elif task == "encoder":
        enc = model.base_encoder
        img = x["images"].requires_grad_(True)
        inst, tokens = enc(img, x.get("visible"))
        out["instance"] = inst
        out["tokens"] = tokens
        out["projection"] = enc.head(inst)
        for i, blk in enumerate(enc.blocks):
            out[f"attn:blocks.{i}"] = blk.attn.last_attn
        for j, blk in enumerate(enc.blocks_token):
            out[f"attn:blocks_token.{j}"] = blk.attn.last_attn
        obj = (inst * x["r_instance"]).sum() + (tokens * x["r_tokens"]).sum() + (out["projection"] * x["r_projection"]).sum()
        obj.backward()
        out["grad:images"] = img.grad
        for k, v in enc.named_parameters():
            if v.grad is not None:
                out["grad:base_encoder." + k] = v.grad
    elif task == "extrema":
        masks = x["visible"].shape[1]
        p = model.predictor(model.base_encoder.head(model.base_encoder(x["student"], x["visible"])[0]))
        with torch.no_grad():
            z = model.momentum_encoder.head(model.momentum_encoder(x["teacher"])[0])
        loss = byol(p, z, masks) if cfg["loss"] == "byol" else infonce(p, z, masks, cfg["temperature"])
        loss.backward()
        out["loss"] = loss.reshape(1)
        out["predictions"] = p
        out["targets"] = z
        for k, v in model.named_parameters():
            if k.startswith("momentum_encoder"):
                continue
            out["grad:" + k] = v.grad if v.grad is not None else torch.zeros_like(v)
        # the model is in train mode: BatchNorm heads (student and teacher) moved their running statistics
        for k, v in model.named_buffers():
            if "running_" in k or "num_batches" in k:
                out["buffer:" + k] = v
    elif task == "ca_block":
        # one class-attention block on its own: new class token and all gradients
        blk = model.base_encoder.blocks_token[0]
        xs = x["x"].requires_grad_(True)
        cls = x["cls"].requires_grad_(True)
        y = blk(xs, cls)
        (y * x["r"]).sum().backward()
        out["out"] = y
        out["grad:x"] = xs.grad
        out["grad:cls"] = cls.grad
        for k, v in blk.named_parameters():
            out["grad:" + k] = v.grad
    elif task == "train_sgd":
        # plain SGD on the student + EMA teacher, step by step on given views and masks
        for q in model.momentum_encoder.parameters():
            q.requires_grad_(False)
        student_params = list(model.base_encoder.parameters()) + list(model.predictor.parameters())
        losses = []
        for t in range(x["visibles"].shape[0]):
            loss = step_loss(model, x, t)
            loss.backward()
            with torch.no_grad():
                for q in student_params:
                    q -= spec["lr"] * q.grad
                    q.grad = None
                ema_(model, spec["momenta"][t])
            losses.append(loss.detach())
        report_training(out, model, losses)
    elif task == "train_adamw":
        # torch.optim.AdamW on the student in groups [decay, no decay] x [others, predictor], the
        # predictor's lr times spec["predictor_lr_scale"]; lr and EMA momentum per step from the spec
        for q in model.momentum_encoder.parameters():
            q.requires_grad_(False)
        named = [("base_encoder." + n, q) for n, q in model.base_encoder.named_parameters()] + [("predictor." + n, q) for n, q in model.predictor.named_parameters()]
        named = [(n, q) for n, q in named if q.requires_grad]
        scale = spec["predictor_lr_scale"]
        plain = lambda n, q: q.ndim <= 1 or n.endswith(".bias") or n.split(".")[-1] in ("pos_embed", "cls_token")
        groups = []
        for decays in (True, False):
            for pred in (False, True):
                ps = [q for n, q in named if plain(n, q) != decays and n.startswith("predictor.") == pred]
                groups.append({"params": ps, "weight_decay": spec["weight_decay"] if decays else 0.0, "scale": scale if pred else 1.0})
        opt = torch.optim.AdamW(groups, lr=spec["lrs"][0], betas=tuple(spec["betas"]), weight_decay=spec["weight_decay"], foreach=True)
        losses = []
        for t in range(x["visibles"].shape[0]):
            for gr in opt.param_groups:
                gr["lr"] = spec["lrs"][t] * gr["scale"]
            loss = step_loss(model, x, t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                ema_(model, spec["momenta"][t])
            losses.append(loss.detach())
        report_training(out, model, losses)
    elif task == "features":
        # raw uint8 NHWC pixels -> [0, 1] -> normalised, as `extrema embed` documents
        img = x["pixels"].float().div(255).permute(0, 3, 1, 2)
        mean = torch.tensor(spec["mean"], device=device).view(1, -1, 1, 1)
        std = torch.tensor(spec["std"], device=device).view(1, -1, 1, 1)
        enc = model.momentum_encoder if spec.get("which", "teacher") == "teacher" else model.base_encoder
        with torch.no_grad():
            out["features"] = enc((img - mean) / std)[0]
        if spec.get("save_pth"):
            # an authors'-style checkpoint: DDP prefixes, optimizer state, argparse args
            import argparse
            from collections import OrderedDict
            sd = OrderedDict(("module." + k, v) for k, v in model.state_dict().items())
            opt = torch.optim.AdamW([p for p in model.parameters()], lr=1e-3, betas=(0.9, 0.95))
            ns = argparse.Namespace(arch="vit_tiny", lr=1.5e-4, mask_ratio=0.8, num_masks=1)
            torch.save({"epoch": 1, "arch": "vit_tiny", "state_dict": sd, "optimizer": opt.state_dict(), "args": ns}, spec["save_pth"])
    else:
        raise SystemExit(f"unknown task {task}")
    save_file({k: v.detach().cpu().clone().contiguous() for k, v in out.items()}, sys.argv[3])


if __name__ == "__main__":
    main()
