#!/usr/bin/env bash
# pipeline_equivalence.sh BINARY MODEL TEXT NP MPIRUN...
#
# Prunes MODEL with every method (magnitude, wanda, sparsegpt) and pattern (unstructured, 2:4)
# once in a single process and once as NP ranks under MPIRUN, and fails unless the output folders
# are byte-identical; then checks that `eval` of a pruned model gives the identical perplexity
# (and total NLL) at both world sizes, and that --calibration dense gives the same bytes at
# world 1 and world NP. MODEL may be a config.json: a random model is synthesized from it first.
set -euo pipefail
bin=$1 model=$2 text=$3 np=$4
shift 4
mpirun=("$@")
work=$(mktemp -d "${TMPDIR:-/tmp}/pipeprune_equiv.XXXXXX")
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

if [[ "$model" == *.json ]]; then
  "$bin" synth --config "$model" --output "$work/model" --tokenizer-from "$root/examples/stories260K" --seed 1 --quiet
  model="$work/model"
fi

failures=0
check_same() {  # check_same WHAT DIR_A DIR_B
  if diff -r "$2" "$3" >/dev/null; then
    echo "same bytes: $1"
  else
    echo "FAIL: $1 differs between world 1 and world $np"
    diff -r "$2" "$3" | head -5
    failures=$((failures + 1))
  fi
}

common=(--model "$model" --calib-data "$text" --nsamples 6 --seqlen 48 --quiet)
for method in magnitude wanda sparsegpt; do
  for pattern in unstructured 2:4; do
    name="${method}_${pattern/:/-}"
    "$bin" prune "${common[@]}" --method "$method" --pattern "$pattern" --output "$work/w1_$name"
    "${mpirun[@]}" "$bin" prune "${common[@]}" --method "$method" --pattern "$pattern" --output "$work/wn_$name"
    check_same "$method $pattern" "$work/w1_$name" "$work/wn_$name"
  done
done

for method in wanda sparsegpt; do
  "$bin" prune "${common[@]}" --method "$method" --calibration dense --output "$work/w1_dense_$method"
  "${mpirun[@]}" "$bin" prune "${common[@]}" --method "$method" --calibration dense --output "$work/wn_dense_$method"
  check_same "$method --calibration dense" "$work/w1_dense_$method" "$work/wn_dense_$method"
done

eval_args=(eval --model "$work/w1_sparsegpt_unstructured" --data "$text" --seqlen 48 --max-chunks 12 --quiet)
one=$("$bin" "${eval_args[@]}" | sed 's/, [0-9.]*s)$/)/')
many=$("${mpirun[@]}" "$bin" "${eval_args[@]}" | sed 's/, [0-9.]*s)$/)/')
if [ "$one" == "$many" ]; then
  echo "same eval: $one"
else
  echo "FAIL: eval differs: world 1 '$one', world $np '$many'"
  failures=$((failures + 1))
fi

[ "$failures" -eq 0 ] || { echo "$failures comparison(s) failed"; exit 1; }
echo "PASS: world $np equals world 1"
