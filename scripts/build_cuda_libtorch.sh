#!/usr/bin/env bash
# build_cuda_libtorch.sh BUILD_DIR
#
# Configures and builds the pipeprune binary against the CUDA LibTorch inside the pip torch
# wheel of BUILD_DIR/xcheck-venv (scripts/xcheck_env.sh), with the CUDA toolkit under
# /usr/local/cuda, into BUILD_DIR/cuda-libtorch. No GPU is needed to compile and link; the point
# is that every change is compiled against the real CUDA LibTorch API (C++20 headers, its own
# fmt, libtorch_cuda and the wheel's NCCL), not only Debian's CPU LibTorch 1.13. A compile or
# link error fails this script. Without the Python environment or the CUDA toolkit it says so
# and exits 0.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir=${1:?usage: build_cuda_libtorch.sh BUILD_DIR}
venv="$build_dir/xcheck-venv"
out="$build_dir/cuda-libtorch"
cuda=${CUDA_HOME:-/usr/local/cuda}
if [ ! -x "$venv/bin/python" ]; then
  echo "cuda-libtorch: no Python environment in $venv (scripts/xcheck_env.sh makes it); build skipped"
  exit 0
fi
if [ ! -x "$cuda/bin/nvcc" ]; then
  echo "cuda-libtorch: no CUDA toolkit at $cuda (set CUDA_HOME); build skipped"
  exit 0
fi
torch_dir=$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
nccl_dir=$("$venv/bin/python" -c 'import os, nvidia.nccl; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))')
# TorchConfig's find_library calls would otherwise find Debian's CPU libtorch in /usr/lib first.
cmake -S "$root" -B "$out" -DCMAKE_BUILD_TYPE=Release -DPIPEPRUNE_BUILD_TESTS=OFF -DPIPEPRUNE_BUILD_BENCHMARKS=OFF \
  -DCMAKE_PREFIX_PATH="$torch_dir/share/cmake" -DCMAKE_CUDA_COMPILER="$cuda/bin/nvcc" \
  -DTORCH_LIBRARY="$torch_dir/lib/libtorch.so" -Dc10_LIBRARY="$torch_dir/lib/libc10.so" \
  -DC10_CUDA_LIBRARY="$torch_dir/lib/libc10_cuda.so" -DCAFFE2_NVRTC_LIBRARY="$torch_dir/lib/libcaffe2_nvrtc.so" \
  -DNCCL_INCLUDE_DIR="$nccl_dir" -DNCCL_LIBRARY="$nccl_dir/libnccl.so.2" -DPIPEPRUNE_WITH_NCCL=ON > "$out.configure.log" 2>&1 ||
  { tail -30 "$out.configure.log"; echo "cuda-libtorch: configure failed (log: $out.configure.log)"; exit 1; }
cores=$(nproc)
mem_jobs=$(( $(awk '/MemAvailable/ {print $2}' /proc/meminfo) / 2500000 ))
jobs=$(( cores < mem_jobs ? cores : mem_jobs ))
[ "$jobs" -ge 1 ] || jobs=1
start=$(date +%s)
cmake --build "$out" --target pipeprune -j "$jobs"
echo "cuda-libtorch: pipeprune built against $(grep -o 'LibTorch [0-9.]*' "$out.configure.log" | head -1) with CUDA in $(( $(date +%s) - start )) s: $out/pipeprune"
