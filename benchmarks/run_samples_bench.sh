#!/usr/bin/env bash
# --parallel samples against the default mode on a TinyLlama-1.1B-shape model trimmed to 4
# layers (hidden 2048, intermediate 5632, 4 KV heads; random bf16 weights): 1 rank x 1 thread in
# the default mode, then 2 ranks x 1 thread in --parallel samples, one after the other in one
# run (the machine is noisy; the ratio is what counts). Prints wall time, speed-up, per-rank
# peak memory (measured and estimated) and the reduction's share of the owners' stats passes.
# Usage: benchmarks/run_samples_bench.sh [BUILD_DIR] [METHOD...] (default: sparsegpt wanda)
# Environment: NSAMPLES (16), SEQLEN (512).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
shift || true
[ "$#" -gt 0 ] && methods=("$@") || methods=(sparsegpt wanda)
bin="$build/pipeprune"
work="${WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/pipeprune_samples_bench.XXXXXX")}"
trap 'rm -rf "$work"' EXIT
text="$root/examples/text/tinystories_val.txt"
nsamples=${NSAMPLES:-16}
seqlen=${SEQLEN:-512}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun_flags=(--oversubscribe --allow-run-as-root --bind-to none -x OMPI_MCA_btl_vader_single_copy_mechanism=none
              -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1)

"$bin" synth --shape llama-1b --layers 4 --output "$work/model" --dtype bf16 --tokenizer-from "$root/examples/stories260K" --quiet

run() {  # run WORLD PARALLEL METHOD -> seconds on stdout
  local world=$1 parallel=$2 method=$3 out="$work/$3_$2_w$1"
  local args=(prune --model "$work/model" --output "$out" --method "$method" --parallel "$parallel"
              --calib-data "$text" --nsamples "$nsamples" --seqlen "$seqlen" --threads 1 --report "$out.json" --quiet)
  local start end
  start=$(date +%s.%N)
  if [ "$world" -eq 1 ]; then
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$bin" "${args[@]}"
  else
    mpirun -np "$world" "${mpirun_flags[@]}" "$bin" "${args[@]}"
  fi
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }'
}

summary() {  # summary REPORT: per-rank peaks and the owners' reduce share
  python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
peaks = ", ".join(f"rank {k['rank']} {k['peak_rss_bytes'] / 2**20:.0f} MiB (est. {k['estimated_peak_bytes'] / 2**20:.0f})"
                  for k in r["ranks"])
stats = sum(l["seconds_stats"] for l in r["layers"])
reduce = sum(l.get("seconds_reduce", 0) for l in r["layers"])
prune = sum(l["seconds_prune"] for l in r["layers"])
out = sum(l["seconds_output"] for l in r["layers"])
print(f"{peaks}; stats {stats:.1f}s (reduction {reduce:.1f}s = {100 * reduce / max(stats, 1e-9):.1f}%), "
      f"prune {prune:.1f}s, output {out:.1f}s")
PY
}

echo "llama-1b shape, 4 layers, $nsamples samples x $seqlen tokens, $(nproc) cores"
for method in "${methods[@]}"; do
  t1=$(run 1 pipeline "$method")
  t2=$(run 2 samples "$method")
  echo "$method: 1 rank x 1 thread (pipeline) ${t1}s; 2 ranks x 1 thread (--parallel samples) ${t2}s;" \
       "speed-up $(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.2f", a / b }')x"
  echo "  pipeline w1: $(summary "$work/${method}_pipeline_w1.json")"
  echo "  samples  w2: $(summary "$work/${method}_samples_w2.json")"
done
