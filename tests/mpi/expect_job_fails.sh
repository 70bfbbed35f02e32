#!/bin/sh
# expect_job_fails.sh LIMIT_SECONDS EXPECTED_TEXT COMMAND...
# Passes when COMMAND (an mpirun job) exits non-zero within LIMIT_SECONDS and its output holds
# EXPECTED_TEXT; fails when it exits 0 or hangs (then it is killed, ranks included).
limit=$1
expected=$2
shift 2
start=$(date +%s)
output=$(timeout --kill-after=5 "$limit" "$@" 2>&1)
rc=$?
elapsed=$(( $(date +%s) - start ))
printf '%s\n' "$output"
if [ "$rc" -eq 0 ]; then
  echo "FAIL: the job exited 0; a failing rank must fail the job"
  exit 1
fi
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "FAIL: the job hung and was killed after ${limit} s"
  exit 1
fi
case "$output" in
  *"$expected"*) ;;
  *) echo "FAIL: the output does not contain '$expected'"; exit 1 ;;
esac
case "$output" in
  *"finished normally"*) echo "FAIL: a rank finished although its peer had failed"; exit 1 ;;
esac
echo "PASS: the job failed with exit code $rc after ${elapsed} s"
