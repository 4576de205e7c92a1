"""The PyTorch reference for issue 4's small CPU recipe, written independently
from the paper and the reference facts (model: test/oracle/extrema_ref.py).
It trains on Fashion-MNIST IDX files with the same recipe as
`extrema pretrain --preset cpu-small` and logs JSONL (loss per step, kNN per
epoch) so the two curves can be compared; `--time-steps N` instead times N
training steps and reports the median step time and peak RSS.

usage: pretrain_reference.py --out DIR [--epochs 4] [--train-limit 0] [--time-steps 0]
       [--head-norm layer|batch] [--lr 5e-4] [--warmup-epochs 1] [--momentum-schedule cosine|constant]
       [--momentum 0.996] [--mask-ratio 0.8] [--num-masks 2] [--patch-size 4] [--predictor-lr-scale 1]
(the recipe levers of issue 11, named like `extrema pretrain`'s flags; --lr is the base lr at batch 256)
"""
import argparse
import gzip
import json
import math
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test", "oracle"))
import extrema_ref as ref  # noqa: E402

ref.FUSED_ATTENTION = True
FMNIST = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    data = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def random_resized_crop_params(g, h, w, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)):
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * (scale[0] + (scale[1] - scale[0]) * torch.rand(1, generator=g).item())
        aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * torch.rand(1, generator=g).item())
        cw = int(round(math.sqrt(target * aspect)))
        ch = int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (1,), generator=g).item())
            left = int(torch.randint(0, w - cw + 1, (1,), generator=g).item())
            return top, left, ch, cw
    side = min(h, w)
    return (h - side) // 2, (w - side) // 2, side, side


def shared_crop(images, g, size):
    """One RandomResizedCrop + flip per image (bilinear), shared by both views."""
    out = []
    for img in images:
        top, left, ch, cw = random_resized_crop_params(g, img.shape[-2], img.shape[-1])
        crop = img[:, top:top + ch, left:left + cw].unsqueeze(0)
        crop = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
        if torch.rand(1, generator=g).item() < 0.5:
            crop = crop.flip(-1)
        out.append(crop)
    return torch.stack(out)


def jitter(x, g, brightness=0.4, contrast=0.4, p=0.8):
    """Per image, with probability p: brightness and contrast in random order (grayscale images)."""
    b = x.shape[0]
    apply = torch.rand(b, generator=g) < p
    fb = 1 + (torch.rand(b, generator=g) * 2 - 1) * brightness
    fc = 1 + (torch.rand(b, generator=g) * 2 - 1) * contrast
    order = torch.rand(b, generator=g) < 0.5
    out = x.clone()
    for i in range(b):
        if not apply[i]:
            continue
        y = x[i]
        ops = [lambda t: (t * fb[i]).clamp(0, 1), lambda t: ((t - t.mean()) * fc[i] + t.mean()).clamp(0, 1)]
        if order[i]:
            ops.reverse()
        for op in ops:
            y = op(y)
        out[i] = y
    return out


def knn_accuracy(bank, bank_labels, queries, query_labels, k=200, t=0.07, classes=10):
    bank = F.normalize(bank, dim=1)
    queries = F.normalize(queries, dim=1)
    correct = 0
    for start in range(0, queries.shape[0], 1024):
        q = queries[start:start + 1024]
        sim, idx = (q @ bank.t()).topk(k, dim=1)
        votes = torch.zeros(q.shape[0], classes).scatter_add_(1, bank_labels[idx], (sim / t).exp())
        correct += (votes.argmax(1) == query_labels[start:start + 1024]).sum().item()
    return correct / queries.shape[0]


def embed(encoder, images, batch=512):
    feats = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch):
            x = images[start:start + batch].float().div(255).unsqueeze(1).sub(0.5).div(0.5)
            feats.append(encoder(x)[0])
    return torch.cat(feats)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--train-limit", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--time-steps", type=int, default=0)
    ap.add_argument("--head-norm", choices=["layer", "batch"], default="layer")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup-epochs", type=float, default=1)
    ap.add_argument("--momentum-schedule", choices=["cosine", "constant"], default="cosine")
    ap.add_argument("--momentum", type=float, default=0.996)
    ap.add_argument("--mask-ratio", type=float, default=0.8)
    ap.add_argument("--num-masks", type=int, default=2)
    ap.add_argument("--patch-size", type=int, default=4)
    ap.add_argument("--predictor-lr-scale", type=float, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)

    train = torch.from_numpy(read_idx(f"{FMNIST}/train-images-idx3-ubyte.gz").copy())
    train_labels = torch.from_numpy(read_idx(f"{FMNIST}/train-labels-idx1-ubyte.gz").astype(np.int64))
    test = torch.from_numpy(read_idx(f"{FMNIST}/t10k-images-idx3-ubyte.gz").copy())
    test_labels = torch.from_numpy(read_idx(f"{FMNIST}/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    if not 0 <= a.warmup_epochs < a.epochs:
        raise SystemExit(f"--warmup-epochs must be in [0, epochs = {a.epochs})")
    if 28 % a.patch_size:
        raise SystemExit(f"--patch-size must divide 28, not {a.patch_size}")
    if a.train_limit:
        train, train_labels = train[: a.train_limit], train_labels[: a.train_limit]

    cfg = {
        "encoder": {"imgSize": [28, 28], "patchSize": a.patch_size, "inChans": 1, "embedDim": 192, "depth": 6, "numHeads": 3, "mlpRatio": 4,
                    "classAttentionLayers": 2, "layerScaleInit": 0.1, "pooling": "class-attention"},
        "projectorHiddenDim": 1024, "projectorDim": 256, "projectorLayers": 3, "predictorHiddenDim": 1024, "predictorLayers": 2,
        "headNorm": a.head_norm,
    }
    model = ref.build(cfg)
    # the authors' init: xavier Linear (bias 0) in the encoders, patch conv as 2-D, cls N(0, .02)
    for enc in (model.base_encoder,):
        for name, m in enc.named_modules():
            if isinstance(m, torch.nn.Linear) and not name.startswith("head"):
                torch.nn.init.xavier_uniform_(m.weight)
                torch.nn.init.zeros_(m.bias)
        w = enc.patch_embed.proj.weight
        torch.nn.init.xavier_uniform_(w.data.view(w.shape[0], -1))
        torch.nn.init.normal_(enc.cls_token, std=0.02)
    model.momentum_encoder.load_state_dict(model.base_encoder.state_dict())
    for p in model.momentum_encoder.parameters():
        p.requires_grad_(False)

    student = list(model.base_encoder.named_parameters()) + [("predictor." + n, p) for n, p in model.predictor.named_parameters()]
    decays = lambda n, p: p.ndim > 1 and not n.endswith(("pos_embed", "cls_token"))
    # [decay, no decay] x [others, predictor]; the predictor's lr is scaled like the library's predictorLrScale
    groups = [{"params": [p for n, p in student if decays(n, p) == d and n.startswith("predictor.") == pred], "weight_decay": 0.1 if d else 0.0,
               "scale": a.predictor_lr_scale if pred else 1.0} for d in (True, False) for pred in (False, True)]
    batch = a.batch_size
    lr = a.lr * batch / 256
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))
    steps_per_epoch = train.shape[0] // batch
    g = torch.Generator().manual_seed(a.seed + 1)
    n = (28 // a.patch_size) ** 2
    keep_n = int(n * (1 - a.mask_ratio) + 1e-9)
    if keep_n < 1 or keep_n * a.num_masks > n:
        raise SystemExit(f"{a.num_masks} disjoint masks of {keep_n} visible patches do not fit {n} patches")
    log = open(os.path.join(a.out, "log.jsonl"), "w")

    def knn():
        acc = knn_accuracy(embed(model.momentum_encoder, train[:10000]), train_labels[:10000], embed(model.momentum_encoder, test[:2000]), test_labels[:2000])
        return acc

    def step(x_u8, t):
        w = a.warmup_epochs
        now = lr * t / w if t < w else lr * 0.5 * (1 + math.cos(math.pi * (t - w) / (a.epochs - w)))
        for gr in opt.param_groups:
            gr["lr"] = now * gr["scale"]
        x = x_u8.float().div(255).unsqueeze(1)
        crop = shared_crop(x, g, 28)
        v1 = jitter(crop, g).sub(0.5).div(0.5)
        v2 = jitter(crop, g).sub(0.5).div(0.5)
        perm = torch.rand(x.shape[0], n, generator=g).argsort(1)
        keep = perm[:, : a.num_masks * keep_n].reshape(x.shape[0], a.num_masks, keep_n)
        p = model.predictor(model.base_encoder.head(model.base_encoder(v1, keep)[0]))
        with torch.no_grad():
            z = model.momentum_encoder.head(model.momentum_encoder(v2)[0])
        loss = ref.byol(p, z, a.num_masks)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        m = a.momentum if a.momentum_schedule == "constant" else 1 - (1 - a.momentum) * (1 + math.cos(math.pi * t / a.epochs)) / 2
        with torch.no_grad():
            torch._foreach_lerp_(list(model.momentum_encoder.parameters()), list(model.base_encoder.parameters()), 1 - m)
        return loss.item()

    if a.time_steps:
        order = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(a.seed))
        times = []
        for i in range(a.time_steps + 1):
            idx = order[(i % steps_per_epoch) * batch:(i % steps_per_epoch + 1) * batch]
            t0 = time.perf_counter()
            step(train[idx], 0.5)
            times.append(time.perf_counter() - t0)
        times = sorted(times[1:])
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps({"torch": torch.__version__, "median_step_s": times[len(times) // 2], "peak_rss_bytes": rss}))
        return

    acc = knn()
    log.write(json.dumps({"kind": "knn", "epoch": 0, "accuracy": acc}) + "\n")
    print(f"epoch 0 knn {acc:.4f}", flush=True)
    it = 0
    for epoch in range(a.epochs):
        order = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(a.seed * 1000003 + epoch))
        t0 = time.time()
        for s in range(steps_per_epoch):
            idx = order[s * batch:(s + 1) * batch]
            loss = step(train[idx], it / steps_per_epoch)
            it += 1
            log.write(json.dumps({"kind": "step", "iteration": it, "epoch": it / steps_per_epoch, "loss": loss}) + "\n")
        acc = knn()
        log.write(json.dumps({"kind": "knn", "epoch": epoch + 1, "accuracy": acc, "seconds": time.time() - t0}) + "\n")
        log.flush()
        print(f"epoch {epoch + 1} knn {acc:.4f} ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
