#!/usr/bin/env bash
# expect_prune_fails_cleanly.sh LIMIT_SECONDS BINARY MODEL TEXT FAIL_LAYER MPIRUN...
#
# Runs a multi-rank prune whose rank owning FAIL_LAYER throws mid-layer (test hook
# PIPEPRUNE_TEST_FAIL_LAYER). Passes when every rank is gone within LIMIT_SECONDS, the job
# exits non-zero, the failing rank's error is printed, and neither the output folder nor its
# temporary ".partial" folder is left behind. PRUNE_ARGS (environment) adds prune options.
set -uo pipefail
limit=$1 bin=$2 model=$3 text=$4 layer=$5
shift 5
work=$(mktemp -d "${TMPDIR:-/tmp}/pipeprune_fault.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
output=$(PIPEPRUNE_TEST_FAIL_LAYER=$layer timeout --kill-after=5 "$limit" "$@" -x PIPEPRUNE_TEST_FAIL_LAYER \
  "$bin" prune --model "$model" --output "$work/out" --method wanda --calib-data "$text" --nsamples 4 --seqlen 32 ${PRUNE_ARGS:-} 2>&1)
rc=$?
elapsed=$(( $(date +%s) - start ))
printf '%s\n' "$output" | tail -20
[ "$rc" -ne 0 ] || { echo "FAIL: the job exited 0"; exit 1; }
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then echo "FAIL: the job hung and was killed after $limit s"; exit 1; fi
case "$output" in
  *"failing in layer $layer"*) ;;
  *) echo "FAIL: the failing rank's error is not in the output"; exit 1 ;;
esac
if [ -e "$work/out" ] || [ -e "$work/.out.partial" ]; then
  echo "FAIL: a failed job left output behind:"; ls -la "$work"; exit 1
fi
echo "PASS: the job failed with exit code $rc after ${elapsed} s and left nothing behind"
