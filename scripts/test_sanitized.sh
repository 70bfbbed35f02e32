#!/usr/bin/env bash
# Builds pipeprune and its tests with AddressSanitizer + UndefinedBehaviorSanitizer into
# build-asan/ and runs the unit tests there (ctest label "unit" without the "big" shards; the
# MPI tests stay on the plain build, see docs/testing.md). Extra arguments go to ctest.
# LeakSanitizer is off: LibTorch and Open MPI keep allocations alive until exit by design.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${ASAN_BUILD_DIR:-$root/build-asan}"
cores=$(nproc)
mem_jobs=$(( $(awk '/MemAvailable/ {print $2}' /proc/meminfo) / 2000000 ))
jobs=$(( cores < mem_jobs ? cores : mem_jobs ))
[ "$jobs" -ge 1 ] || jobs=1
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DPIPEPRUNE_SANITIZE=address,undefined \
  -DPIPEPRUNE_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build" -j "$jobs"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd "$build"
ctest --output-on-failure -j "$cores" -L unit -LE big "$@"
