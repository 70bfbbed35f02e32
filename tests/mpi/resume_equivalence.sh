#!/usr/bin/env bash
# resume_equivalence.sh BINARY MODEL TEXT MPIEXEC MPIEXEC_FLAGS...
#
# prune --resume after a SIGKILL (test hook PIPEPRUNE_TEST_KILL_LAYER: the rank owning that
# layer kills itself as it starts the layer, as preemption or the OOM killer would) writes the
# same bytes as an uninterrupted run: killed at world 1 and resumed at world 1; killed on one
# rank of 2 and resumed at world 3 and, for --parallel samples, at world 1. Each resumed run
# prunes only the layers the killed run had not finished (its log), a changed option is refused naming it, a plain
# rerun is refused saying how to resume, and afterwards only the finished model is left. A journal
# written before --hinv-factor existed still resumes (with the factor those builds used). An OWL
# prune resumes with the same ratios.
set -euo pipefail
bin=$1 model=$2 text=$3 mpiexec=$4
shift 4
flags=("$@")
work=$(mktemp -d "${TMPDIR:-/tmp}/pipeprune_resume.XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
common=(--model "$model" --calib-data "$text" --nsamples 8 --seqlen 128 --method sparsegpt --threads 1)
world() {  # world NP ARGS...: the prune at world NP (1 without mpirun)
  local np=$1
  shift
  if [ "$np" -eq 1 ]; then
    "$bin" prune "${common[@]}" "$@"
  else
    "$mpiexec" -np "$np" "${flags[@]}" ${PIPEPRUNE_TEST_KILL_LAYER:+-x PIPEPRUNE_TEST_KILL_LAYER} "$bin" prune "${common[@]}" "$@"
  fi
}
check() {  # check NAME OUT REFERENCE LOG FINISHED: FINISHED a grep -E pattern of the layers the kill left
  if diff -r "$2" "$3" >/dev/null; then echo "same bytes: $1"; else fail "$1: the resumed model differs"; fi
  grep -Eq "($5) of 5 layers were finished by the earlier run" "$4" || fail "$1: the resumed run did not continue from the killed layer"
  local left
  left=$(ls -A | grep -v -E '^(ref|w1|w2|.*\.log)$' || true)
  [ -z "$left" ] || fail "$1: left beside the output: $left"
}

for parallel in pipeline samples; do
  mkdir -p "$work/$parallel"
  cd "$work/$parallel"
  world 1 --parallel "$parallel" --output ref --quiet
  # Killed at world 1 (layer 3 of 5), resumed at world 1.
  if PIPEPRUNE_TEST_KILL_LAYER=3 world 1 --parallel "$parallel" --output w1 --quiet 2>/dev/null; then fail "$parallel: the kill hook did not kill"; fi
  [ -d .w1.partial ] || fail "$parallel: no staged folder after the kill"
  if world 1 --parallel "$parallel" --output w1 --quiet 2> refused.log; then fail "$parallel: a plain rerun was not refused"; fi
  grep -q "rerun the same command with --resume" refused.log || fail "$parallel: the refusal does not say how to resume"
  if world 1 --parallel "$parallel" --output w1 --resume --percdamp 0.02 --quiet 2> changed.log; then fail "$parallel: a changed option was accepted"; fi
  grep -q "percdamp was 0.01, now 0.02" changed.log || fail "$parallel: the refusal does not name the changed option"
  if [ "$parallel" = pipeline ]; then
    # The journal as a build before --hinv-factor wrote it (no such field): it resumes with the
    # factor those builds ran (the default, below), and is refused with the other one.
    journal=$(find .w1.partial -name run.json)
    grep -q '"hinv_factor"' "$journal" || fail "the journal does not record hinv_factor"
    sed -i '/"hinv_factor"/d' "$journal"
    if world 1 --parallel "$parallel" --output w1 --resume --hinv-factor blocked --quiet 2> changed.log; then
      fail "a journal without hinv_factor resumed with --hinv-factor blocked"
    fi
    grep -q "hinv_factor was not recorded, now blocked" changed.log || fail "the refusal does not name hinv_factor"
  fi
  world 1 --parallel "$parallel" --output w1 --resume 2> w1.log
  check "$parallel, killed at world 1, resumed at world 1" w1 ref w1.log 3
  # One rank of 2 killed (the owner of layer 3), resumed at world 3 (pipeline) or 1 (samples).
  if PIPEPRUNE_TEST_KILL_LAYER=3 world 2 --parallel "$parallel" --output w2 --quiet >/dev/null 2>&1; then
    fail "$parallel: the kill hook did not kill at world 2"
  fi
  again=3
  [ "$parallel" = samples ] && again=1
  world "$again" --parallel "$parallel" --output w2 --resume 2> w2.log
  # In samples mode the owner of layer 2 may still be writing it when the other rank dies.
  finished=3
  [ "$parallel" = samples ] && finished="2|3"
  check "$parallel, one rank of 2 killed, resumed at world $again" w2 ref w2.log "$finished"
done
# OWL: the resumed run measures the outliers again (the same ratios: deterministic) and
# continues; a changed OWL setting is refused naming it. Killed at world 1, resumed at world 2.
mkdir -p "$work/owl"
cd "$work/owl"
owl=(--sparsity 0.7 --sparsity-profile owl)  # with the common sparsegpt
world 1 "${owl[@]}" --output ref --quiet
if PIPEPRUNE_TEST_KILL_LAYER=3 world 1 "${owl[@]}" --output w1 --quiet 2>/dev/null; then fail "owl: the kill hook did not kill"; fi
if world 1 "${owl[@]}" --owl-lambda 0.1 --output w1 --resume --quiet 2> changed.log; then fail "owl: a changed lambda was accepted"; fi
grep -q "owl_lambda was 0.08, now 0.1" changed.log || fail "owl: the refusal does not name owl_lambda"
world 2 "${owl[@]}" --output w1 --resume 2> w1.log
check "owl, killed at world 1, resumed at world 2" w1 ref w1.log 3
[ "$failures" -eq 0 ] || { echo "$failures check(s) failed"; exit 1; }
echo "PASS: resumed prunes write the same bytes as uninterrupted ones at every world size"
