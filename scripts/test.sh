#!/usr/bin/env bash
# Installs what is missing, builds pipeprune with its tests, makes the cross-check tests' Python
# environment, builds the binary against the pip wheel's CUDA LibTorch, and runs every test
# (unit, multi-rank MPI and cross-check tests) with ctest, then the unit tests under ASan + UBSan.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/install_deps.sh" --with-browser
bash "$root/scripts/build.sh"
build_dir="${PIPEPRUNE_BUILD_DIR:-$root/build}"
# The cross-check tests' Python environment (pinned PyPI packages; the tests skip without it),
# then the binary built once more against that environment's CUDA LibTorch: a CUDA compile
# error fails here.
bash "$root/scripts/xcheck_env.sh" "$build_dir"
bash "$root/scripts/build_cuda_libtorch.sh" "$build_dir"
# The GPU check's CPU parts with that binary and that Python (benchmarks/gpu_check.sh; its GPU
# steps say SKIPPED here): the CUDA LibTorch build must run, not only link.
if [ -x "$build_dir/cuda-libtorch/pipeprune" ] && [ -x "$build_dir/xcheck-venv/bin/python" ]; then
  bash "$root/benchmarks/gpu_check.sh" --build-dir "$build_dir/cuda-libtorch" --python "$build_dir/xcheck-venv/bin/python" \
    --out "$build_dir/gpu-check" > "$build_dir/gpu-check.log" 2>&1 ||
    { tail -40 "$build_dir/gpu-check.log"; echo "gpu_check: the CPU parts failed (log: $build_dir/gpu-check.log)"; exit 1; }
  echo "gpu_check: CPU parts passed with the CUDA LibTorch build ($build_dir/gpu-check/summary.md)"
fi
# mpirun refuses root without these; the container has no shared-memory single-copy support.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
(cd "$build_dir" && ctest --output-on-failure -j "$(nproc)" "$@")
# The unit tests once more, built with AddressSanitizer + UndefinedBehaviorSanitizer into
# build-asan/ (docs/testing.md says what that run leaves out and why). Arguments (ctest's, e.g.
# -R tokenizer) ask for a selection of the plain run only, and skip this.
[ "$#" -gt 0 ] || bash "$root/scripts/test_sanitized.sh"
