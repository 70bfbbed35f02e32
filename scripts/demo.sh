#!/usr/bin/env bash
# The main job on the bundled model: installs what is missing, builds, then prunes the
# stories260K TinyStories model to 50% with Wanda on TinyStories text, saves it, and prints
# the perplexity before and after, then a greedy continuation from the pruned model.
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
echo "Greedy continuation from the pruned model:"
"$bin" generate --model "$out" --prompt "Once upon a time" --max-new-tokens 48 --quiet
