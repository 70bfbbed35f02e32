#!/usr/bin/env bash
# Configures and builds pipeprune (Release) into build/ with every core, no more than the
# machine's RAM allows (about 1.5 GB per LibTorch compile job).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${PIPEPRUNE_BUILD_DIR:-$root/build}"
cores=$(nproc)
mem_jobs=$(( $(awk '/MemAvailable/ {print $2}' /proc/meminfo) / 1500000 ))
jobs=$(( cores < mem_jobs ? cores : mem_jobs ))
[ "$jobs" -ge 1 ] || jobs=1
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build_dir" -j "$jobs"
