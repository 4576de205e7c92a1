#!/usr/bin/env bash
# Runs on the lent GPU machine: builds the addon against that machine's CUDA
# torch, then runs the CUDA tests and the benchmark, logging under $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/nb
xz -dc .device/node.xz > /tmp/nb/node && chmod +x /tmp/nb/node
export PATH=/tmp/nb:$PATH
tar -xJf .device/node_modules.tar.xz
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
} > "$OUT/device.txt" 2>&1
export Torch_DIR="$(python3 -c 'import torch, os; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))')"
node scripts/build-native.js --force > "$OUT/build.log" 2>&1 || { tail -50 "$OUT/build.log"; exit 1; }
node --test dist/test/runtime/runtime.test.js dist/test/tensor/memory.test.js dist/test/tensor/errors.test.js > "$OUT/cuda-tests.log" 2>&1
echo "tests rc=$?" >> "$OUT/cuda-tests.log"
BENCH_ROUNDS=1 node dist/bench/tensor-ops.js > "$OUT/bench.log" 2>&1
tail -20 "$OUT/cuda-tests.log" "$OUT/bench.log"
