"""Oracle for the linear probe: torch.nn.BatchNorm1d, torch.optim.SGD and the
authors' main_lincls head (BatchNorm1d(affine=False) + Linear, SGD, linear
warmup then half cosine per iteration as MAE's lr_sched.adjust_learning_rate).

usage: linprobe_oracle.py spec.json inputs.safetensors outputs.safetensors
spec["cases"]: each case has a "name" prefixing its inputs and outputs
("<name>/<key>") and a "mode":
  batchnorm  inputs x:<t> (train steps), x_eval; spec affine, momentum, eps.
             Loss per step = sum(out * w:<t>) so the backward has a
             non-trivial upstream gradient. Outputs y:<t>, gx:<t>,
             gweight/gbias (summed over steps), running_mean, running_var,
             num_batches_tracked, y_eval.
  sgd        params p:<i>, gradients g:<i> stacked over steps; spec lrs,
             momentum, dampening, weight_decay, nesterov, no_grad {i: [steps]};
             lars + trust_coefficient: MAE's LARS instead of torch.optim.SGD.
             Outputs p:<i>, buf:<i>.
  head       features, labels (int64), weight, bias (the head's initial
             Linear), order (int64 [steps, batch]: rows of each step),
             test_features; spec lr, warmup_steps, momentum. Outputs losses,
             weight, bias, running_mean, running_var, test_logits.
"""
import json
import math
import sys

import torch
from safetensors.torch import load_file, save_file


def batchnorm(spec, x):
    c = x["x:0"].shape[1]
    bn = torch.nn.BatchNorm1d(c, eps=spec["eps"], momentum=spec["momentum"], affine=spec["affine"]).double()
    out = {}
    t = 0
    while "x:%d" % t in x:
        inp = x["x:%d" % t].clone().requires_grad_(True)
        y = bn(inp)
        (y * x["w:%d" % t]).sum().backward()
        out["y:%d" % t] = y
        out["gx:%d" % t] = inp.grad
        t += 1
    if spec["affine"]:
        out["gweight"] = bn.weight.grad
        out["gbias"] = bn.bias.grad
    out["running_mean"] = bn.running_mean
    out["running_var"] = bn.running_var
    out["num_batches_tracked"] = bn.num_batches_tracked
    bn.eval()
    with torch.no_grad():
        out["y_eval"] = bn(x["x_eval"])
    return out


class Lars(torch.optim.Optimizer):
    """LARS as MAE's util/lars.py: trust-ratio scaling and weight decay for
    matrices only, then heavy-ball momentum without dampening."""

    def __init__(self, params, lr, weight_decay, momentum, trust_coefficient):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, trust_coefficient=trust_coefficient))

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            for p in g["params"]:
                dp = p.grad
                if dp is None:
                    continue
                if p.ndim > 1:
                    dp = dp.add(p, alpha=g["weight_decay"])
                    pn, un = torch.norm(p), torch.norm(dp)
                    one = torch.ones_like(pn)
                    q = torch.where(pn > 0.0, torch.where(un > 0, g["trust_coefficient"] * pn / un, one), one)
                    dp = dp.mul(q)
                st = self.state[p]
                if "momentum_buffer" not in st:
                    st["momentum_buffer"] = torch.zeros_like(p)
                st["momentum_buffer"].mul_(g["momentum"]).add_(dp)
                p.add_(st["momentum_buffer"], alpha=-g["lr"])


def sgd(spec, x):
    n = len([k for k in x if k.startswith("p:")])
    params = [x["p:%d" % i].clone().requires_grad_(True) for i in range(n)]
    if spec.get("lars"):
        opt = Lars(params, lr=spec["lrs"][0], weight_decay=spec["weight_decay"], momentum=spec["momentum"],
                   trust_coefficient=spec["trust_coefficient"])
    else:
        opt = torch.optim.SGD(params, lr=spec["lrs"][0], momentum=spec["momentum"], dampening=spec["dampening"],
                              weight_decay=spec["weight_decay"], nesterov=spec["nesterov"])
    for t, lr in enumerate(spec["lrs"]):
        opt.param_groups[0]["lr"] = lr
        for i, p in enumerate(params):
            skip = t in spec["no_grad"].get(str(i), [])
            p.grad = None if skip else x["g:%d" % i][t].clone()
        opt.step()
    out = {}
    for i, p in enumerate(params):
        out["p:%d" % i] = p
        buf = opt.state[p].get("momentum_buffer")
        if buf is not None:
            out["buf:%d" % i] = buf
    return out


def lr_at(it, total, warmup, peak):
    # MAE util/lr_sched.py, in iterations instead of fractional epochs.
    if it < warmup:
        return peak * it / warmup
    return peak * 0.5 * (1.0 + math.cos(math.pi * (it - warmup) / (total - warmup)))


def head(spec, x):
    feats, labels = x["features"], x["labels"]
    linear = torch.nn.Linear(feats.shape[1], x["weight"].shape[0])
    with torch.no_grad():
        linear.weight.copy_(x["weight"])
        linear.bias.copy_(x["bias"])
    bn = torch.nn.BatchNorm1d(feats.shape[1], affine=False)
    model = torch.nn.Sequential(bn, linear)
    opt = torch.optim.SGD(model.parameters(), lr=spec["lr"], momentum=spec["momentum"], weight_decay=0.0)
    order = x["order"]
    total = order.shape[0]
    losses = []
    model.train()
    for it in range(total):
        for g in opt.param_groups:
            g["lr"] = lr_at(it, total, spec["warmup_steps"], spec["lr"])
        rows = order[it]
        loss = torch.nn.functional.cross_entropy(model(feats[rows]), labels[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        logits = model(x["test_features"])
    return {"losses": torch.tensor(losses, dtype=torch.float64), "weight": linear.weight, "bias": linear.bias,
            "running_mean": bn.running_mean, "running_var": bn.running_var, "test_logits": logits}


MODES = {"batchnorm": batchnorm, "sgd": sgd, "head": head}

spec = json.load(open(sys.argv[1]))
x = load_file(sys.argv[2])
out = {}
for case in spec["cases"]:
    prefix = case["name"] + "/"
    inputs = {k[len(prefix):]: v for k, v in x.items() if k.startswith(prefix)}
    for k, v in MODES[case["mode"]](case, inputs).items():
        out[prefix + k] = v.detach().clone().contiguous()
save_file(out, sys.argv[3])
