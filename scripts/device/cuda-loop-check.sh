#!/usr/bin/env bash
# Second GPU check (after scripts/device/cuda-check.sh): the parity tests on
# CUDA again, then the training loops end to end with --device cuda: the demo
# pretraining reading the loss every step (--loss-every 1, a host sync per
# step) against every 20 steps (the default), the demo fine-tuning, and a
# ViT-S/16 at 224 px on the bundled images (real loader + GPU augmentation).
# Run folders come back as one tarball of their logs and plots.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/nb /tmp/runs
START=$SECONDS
stamp() { echo "[$((SECONDS - START)) s] $*" | tee -a "$OUT/progress.txt"; }
xz -dc .device/node.xz > /tmp/nb/node && chmod +x /tmp/nb/node
export PATH=/tmp/nb:$PATH
tar -xJf .device/node_modules.tar.xz
python3 -c 'import safetensors' 2>/dev/null || export PYTHONPATH="$PWD/.device/pysite${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/device.txt" 2>&1
export Torch_DIR="$(python3 -c 'import torch, os; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))')"
timeout 240 node scripts/build-native.js --force > "$OUT/build.log" 2>&1 || { stamp "build failed"; tail -50 "$OUT/build.log"; exit 1; }
stamp "built"
EXTREMA_TEST_DEVICE=cuda timeout 120 node --test dist/test/extrema/parity.test.js dist/test/train/loss-readback.test.js > "$OUT/cuda-parity.log" 2>&1
stamp "parity on cuda rc=$?"
cli="node dist/lib/cli/main.js"
for every in 1 20; do
  timeout 60 $cli pretrain --preset demo --device cuda --loss-every $every --out /tmp/runs/demo-every-$every --quiet > "$OUT/demo-every-$every.log" 2>&1
  stamp "demo pretrain --loss-every $every rc=$?"
done
timeout 60 $cli finetune --preset fmnist-demo --device cuda --precision bf16 --out /tmp/runs/demo-finetune --quiet > "$OUT/demo-finetune.log" 2>&1
stamp "demo finetune rc=$?"
timeout 90 $cli pretrain --preset demo --device cuda --precision bf16 --img-size 224 --patch-size 16 --width 384 --depth 12 --heads 6 --batch-size 256 --epochs 2 --warmup-epochs 0 --knn-probe false --out /tmp/runs/vit-s-224 --quiet > "$OUT/vit-s-224.log" 2>&1
stamp "ViT-S/16 224 pretrain rc=$?"
tar -czf "$OUT/runs.tgz" -C /tmp/runs --exclude='*.safetensors' .
grep -E "^# (pass|fail)|^not ok" "$OUT/cuda-parity.log"; tail -n 3 "$OUT"/demo-*.log "$OUT/vit-s-224.log"
grep -h '"kind":"epoch"' /tmp/runs/*/log.jsonl | cut -c1-200
cat "$OUT/progress.txt"
