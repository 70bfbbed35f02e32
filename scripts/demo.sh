#!/usr/bin/env bash
# The main job on the bundled model: installs what is missing, builds, then prunes the
# stories260K TinyStories model to 50% with Wanda on TinyStories text, saves it, and prints
# the perplexity before and after, where the run's report page is (prune --report draws it),
# and the greedy continuations of one prompt from the dense and the pruned model.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/install_deps.sh"
bash "$root/scripts/build.sh"
bin="${PIPEPRUNE_BUILD_DIR:-$root/build}/pipeprune"
out="${PIPEPRUNE_DEMO_OUTPUT:-$root/out/stories260K-wanda-50}"
"$bin" prune --config "$root/configs/demo_stories260K.toml" --model "$root/examples/stories260K" \
  --calib-data "$root/examples/text/tinystories_val.txt" --eval-data "$root/examples/text/tinystories_val.txt" \
  --output "$out" --overwrite --report "$out.report.json"
echo
echo "The run's report as a page (sparsity, time and memory per layer and rank): $out.report.html"
echo
echo "Greedy continuation of the same prompt from the dense and the pruned model:"
prompt="Once upon a time"
echo "dense:"
"$bin" generate --model "$root/examples/stories260K" --prompt "$prompt" --max-new-tokens 48 --quiet
echo
echo "pruned (wanda 50%):"
"$bin" generate --model "$out" --prompt "$prompt" --max-new-tokens 48 --quiet
