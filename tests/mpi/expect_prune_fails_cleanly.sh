#!/usr/bin/env bash
# expect_prune_fails_cleanly.sh LIMIT_SECONDS BINARY MODEL TEXT FAIL_LAYER MPIRUN...
#
# Runs a multi-rank prune whose rank owning FAIL_LAYER throws mid-layer (test hook
# PIPEPRUNE_TEST_FAIL_LAYER). Passes when every rank is gone within LIMIT_SECONDS, the job
# exits non-zero, the failing rank's error is printed, no output folder appears, and the
# temporary ".partial" folder is either gone or, when layers had finished, kept with a message
# saying how to resume it, and a --resume (one process) then finishes it cleanly. PRUNE_ARGS (environment) adds prune options.
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
if [ -e "$work/out" ]; then
  echo "FAIL: a failed job left an output folder behind:"; ls -la "$work"; exit 1
fi
# Layers finished before the failure are kept for --resume, and the job says so; a job that
# failed before any layer finished leaves nothing.
if [ -e "$work/.out.partial" ]; then
  case "$output" in
    *"rerun the same command with --resume"*) ;;
    *) echo "FAIL: a staged folder was kept without saying how to resume it"; exit 1 ;;
  esac
  "$bin" prune --model "$model" --output "$work/out" --method wanda --calib-data "$text" --nsamples 4 --seqlen 32 \
    ${PRUNE_ARGS:-} --resume --quiet || { echo "FAIL: the kept run did not resume"; exit 1; }
  if [ ! -d "$work/out" ] || [ -e "$work/.out.partial" ]; then echo "FAIL: the resumed run did not finish cleanly"; ls -la "$work"; exit 1; fi
  echo "PASS: the job failed with exit code $rc after ${elapsed} s, kept its finished layers, and --resume finished it"
  exit 0
fi
echo "PASS: the job failed with exit code $rc after ${elapsed} s and left nothing behind"
