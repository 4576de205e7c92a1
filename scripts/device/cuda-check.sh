#!/usr/bin/env bash
# Runs on the lent GPU machine (python3 + CUDA torch, no Node; see
# ../shared/device/README.md): builds the addon against that machine's torch,
# then, most important first, each step time-boxed and logged under $OUT:
#   1. the CUDA runtime and memory tests (incl. the V8 collection count),
#   2. bench/gpu-step (ViT-B/16 and ViT-S/16 at 224, bf16, batch 128 and 256,
#      against PyTorch eager), with --trace-gc to count full collections,
#   3. every op family and the model parity tests on CUDA against PyTorch on CUDA,
#      and operator-trace replays of the encoder on CUDA,
#   4. NCCL: collectives and the Reducer on CUDA tensors,
#   5. the demo pretraining and the demo fine-tuning with --device cuda.
# Prepare here with scripts/device/prepare.sh and carry .device and dist.
source "$(dirname "$0")/setup.sh"

timeout 90 node --test dist/test/runtime/runtime.test.js dist/test/tensor/memory.test.js dist/test/tensor/errors.test.js > "$OUT/cuda-tests.log" 2>&1
stamp "runtime/memory/errors tests rc=$?"

BENCH_OUT="$OUT/gpu-step.json" timeout 200 node --trace-gc dist/bench/gpu-step.js > "$OUT/gpu-step.trace.log" 2>&1
stamp "gpu-step rc=$?"
grep -v '^\[' "$OUT/gpu-step.trace.log" > "$OUT/gpu-step.log"
echo "full (Mark-Compact) collections in the bench process: $(grep -c 'Mark-Compact' "$OUT/gpu-step.trace.log")" >> "$OUT/gpu-step.log"
gzip -f "$OUT/gpu-step.trace.log"

EXTREMA_TEST_DEVICE=cuda timeout 120 node --test dist/test/tensor/ops.test.js dist/test/extrema/parity.test.js dist/test/optim/clip-scaler.test.js dist/test/runtime/trace.test.js > "$OUT/cuda-parity.log" 2>&1
stamp "ops + parity on cuda rc=$?"

# NCCL (issue 13): collectives on CUDA tensors, the Reducer on CUDA gradients, and
# 2 ranks vs 1 process where the machine has 2 GPUs; skipped where the build has no NCCL
timeout 90 node --test dist/test/distributed/nccl.test.js > "$OUT/nccl.log" 2>&1
stamp "nccl rc=$?"

timeout 100 node dist/lib/cli/main.js pretrain --preset demo --device cuda --out "$OUT/demo-pretrain" --quiet > "$OUT/demo-pretrain.log" 2>&1
stamp "demo pretrain rc=$?"
timeout 60 node dist/lib/cli/main.js finetune --preset fmnist-demo --device cuda --precision bf16 --out "$OUT/demo-finetune" --quiet > "$OUT/demo-finetune.log" 2>&1
stamp "demo finetune rc=$?"
rm -f "$OUT"/demo-*/checkpoint.safetensors "$OUT"/demo-*/classifier.safetensors
tail -5 "$OUT/cuda-tests.log" "$OUT/cuda-parity.log" "$OUT/nccl.log"; cat "$OUT/gpu-step.log" "$OUT/progress.txt"
