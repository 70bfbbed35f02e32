#!/usr/bin/env bash
# xcheck_env.sh BUILD_DIR
#
# The Python environment of the cross-check tests (tests/xcheck): BUILD_DIR/xcheck-venv with
# exactly the packages of tests/xcheck/requirements.txt (torch, transformers, safetensors, peft,
# llmcompressor, mergekit and their dependencies), installed without resolving (--no-deps) so
# every run gets the same versions. Reused as long as the lock file is unchanged. The product
# never needs Python; when the environment cannot be made (no PyPI, no python3-venv) this says
# so in one line and exits 0, and the xcheck tests skip.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir=${1:?usage: xcheck_env.sh BUILD_DIR}
venv="$build_dir/xcheck-venv"
lock="$root/tests/xcheck/requirements.txt"
stamp="$venv/.pipeprune-lock-sha256"
log="$build_dir/xcheck-venv.log"
want=$(sha256sum "$lock" | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c "import torch, transformers" 2>/dev/null; then
  echo "xcheck: reusing the Python environment in $venv"
  exit 0
fi
rm -rf "$venv"
mkdir -p "$build_dir"
start=$(date +%s)
echo "xcheck: installing the pinned Python packages into $venv (a few GB; cached for later runs)"
if ! python3 -m venv "$venv" > "$log" 2>&1 ||
   ! "$venv/bin/pip" install --no-deps --disable-pip-version-check --no-input -q -r "$lock" >> "$log" 2>&1; then
  echo "xcheck: could not create the Python environment (see $log: $(tail -1 "$log")); the xcheck tests will be skipped"
  rm -rf "$venv"
  exit 0
fi
echo "$want" > "$stamp"
echo "xcheck: Python environment ready in $(( $(date +%s) - start )) s ($(du -sh "$venv" | cut -f1))"
