#!/usr/bin/env bash
# Fourth GPU check (prepared without a GPU; see BENCHMARKS.md for what it has
# and has not measured): CUDA graphs and the faster pack loader.
#   1. test/runtime/graph.test.ts on CUDA (device lr / EMA equal the host
#      versions; a captured step replays on new inputs) and the parity tests,
#   2. bench/gpu-step with BENCH_GRAPH=1: ViT-B/16 and ViT-S/16 at 224, bf16,
#      batch 128 and 256, eager and graphed against PyTorch eager,
#   3. the demo pretraining with and without --cuda-graph (epoch times, kNN),
#   4. ViT-S/16 224 px from a pack, with and without --cuda-graph,
#   5. the loader alone on this host's cores (bench/pack.js).
# Prepare here with scripts/device/prepare.sh and carry .device and dist.
source "$(dirname "$0")/setup.sh"
EXTREMA_TEST_DEVICE=cuda timeout 90 node --test dist/test/runtime/graph.test.js dist/test/extrema/parity.test.js > "$OUT/cuda-graph-tests.log" 2>&1
stamp "graph + parity tests on cuda rc=$?"
BENCH_GRAPH=1 BENCH_OUT="$OUT/gpu-step-graph.json" timeout 240 node dist/bench/gpu-step.js > "$OUT/gpu-step-graph.log" 2>&1
stamp "gpu-step with graphs rc=$?"
cli="node dist/lib/cli/main.js"
for mode in eager graph; do
  flag=""; [ $mode = graph ] && flag="--cuda-graph"
  timeout 60 $cli pretrain --preset demo --device cuda --precision bf16 $flag --out /tmp/runs/demo-$mode --quiet > "$OUT/demo-$mode.log" 2>&1
  stamp "demo pretrain ($mode) rc=$?"
done
IDX=examples/data/fashion-mnist/train-images-idx3-ubyte.gz
timeout 60 $cli pack $IDX --out /tmp/pack224 --size 224 --quiet > "$OUT/pack.log" 2>&1
vits="--preset demo --device cuda --precision bf16 --img-size 224 --patch-size 16 --width 384 --depth 12 --heads 6 --batch-size 256 --epochs 3 --warmup-epochs 0 --knn-probe false --quiet --train /tmp/pack224"
for mode in eager graph; do
  flag=""; [ $mode = graph ] && flag="--cuda-graph"
  timeout 90 $cli pretrain $vits $flag --out /tmp/runs/vit-s-$mode > "$OUT/vit-s-$mode.log" 2>&1
  stamp "ViT-S from pack ($mode) rc=$?"
done
BENCH_IMAGES=2000 timeout 100 node dist/bench/pack.js > "$OUT/pack-bench.log" 2>&1
stamp "pack bench rc=$?"
tar -czf "$OUT/runs.tgz" -C /tmp/runs --exclude='*.safetensors' .
grep -E "^# (pass|fail|skip)|^not ok" "$OUT/cuda-graph-tests.log"; cat "$OUT/gpu-step-graph.log"
for r in demo-eager demo-graph vit-s-eager vit-s-graph; do echo "$r"; grep -h '"kind":"epoch"\|"kind":"knn"' /tmp/runs/$r/log.jsonl | cut -c1-140; grep -h "cuda-graph" "$OUT/$r.log"; done
cat "$OUT/pack-bench.log" "$OUT/progress.txt"
