"""PyTorch's side of bench/distributed.ts: the cpu-small ExtreMA step
(test/oracle/extrema_ref.py; 80% x 2 masks, batch per rank as given) timed
alone or as one rank of torch DistributedDataParallel over Gloo (start it with
torchrun). A rank times its steps twice: with DDP's gradient all-reduce (which
overlaps backward) and under no_sync() (none); the difference is the
communication the step waits for. Rank 0 prints one JSON line.

usage: [torchrun --nproc-per-node N] distributed_reference.py --batch 128 --threads 1 --steps 12
"""
import argparse
import gzip
import json
import os
import sys
import time
from contextlib import nullcontext

import numpy as np
import torch
import torch.distributed as dist

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test", "oracle"))
import extrema_ref as ref  # noqa: E402

ref.FUSED_ATTENTION = True
FMNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


class Student(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.base_encoder = model.base_encoder
        self.predictor = model.predictor

    def forward(self, x, keep):
        return self.predictor(self.base_encoder.head(self.base_encoder(x, keep)[0]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=12)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    cfg = {
        "encoder": {"imgSize": [28, 28], "patchSize": 4, "inChans": 1, "embedDim": 192, "depth": 6, "numHeads": 3, "mlpRatio": 4,
                    "classAttentionLayers": 2, "layerScaleInit": 0.1, "pooling": "class-attention"},
        "projectorHiddenDim": 1024, "projectorDim": 256, "projectorLayers": 3, "predictorHiddenDim": 1024, "predictorLayers": 2,
    }
    model = ref.build(cfg)
    model.momentum_encoder.load_state_dict(model.base_encoder.state_dict())
    for p in model.momentum_encoder.parameters():
        p.requires_grad_(False)
    student = Student(model)
    net = torch.nn.parallel.DistributedDataParallel(student) if world > 1 else student
    opt = torch.optim.AdamW(student.parameters(), lr=5e-4, betas=(0.9, 0.95), weight_decay=0.1)
    with gzip.open(FMNIST) as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    x = torch.from_numpy(raw[rank * a.batch:(rank + 1) * a.batch].copy()).float().div(255).unsqueeze(1).sub(0.5).div(0.5)
    g = torch.Generator().manual_seed(rank)
    n, keep_n = 49, 9

    def step(sync):
        perm = torch.rand(x.shape[0], n, generator=g).argsort(1)
        keep = perm[:, : 2 * keep_n].reshape(x.shape[0], 2, keep_n)
        with (nullcontext() if sync or world == 1 else net.no_sync()):
            p = net(x, keep)
            with torch.no_grad():
                z = model.momentum_encoder.head(model.momentum_encoder(x)[0])
            loss = ref.byol(p, z, 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(list(model.momentum_encoder.parameters()), list(model.base_encoder.parameters()), 0.004)

    def timed(sync):
        times = []
        for i in range(a.steps + 2):
            if world > 1:
                dist.barrier()
            t0 = time.perf_counter()
            step(sync)
            times.append(time.perf_counter() - t0)
        times = sorted(times[2:])
        return times[len(times) // 2]

    with_sync = timed(True)
    without = timed(False) if world > 1 else with_sync
    if rank == 0:
        grad_bytes = sum(p.numel() * p.element_size() for p in student.parameters())
        print(json.dumps({"torch": torch.__version__, "world": world, "batch": a.batch, "threads": a.threads,
                          "step_s": with_sync, "no_sync_step_s": without, "grad_bytes": grad_bytes}))
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
