#!/usr/bin/env bash
# thread_independence.sh BINARY MODEL TEXT NP MPIRUN...
#
# The default mode's output does not depend on the thread count: a prune at world 1 with 1, 2
# and 3 threads and at world NP with 1 thread per rank (what the defaults give on a 2-core
# machine) writes byte-identical folders, for SparseGPT and Wanda, unstructured and 2:4. Before
# SparseGPT's Cholesky chain ran on one OpenBLAS thread, its kept weights differed in the last
# bits between thread counts.
#
# Where this machine's GEMM itself rounds by thread count ($PIPEPRUNE_GEMM_PROBE says so:
# OpenBLAS's Haswell kernels on an AMD EPYC), SparseGPT's kept weights, which GEMM updates,
# cannot be the same at 1, 2 and 3 threads; those comparisons are skipped with that reason, and
# world NP is compared with world 1 at the same one thread per process. Wanda keeps the input's
# weights, so only a mask could change; it is compared at every thread count everywhere.
set -euo pipefail
bin=$1 model=$2 text=$3 np=$4
shift 4
mpirun=("$@")
work=$(mktemp -d "${TMPDIR:-/tmp}/pipeprune_threads.XXXXXX")
trap 'rm -rf "$work"' EXIT
unset OMP_NUM_THREADS OPENBLAS_NUM_THREADS

gemm_varies=""
if [ -n "${PIPEPRUNE_GEMM_PROBE:-}" ] && ! gemm_varies=$("$PIPEPRUNE_GEMM_PROBE"); then
  [ -n "$gemm_varies" ] || gemm_varies="the GEMM probe failed"
else
  gemm_varies=""
fi

failures=0
compare() {  # compare LABEL DIR_A DIR_B
  if diff -r "$2" "$3" >/dev/null; then
    echo "same bytes: $1"
  else
    echo "FAIL: $1 differs"
    failures=$((failures + 1))
  fi
}
common=(--model "$model" --calib-data "$text" --nsamples 8 --seqlen 128 --quiet)
for method in sparsegpt wanda; do
  for pattern in unstructured 2:4; do
    name="${method}_${pattern/:/-}"
    for threads in 1 2 3; do
      "$bin" prune "${common[@]}" --method "$method" --pattern "$pattern" --threads "$threads" \
        --output "$work/t${threads}_$name"
    done
    "${mpirun[@]}" "$bin" prune "${common[@]}" --method "$method" --pattern "$pattern" --threads 1 \
      --output "$work/wn_$name"
    compare "$method $pattern, world 1 x 1 thread and world $np x 1 thread" "$work/t1_$name" "$work/wn_$name"
    if [ "$method" = sparsegpt ] && [ -n "$gemm_varies" ]; then
      echo "SKIP: $method $pattern at 1, 2 and 3 threads: $gemm_varies"
      continue
    fi
    compare "$method $pattern, world 1 x 1 thread and 2 threads" "$work/t1_$name" "$work/t2_$name"
    compare "$method $pattern, world 1 x 1 thread and 3 threads" "$work/t1_$name" "$work/t3_$name"
  done
done
[ "$failures" -eq 0 ] || { echo "$failures comparison(s) failed"; exit 1; }
if [ -n "$gemm_varies" ]; then
  echo "PASS: the same bytes at world 1 and world $np (SparseGPT at one thread per process)"
else
  echo "PASS: the same bytes at every thread count and at world $np"
fi
