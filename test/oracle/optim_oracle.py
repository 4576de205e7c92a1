"""Oracle for test/optim: torch.optim.AdamW, clip_grad_norm_ and
torch.amp.GradScaler('cpu') on the gradients the tests send.

usage: optim_oracle.py spec.json inputs.safetensors outputs.safetensors
spec["cases"] is a list of cases, each with a "name" that prefixes its inputs
and outputs ("<name>/<key>"), so one Python start serves a whole test file.
A case's "mode" picks what runs:
  adamw   params p:<name>, gradients g:<name> stacked over steps ([T, *shape]);
          spec: names, steps, lrs[T], wds[T] (decay group), betas, eps, fused,
          no_grad {name: [steps without a gradient]}. Groups are split here
          with the authors' rule (ndim <= 1, *.bias, pos_embed, cls_token).
  clip    grads g:<i> (missing index: no gradient), max_norm, norm_type.
  scaler  w, b, inputs x ([T, N, 4]); a linear model trained T steps with
          GradScaler + AdamW(foreach); spec: init_scale, growth_interval,
          lr, unscale_at (steps that call unscale_ + clip first).
"""
import json
import sys

import torch
from safetensors.torch import load_file, save_file


def no_decay(name, p):
    return p.ndim <= 1 or name.endswith(".bias") or name.split(".")[-1] in ("pos_embed", "cls_token")


def adamw(spec, x):
    out = {}
    names = spec["names"]
    params = {n: x["p:" + n].clone().requires_grad_(True) for n in names}
    decay = [params[n] for n in names if not no_decay(n, params[n])]
    plain = [params[n] for n in names if no_decay(n, params[n])]
    kind = {"fused": True} if spec["fused"] else {"foreach": True}
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": spec["wds"][0]}, {"params": plain, "weight_decay": 0.0}],
        lr=spec["lrs"][0], betas=tuple(spec["betas"]), eps=spec["eps"], **kind,
    )
    for t in range(spec["steps"]):
        opt.param_groups[0]["lr"] = spec["lrs"][t]
        opt.param_groups[1]["lr"] = spec["lrs"][t]
        opt.param_groups[0]["weight_decay"] = spec["wds"][t]
        for n in names:
            skip = t in spec["no_grad"].get(n, [])
            params[n].grad = None if skip else x["g:" + n][t].clone()
        opt.step()
    for n in names:
        out["p:" + n] = params[n]
        st = opt.state[params[n]]
        out["exp_avg:" + n] = st["exp_avg"]
        out["exp_avg_sq:" + n] = st["exp_avg_sq"]
        out["step:" + n] = st["step"]
    return out


def clip(spec, x):
    out = {}
    params = []
    for i, shape in enumerate(spec["shapes"]):
        p = torch.zeros(shape, requires_grad=True)
        if "g:%d" % i in x:
            p.grad = x["g:%d" % i].clone()
        params.append(p)
    out["norm"] = torch.nn.utils.clip_grad_norm_(params, spec["max_norm"], norm_type=spec["norm_type"])
    for i, p in enumerate(params):
        if p.grad is not None:
            out["g:%d" % i] = p.grad
    return out


def scaler(spec, x):
    device = spec.get("device", "cpu")
    x = {k: v.to(device) for k, v in x.items()}
    w = x["w"].clone().requires_grad_(True)
    b = x["b"].clone().requires_grad_(True)
    opt = torch.optim.AdamW([w, b], lr=spec["lr"], foreach=True)
    sc = torch.amp.GradScaler(device.split(":")[0], init_scale=spec["init_scale"], growth_interval=spec["growth_interval"])
    scales, trackers, stepped, norms = [], [], [], []
    for t in range(x["x"].shape[0]):
        loss = ((x["x"][t] @ w + b) ** 2).mean()
        sc.scale(loss).backward()
        if t in spec["unscale_at"]:
            sc.unscale_(opt)
            norms.append(float(torch.nn.utils.clip_grad_norm_([w, b], 1.0)))
        before = opt.state[w]["step"].item() if w in opt.state else 0.0
        sc.step(opt)
        after = opt.state[w]["step"].item() if w in opt.state else 0.0
        stepped.append(float(after > before))
        sc.update()
        scales.append(sc.get_scale())
        trackers.append(float(sc._get_growth_tracker()))
        opt.zero_grad(set_to_none=True)
    f64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    return {"w": w, "b": b, "scales": f64(scales), "trackers": f64(trackers), "stepped": f64(stepped), "norms": f64(norms)}


MODES = {"adamw": adamw, "clip": clip, "scaler": scaler}

# Results of these elementwise kernels do not depend on the thread count; one
# thread keeps the fused CPU AdamW kernel, which opens a parallel region for
# every tensor however small, from stalling on a busy machine.
torch.set_num_threads(1)

spec = json.load(open(sys.argv[1]))
x = load_file(sys.argv[2])
out = {}
for case in spec["cases"]:
    prefix = case["name"] + "/"
    inputs = {k[len(prefix):]: v for k, v in x.items() if k.startswith(prefix)}
    for k, v in MODES[case["mode"]](case, inputs).items():
        out[prefix + k] = v
save_file({k: v.detach().cpu().clone().contiguous() for k, v in out.items()}, sys.argv[3])
