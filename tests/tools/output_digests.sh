#!/usr/bin/env bash
# output_digests.sh BINARY OUT_FILE [MPIRUN...]
#
# Runs a fixed matrix of prune / eval / generate jobs and writes one line per job to OUT_FILE:
# the job's name and a digest of what it produced (every byte of the output folder, or the
# perplexity line / generated text with timings removed). Run it with the binary before and
# after a change that must not alter any output, then `diff` the two files: a refactor that
# keeps behaviour gives identical files. Not part of ctest (it takes ~10 minutes); the
# equivalence tests check world N against world 1, this checks a build against another.
#
# The matrix: the demo exactly as scripts/demo.sh runs it; every method x pattern on the real
# stories260K model and on two random models (GQA + llama3 rope, 8 layers; Qwen2 biases and tied
# embeddings, 6 layers), at world 1 and, when MPIRUN is given, at world 2 and 3; Wanda's variant,
# true-sequential SparseGPT, dense calibration, a budget that spills, injected device
# out-of-memory failures, a bf16 sharded input and --max-shard-size; eval resident and streamed,
# greedy and sampled generation.
set -euo pipefail
bin=$(readlink -f "$1") out_file=$2
shift 2
mpirun=("$@")
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work=$(mktemp -d "${TMPDIR:-/tmp}/pipeprune_digests.XXXXXX")
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
text="$root/examples/text/tinystories_val.txt"
: > "$out_file"

digest_dir() {  # every file's name and bytes, in a fixed order
  (cd "$1" && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
}
record() { echo "$1 $2" | tee -a "$out_file"; }

"$bin" synth --config "$root/tests/fixtures/random_models/llama_gqa_8layers.json" --output "$work/gqa" \
  --tokenizer-from "$root/examples/stories260K" --seed 1 --quiet
"$bin" synth --config "$root/tests/fixtures/random_models/qwen2_bias_6layers.json" --output "$work/qwen2" \
  --tokenizer-from "$root/examples/stories260K" --seed 2 --quiet
record synth_gqa "$(digest_dir "$work/gqa")"
record synth_qwen2 "$(digest_dir "$work/qwen2")"

# The demo, as scripts/demo.sh runs it (its report holds timings, so only the model is digested).
"$bin" prune --config "$root/configs/demo_stories260K.toml" --model "$root/examples/stories260K" \
  --calib-data "$text" --eval-data "$text" --output "$work/demo" --quiet
record demo "$(digest_dir "$work/demo")"

prune() {  # prune NAME WORLD MODEL ARGS...
  local name=$1 world=$2 model=$3
  shift 3
  local launcher=()
  [ "$world" -gt 1 ] && launcher=("${mpirun[@]}" -np "$world" ${MPI_EXPORT:+-x "$MPI_EXPORT"})
  "${launcher[@]}" "$bin" prune --model "$model" --calib-data "$text" --nsamples "${NS:-6}" --seqlen "${SL:-48}" --quiet \
    --output "$work/$name.w$world" "$@"
  record "$name.w$world" "$(digest_dir "$work/$name.w$world")"
  rm -rf "$work/$name.w$world"
}

worlds=(1)
[ ${#mpirun[@]} -gt 0 ] && worlds=(1 2 3)
for model in stories:"$root/examples/stories260K" gqa:"$work/gqa" qwen2:"$work/qwen2"; do
  tag=${model%%:*} path=${model#*:}
  for world in "${worlds[@]}"; do
    for method in magnitude wanda sparsegpt; do
      for pattern in unstructured 2:4; do
        prune "${tag}_${method}_${pattern/:/-}" "$world" "$path" --method "$method" --pattern "$pattern"
      done
    done
    prune "${tag}_dense_sparsegpt" "$world" "$path" --method sparsegpt --calibration dense
  done
  prune "${tag}_variant" 1 "$path" --method wanda --use-variant --sparsity 0.6
  prune "${tag}_trueseq" 1 "$path" --method sparsegpt --true-sequential --blocksize 32
  prune "${tag}_dense_wanda" 1 "$path" --method wanda --calibration dense
done

prune stories_bf16_sharded 1 "$root/tests/fixtures/stories260K-bf16-sharded" --method sparsegpt --pattern 2:4
prune stories_reshard 1 "$root/examples/stories260K" --method wanda --max-shard-size 200KB
# Spill: a budget with room for a third of the activations (as tests/unit/launch/memory_test.cpp).
cat > "$work/spill.json" <<'JSON'
{"model_type": "llama", "hidden_size": 256, "intermediate_size": 704, "num_hidden_layers": 3,
 "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512, "max_position_embeddings": 1024,
 "rms_norm_eps": 1e-5, "tie_word_embeddings": false}
JSON
"$bin" synth --config "$work/spill.json" --output "$work/spill_model" --dtype fp32 \
  --tokenizer-from "$root/examples/stories260K" --quiet
"$bin" prune --model "$work/spill_model" --calib-data "$text" --nsamples 24 --seqlen 512 --method wanda --quiet \
  --output "$work/spill_free" --report "$work/spill_free.json"
budget=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["ranks"][0]; print(r["estimated_peak_bytes"] - r["estimate"]["activations"] * 2 // 3)' "$work/spill_free.json")
mkdir -p "$work/spill"
NS=24 SL=512 prune spill_tight 1 "$work/spill_model" --method wanda --max-memory "cpu=$budget" --spill-dir "$work/spill"
record spill_free "$(digest_dir "$work/spill_free")"
PIPEPRUNE_TEST_OOM="1:stats,2:mask,3:output" prune stories_oom 1 "$root/examples/stories260K" --method sparsegpt
if [ ${#mpirun[@]} -gt 0 ]; then
  PIPEPRUNE_TEST_OOM="1:stats,3:output" MPI_EXPORT=PIPEPRUNE_TEST_OOM prune stories_oom 2 \
    "$root/examples/stories260K" --method wanda
fi

strip_seconds() { sed -E 's/, [0-9.]+s\)$/)/'; }
eval_line() {  # eval_line NAME WORLD ARGS...
  local name=$1 world=$2
  shift 2
  local launcher=()
  [ "$world" -gt 1 ] && launcher=("${mpirun[@]}" -np "$world")
  record "$name.w$world" "$("${launcher[@]}" "$bin" eval --data "$text" --quiet "$@" | strip_seconds | tr ' ' '_')"
}
for world in "${worlds[@]}"; do
  eval_line eval_stories "$world" --model "$root/examples/stories260K" --seqlen 128 --max-chunks 8
  eval_line eval_gqa "$world" --model "$work/gqa" --seqlen 64 --max-chunks 8
done
# Streamed layers: a budget of the process plus 10.5 MiB holds one 3 MiB layer of the spill model, not all.
baseline=$("$bin" estimate --params 1B | sed -n 's/.*measured here (\([0-9.]*\) MiB).*/\1/p')
stream_budget=$(python3 -c "print(int(($baseline + 10.5) * 1048576))")
eval_line eval_streamed 1 --model "$work/spill_model" --seqlen 64 --max-chunks 8 --max-memory "cpu=$stream_budget"
PIPEPRUNE_TEST_OOM="1:eval" eval_line eval_streamed_oom 1 --model "$work/spill_model" --seqlen 64 --max-chunks 8 \
  --max-memory "cpu=$stream_budget"
PIPEPRUNE_TEST_OOM="2:eval" eval_line eval_oom 1 --model "$root/examples/stories260K" --seqlen 128 --max-chunks 4

gen() {  # gen NAME WORLD ARGS...
  local name=$1 world=$2
  shift 2
  local launcher=()
  [ "$world" -gt 1 ] && launcher=("${mpirun[@]}" -np "$world")
  record "$name.w$world" "$("${launcher[@]}" "$bin" generate --quiet "$@" | sha256sum | cut -c1-16)"
}
for world in "${worlds[@]}"; do
  gen greedy "$world" --model "$root/examples/stories260K" --prompt "Once upon a time" --max-new-tokens 40
  gen sampled "$world" --model "$root/examples/stories260K" --prompt "The dog" --max-new-tokens 40 \
    --temperature 0.8 --top-p 0.9 --seed 7
done
echo "digests written to $out_file"
