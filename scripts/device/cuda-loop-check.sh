#!/usr/bin/env bash
# Second GPU check (after scripts/device/cuda-check.sh): the parity tests on
# CUDA again, then the training loops end to end with --device cuda: the demo
# pretraining reading the loss every step (--loss-every 1, a host sync per
# step) against every 20 steps (the default), the demo fine-tuning, and a
# ViT-S/16 at 224 px on the bundled images (real loader + GPU augmentation).
# Run folders come back as one tarball of their logs and plots.
source "$(dirname "$0")/setup.sh"
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
