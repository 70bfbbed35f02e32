#!/usr/bin/env bash
# thread_independence.sh BINARY MODEL TEXT NP MPIRUN...
#
# The default mode's output does not depend on the thread count: a prune at world 1 with 2 and
# 3 threads and at world NP with 1 thread per rank (what the defaults give on a 2-core machine)
# writes byte-identical folders, for SparseGPT and Wanda, unstructured and 2:4. Before
# SparseGPT's Cholesky chain ran on one OpenBLAS thread, its kept weights differed in the last
# bits between thread counts.
set -euo pipefail
bin=$1 model=$2 text=$3 np=$4
shift 4
mpirun=("$@")
work=$(mktemp -d "${TMPDIR:-/tmp}/pipeprune_threads.XXXXXX")
trap 'rm -rf "$work"' EXIT
unset OMP_NUM_THREADS OPENBLAS_NUM_THREADS

failures=0
common=(--model "$model" --calib-data "$text" --nsamples 8 --seqlen 128 --quiet)
for method in sparsegpt wanda; do
  for pattern in unstructured 2:4; do
    name="${method}_${pattern/:/-}"
    "$bin" prune "${common[@]}" --method "$method" --pattern "$pattern" --threads 2 --output "$work/t2_$name"
    "$bin" prune "${common[@]}" --method "$method" --pattern "$pattern" --threads 3 --output "$work/t3_$name"
    "${mpirun[@]}" "$bin" prune "${common[@]}" --method "$method" --pattern "$pattern" --threads 1 \
      --output "$work/wn_$name"
    for other in t3 wn; do
      if diff -r "$work/t2_$name" "$work/${other}_$name" >/dev/null; then
        echo "same bytes: $method $pattern, world 1 x 2 threads and ${other/wn/world $np x 1 thread}"
      else
        echo "FAIL: $method $pattern differs between world 1 x 2 threads and ${other/wn/world $np x 1 thread}"
        failures=$((failures + 1))
      fi
    done
  done
done
[ "$failures" -eq 0 ] || { echo "$failures comparison(s) failed"; exit 1; }
echo "PASS: the same bytes at every thread count and at world $np"
