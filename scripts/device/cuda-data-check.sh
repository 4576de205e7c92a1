#!/usr/bin/env bash
# Third GPU check: data at GPU speed. The loader alone reading a JPEG folder
# vs a pack (bench/pack.js, on this machine's cores), then a ViT-S/16 224 px
# bf16 pretraining on the bundled images read from the IDX file (resized on
# the CPU each epoch) vs from a pack made once at 224 px.
source "$(dirname "$0")/setup.sh"
BENCH_IMAGES=2000 timeout 100 node dist/bench/pack.js > "$OUT/pack-bench.log" 2>&1
stamp "pack bench rc=$?"
cli="node dist/lib/cli/main.js"
IDX=examples/data/fashion-mnist/train-images-idx3-ubyte.gz
timeout 60 $cli pack $IDX --out /tmp/pack224 --size 224 --quiet > "$OUT/pack.log" 2>&1
stamp "pack rc=$?"
vits="--preset demo --device cuda --precision bf16 --img-size 224 --patch-size 16 --width 384 --depth 12 --heads 6 --batch-size 256 --epochs 3 --warmup-epochs 0 --knn-probe false --quiet"
timeout 90 $cli pretrain $vits --train $IDX --out /tmp/runs/vit-s-idx > "$OUT/vit-s-idx.log" 2>&1
stamp "ViT-S from IDX rc=$?"
timeout 90 $cli pretrain $vits --train /tmp/pack224 --out /tmp/runs/vit-s-pack > "$OUT/vit-s-pack.log" 2>&1
stamp "ViT-S from pack rc=$?"
tar -czf "$OUT/runs.tgz" -C /tmp/runs --exclude='*.safetensors' .
cat "$OUT/pack-bench.log" "$OUT/pack.log"; tail -n 2 "$OUT"/vit-s-*.log
for r in vit-s-idx vit-s-pack; do echo "$r"; grep -h '"kind":"epoch"' /tmp/runs/$r/log.jsonl | cut -c1-120; done
cat "$OUT/progress.txt"
