# Sourced by the scripts/device/cuda-*.sh checks on a lent GPU machine: unpacks
# Node and the node_modules that scripts/device/prepare.sh packed, makes
# safetensors importable for the oracles, records the machine, and builds the
# addon against the machine's own torch. Defines `stamp` (progress lines).
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/nb /tmp/runs
START=$SECONDS
stamp() { echo "[$((SECONDS - START)) s] $*" | tee -a "$OUT/progress.txt"; }
xz -dc .device/node.xz > /tmp/nb/node && chmod +x /tmp/nb/node
export PATH=/tmp/nb:$PATH
tar -xJf .device/node_modules.tar.xz
# safetensors for the Python oracles, in case the machine's Python lacks it
python3 -c 'import safetensors' 2>/dev/null || export PYTHONPATH="$PWD/.device/pysite${PYTHONPATH:+:$PYTHONPATH}"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
  python3 -c 'import safetensors, sys; print("safetensors", safetensors.__version__, "python", sys.version.split()[0])'
  node --version; nproc
} > "$OUT/device.txt" 2>&1
stamp "unpacked"
export Torch_DIR="$(python3 -c 'import torch, os; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))')"
timeout 240 node scripts/build-native.js --force > "$OUT/build.log" 2>&1 || { stamp "build failed"; tail -50 "$OUT/build.log"; exit 1; }
stamp "built: $(grep -o 'extrema: torch.distributed.*' "$OUT/build.log" | head -1)"
