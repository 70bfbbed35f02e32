#!/usr/bin/env bash
# The pipeline at 1 and 2 ranks on this machine: wall time, per-rank peak memory (measured and
# estimated) and the --calibration dense speedup at 2 ranks versus 1; then the estimator
# against measured peaks for three model shapes at world sizes 1 and 2.
# Writes docs/pipeline-benchmarks.md. Usage: benchmarks/run_pipeline_bench.sh [BUILD_DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-${BUILD_DIR:-$root/build}}"
bin="$build/pipeprune"
work="${WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/pipeprune_pipeline_bench.XXXXXX")}"
trap 'rm -rf "$work"' EXIT
text="$root/examples/text/tinystories_val.txt"
cores=$(nproc)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun_flags=(--oversubscribe --allow-run-as-root --bind-to none -x OMPI_MCA_btl_vader_single_copy_mechanism=none)

field() {  # field REPORT KEY [N]: the Nth numeric value of KEY in a pretty-printed report
  grep "\"$2\":" "$1" | sed -n "${3:-1}p" | sed 's/.*: *\([0-9.e+-]*\).*/\1/'
}
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }

synth() {  # synth NAME HIDDEN INTERMEDIATE LAYERS HEADS KV_HEADS
  cat > "$work/$1.json" <<JSON
{"model_type": "llama", "hidden_size": $2, "intermediate_size": $3, "num_hidden_layers": $4,
 "num_attention_heads": $5, "num_key_value_heads": $6, "vocab_size": 512,
 "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "tie_word_embeddings": false}
JSON
  "$bin" synth --config "$work/$1.json" --output "$work/$1" --dtype bf16 --tokenizer-from "$root/examples/stories260K" --quiet
}

run() {  # run WORLD OUT_NAME MODEL METHOD CALIBRATION NSAMPLES SEQLEN -> prints seconds
  local world=$1 out=$2 model=$3 method=$4 calibration=$5 nsamples=$6 seqlen=$7
  local threads=$(( cores / world > 0 ? cores / world : 1 ))
  local args=(prune --model "$work/$model" --output "$work/$out" --method "$method" --calibration "$calibration"
              --calib-data "$text" --nsamples "$nsamples" --seqlen "$seqlen" --report "$work/$out.json" --quiet)
  local start end
  start=$(date +%s.%N)
  if [ "$world" -eq 1 ]; then
    OMP_NUM_THREADS=$threads "$bin" "${args[@]}"
  else
    mpirun -np "$world" "${mpirun_flags[@]}" -x OMP_NUM_THREADS=$threads "$bin" "${args[@]}"
  fi
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }'
}

ranks_cell() {  # per-rank "measured / estimated" MiB of a report
  local report=$1 world=$2 cell="" r
  for ((r = 1; r <= world; ++r)); do
    cell+="$(mib "$(field "$report" peak_rss_bytes "$r")") / $(mib "$(field "$report" estimated_peak_bytes "$r")")"
    [ "$r" -lt "$world" ] && cell+=", "
  done
  echo "$cell"
}

echo "synthesizing models in $work"
synth m1024 1024 2816 8 16 4
synth m768 768 2048 12 12 4
synth m1536 1536 4096 6 12 4

out="$root/docs/pipeline-benchmarks.md"
{
  echo "# Pipeline benchmarks"
  echo
  echo "Measured by \`benchmarks/run_pipeline_bench.sh\` on $(lscpu | sed -n 's/^Model name: *//p') ($cores cores),"
  echo "$(date -u +%Y-%m-%d). Random-weight bf16 models (\`pipeprune synth\`), fp32 compute, ranks on one"
  echo "machine sharing its cores (each rank gets cores / world threads). Peak memory is each rank's VmHWM"
  echo "from the \`--report\`, next to the estimate the memory planner made before the run."
  echo
  echo "## Wanda, 16 samples x 512 tokens, hidden 1024, 8 layers"
  echo
  echo "| calibration | world | seconds | peak MiB per rank (measured / estimated) |"
  echo "|---|---|---|---|"
  for calibration in sequential dense; do
    for world in 1 2; do
      seconds=$(run "$world" "w${world}_$calibration" m1024 wanda "$calibration" 16 512)
      echo "| $calibration | $world | $seconds | $(ranks_cell "$work/w${world}_$calibration.json" "$world") |"
      eval "t_${calibration}_${world}=$seconds"
    done
  done
  echo
  echo "Dense calibration speedup at 2 ranks versus 1: $(awk -v a="$t_dense_1" -v b="$t_dense_2" 'BEGIN { printf "%.2fx", a / b }')"
  echo "(sequential: $(awk -v a="$t_sequential_1" -v b="$t_sequential_2" 'BEGIN { printf "%.2fx", a / b }'))."
  echo
  echo "## Estimated versus measured peak, three shapes, world 1 and 2"
  echo
  echo "| model | method | world | peak MiB per rank (measured / estimated) | worst error |"
  echo "|---|---|---|---|---|"
  for model in m768 m1024 m1536; do
    for method in wanda sparsegpt; do
      for world in 1 2; do
        name="e_${model}_${method}_$world"
        run "$world" "$name" "$model" "$method" sequential 16 512 >/dev/null
        worst=0
        for ((r = 1; r <= world; ++r)); do
          worst=$(awk -v w="$worst" -v m="$(field "$work/$name.json" peak_rss_bytes "$r")" \
                      -v e="$(field "$work/$name.json" estimated_peak_bytes "$r")" \
                      'BEGIN { d = (e - m) / m * 100; if (d < 0) d = -d; printf "%.1f", (d > w ? d : w) }')
        done
        echo "| $model | $method | $world | $(ranks_cell "$work/$name.json" "$world") | ${worst}% |"
      done
    done
  done
} | tee "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out"
