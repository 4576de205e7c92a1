#!/usr/bin/env bash
# Packs what a lent GPU machine (python3 + CUDA torch, no Node) needs to build
# and check the addon: a compressed node binary, the runtime node_modules and
# the compiled TypeScript. Run here after `npm install`; then carry `.device`
# and `dist` and run scripts/device/cuda-check.sh there (see
# ../shared/device/README.md). `.device/` is git-ignored.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .device
xz -T2 -6 -c "$(command -v node)" > .device/node.xz
# everything but the TypeScript compiler and type packages
tar -cJf .device/node_modules.tar.xz --exclude=node_modules/typescript --exclude=node_modules/@types node_modules
# the Python oracles read and write safetensors; the GPU machine's Python may lack it
rm -rf .device/pysite && mkdir -p .device/pysite
cp -r .libtorch/site/safetensors .libtorch/site/safetensors-*.dist-info .device/pysite/
du -sh .device/* dist
