#!/usr/bin/env bash
# What --resume saves: a SparseGPT prune of a TinyLlama-1.1B-shape model trimmed to 8 layers
# (hidden 2048, intermediate 5632; random bf16 weights) is timed uninterrupted, then killed as it
# starts layer KILL_LAYER (test hook PIPEPRUNE_TEST_KILL_LAYER, as preemption or the OOM killer
# would), then resumed with --resume. One run, one after the other (the machine is noisy; the
# ratio is what counts). Prints the three times, the resumed run's share of starting over, what
# a resume must redo (the finished layers' forward passes) against what it skips (their
# statistics and pruning), and whether the resumed model has the uninterrupted run's bytes.
# Usage: benchmarks/run_resume_bench.sh [BUILD_DIR] [METHOD] (default: sparsegpt)
# Environment: NSAMPLES (16), SEQLEN (512), LAYERS (8), KILL_LAYER (6), THREADS (nproc).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
method="${2:-sparsegpt}"
bin="$build/pipeprune"
work="${WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/pipeprune_resume_bench.XXXXXX")}"
trap 'rm -rf "$work"' EXIT
text="$root/examples/text/tinystories_val.txt"
nsamples=${NSAMPLES:-16}
seqlen=${SEQLEN:-512}
layers=${LAYERS:-8}
kill_layer=${KILL_LAYER:-6}
threads=${THREADS:-$(nproc)}

"$bin" synth --shape llama-1b --layers "$layers" --output "$work/model" --dtype bf16 \
  --tokenizer-from "$root/examples/stories260K" --quiet
args=(prune --model "$work/model" --method "$method" --calib-data "$text" --nsamples "$nsamples"
      --seqlen "$seqlen" --threads "$threads")

seconds() {  # seconds COMMAND...: wall time of COMMAND on stdout (its status ignored)
  local start end
  start=$(date +%s.%N)
  "$@" || true
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }'
}

full=$(seconds "$bin" "${args[@]}" --output "$work/full" --report "$work/full.json" --quiet)
killed=$(PIPEPRUNE_TEST_KILL_LAYER=$kill_layer seconds "$bin" "${args[@]}" --output "$work/resumed" --quiet 2>/dev/null)
[ -d "$work/.resumed.partial" ] || { echo "the kill left no staged folder" >&2; exit 1; }
resumed=$(seconds "$bin" "${args[@]}" --output "$work/resumed" --resume --report "$work/resumed.json" 2> "$work/resumed.log")
[ -d "$work/resumed" ] || { echo "the resumed run did not finish:" >&2; cat "$work/resumed.log" >&2; exit 1; }
if diff -r "$work/full" "$work/resumed" >/dev/null; then same="same bytes"; else same="THE RESUMED MODEL DIFFERS"; fi

echo "llama-1b shape, $layers layers, $method, $nsamples samples x $seqlen tokens, $threads threads, $(nproc) cores"
echo "uninterrupted ${full}s; killed at layer $kill_layer after ${killed}s; resumed ${resumed}s" \
     "= $(awk -v a="$resumed" -v b="$full" 'BEGIN { printf "%.0f", 100 * a / b }')% of starting over; $same"
grep -o -- "--resume: .*recomputed.*" "$work/resumed.log" | head -n 1
python3 - "$work/full.json" "$work/resumed.json" "$kill_layer" <<'PY'
import json, sys
full, resumed, kill = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), int(sys.argv[3])
done = [l for l in full["layers"] if l["layer"] < kill]
skipped = sum(l["seconds_stats"] + l["seconds_prune"] + l["seconds_output"] for l in done)
redone = sum(l["seconds_output"] for l in done)
print(f"the {len(done)} layers the killed run finished took {skipped:.1f}s of statistics, pruning and output when"
      f" uninterrupted, {redone:.1f}s of it their forward passes, which a resume redoes;"
      f" the resumed run's report lists all {len(resumed['layers'])} layers")
PY
