"""PyTorch side of bench/tensor-ops.ts: the same operations, timed the same
way (best of several repeats, seconds per iteration). Prints JSON."""
import json
import sys
import time

import numpy as np
import torch

threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
torch.set_num_threads(threads)


def best(fn, iters, repeats=5):
    fn(max(1, iters // 10))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(iters)
        times.append((time.perf_counter() - t0) / iters)
    return min(times)


a = torch.randn(4)
b = torch.randn(4)


def small_add(n):
    for _ in range(n):
        c = a + b


def inplace_add(n):
    x = a.clone()
    for _ in range(n):
        x.add_(b)


def chain12(n):
    for _ in range(n):
        x = a + b
        x = x * 2
        x = x - 1
        x = x.exp()
        x = x.neg()
        x = x.abs()
        x = x.sqrt()
        x = x + a
        x = x.tanh()
        x = x * b
        x = x.sigmoid()
        x = x.sum()


m1 = torch.randn(1024, 1024)
m2 = torch.randn(1024, 1024)


def matmul(n):
    for _ in range(n):
        c = m1 @ m2


small = np.random.rand(1024).astype(np.float32)
large = np.random.rand(1 << 20).astype(np.float32)


def from_small(n):
    for _ in range(n):
        t = torch.tensor(small)


def from_large(n):
    for _ in range(n):
        t = torch.tensor(large)


with torch.no_grad():
    pass
results = {
    "small_add": best(small_add, 200000),
    "inplace_add": best(inplace_add, 200000),
    "chain12": best(chain12, 20000),
    "matmul1024": best(matmul, 20, 7),
    "from_typed_1k": best(from_small, 100000),
    "from_typed_1m": best(from_large, 500),
}
print(json.dumps({"threads": threads, "torch": torch.__version__, "results": results}))
