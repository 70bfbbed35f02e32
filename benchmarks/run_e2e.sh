#!/usr/bin/env bash
# End-to-end benchmark (issue 6): synthesizes a TinyLlama-shaped model (`synth --shape
# llama-1b`), prunes it with each method on one rank, measures the machine's yardsticks in the
# same run (gemm_probe), and writes docs/performance.json plus the tables of
# docs/performance.md (between the e2e markers; the hand-written text around them is kept).
#
#   benchmarks/run_e2e.sh            # defaults below, about 10 minutes on an idle 2-core machine
#   LAYERS=22 NSAMPLES=16 benchmarks/run_e2e.sh
#
# Settings (environment):
#   BUILD_DIR  build folder holding pipeprune and benchmarks/ (default: build; built if missing)
#   WORK_DIR   scratch folder for the model, tokens and reports (default: /tmp/pipeprune_e2e)
#   LAYERS     decoder layers kept of llama-1b's 22 (default 8: all layers have one shape, so the
#              per-layer numbers are those of the full model; whole-model time scales linearly)
#   NSAMPLES, SEQLEN   calibration windows (default 8 x 512)
#   DTYPE      storage dtype of the synthetic model (default bf16; compute is always fp32)
#   METHODS    default "magnitude wanda sparsegpt wanda:spin sparsegpt:spin"; METHOD:spin runs
#              that method with libgomp's spinning workers (OMP_WAIT_POLICY=ACTIVE,
#              GOMP_SPINCOUNT=300000: its default when the variable is unset), METHOD:passive
#              with OMP_WAIT_POLICY=PASSIVE (what pipeprune picks when the variable is unset)
#   DOC, JSON  outputs (default docs/performance.md, docs/performance.json)
#   KEEP=1     keep WORK_DIR afterwards
# No Python: the tokens come from benchmarks/random_tokens, the tables from benchmarks/e2e_summary.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
work="${WORK_DIR:-/tmp/pipeprune_e2e}"
layers="${LAYERS:-8}"
nsamples="${NSAMPLES:-8}"
seqlen="${SEQLEN:-512}"
dtype="${DTYPE:-bf16}"
methods="${METHODS:-magnitude wanda sparsegpt wanda:spin sparsegpt:spin}"
doc="${DOC:-$root/docs/performance.md}"
json="${JSON:-$root/docs/performance.json}"
shape=llama-1b

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "[run_e2e] $*" >&2; }

start_all=$(now)
for target in pipeprune random_tokens gemm_probe e2e_summary; do
  found=$( [ "$target" = pipeprune ] && echo "$build/pipeprune" || echo "$build/benchmarks/$target" )
  if [ ! -x "$found" ]; then
    say "building $target in $build"
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$build" -j "$(nproc)" --target "$target" >/dev/null
  fi
done
pipeprune="$build/pipeprune"
bench="$build/benchmarks"

rm -rf "$work"
mkdir -p "$work"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
# Busy CPU time of the whole machine, to tell how much other processes took during the run.
busy_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
busy_start=$(busy_jiffies)

say "synth $shape, $layers layers, $dtype"
t=$(now)
"$pipeprune" synth --shape "$shape" --layers "$layers" --dtype "$dtype" --output "$work/model" --quiet
synth_seconds=$(elapsed "$t")
vocab=$(grep -o '"vocab_size": *[0-9]*' "$work/model/config.json" | grep -o '[0-9]*$')
"$bench/random_tokens" --vocab "$vocab" --nsamples "$nsamples" --seqlen "$seqlen" --seed 0 --output "$work/tokens.npy"

say "gemm_probe at $seqlen tokens"
# The yardsticks run with OMP_WAIT_POLICY=PASSIVE: with OpenMP's default spinning workers, any
# other runnable thread on the core (OpenBLAS's workers, another process) makes each small
# parallel region wait for a scheduler slice (~4-8 ms here), which would measure the artifact
# rather than the machine's bandwidth.
OMP_WAIT_POLICY=PASSIVE "$bench/gemm_probe" --model "$work/model" --tokens "$seqlen" --batch "$nsamples" --reps 5 --output "$work/probe.json" >&2

report_args=()
for entry in $methods; do
  method="${entry%%:*}"
  label="$method"
  run_env=()
  # pipeprune runs with OMP_WAIT_POLICY=PASSIVE unless the variable is set. METHOD:spin brings
  # back libgomp's default spinning for comparison (the policy set, so pipeprune keeps it; the
  # spin count libgomp uses when the variable is unset); METHOD:passive sets PASSIVE explicitly.
  case "${entry#"$method"}" in
    "") ;;
    :spin) run_env=(OMP_WAIT_POLICY=ACTIVE GOMP_SPINCOUNT=300000); label="$method, OMP spin" ;;
    :passive) run_env=(OMP_WAIT_POLICY=PASSIVE); label="$method, OMP passive" ;;
    *) say "unknown variant in METHODS: $entry (use METHOD, METHOD:spin or METHOD:passive)"; exit 1 ;;
  esac
  say "prune --method $method ${run_env[*]:-}"
  name="${entry/:/-}"
  env "${run_env[@]}" "$pipeprune" prune --model "$work/model" --output "$work/pruned-$name" --method "$method" \
    --sparsity 0.5 --calib-tokens "$work/tokens.npy" --nsamples "$nsamples" --seqlen "$seqlen" \
    --report "$work/report-$name.json" --quiet
  report_args+=(--report "$label=$work/report-$name.json")
  rm -rf "$work/pruned-$name"  # only the report is needed; keeps the disk footprint to one model
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
busy_seconds=$(awk -v a="$busy_start" -v b="$(busy_jiffies)" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", (b - a) / hz }')
# CPU time of this script's children (user + system), from the shell's `times`.
times > "$work/times.txt"  # in this shell: a $(...) subshell would report its own (empty) children
own_seconds=$(tail -1 "$work/times.txt" | awk '{ for (i = 1; i <= 2; ++i) { split($i, p, /[ms]/); t += p[1] * 60 + p[2] } } END { printf "%.1f", t }')
other_seconds=$(awk -v b="$busy_seconds" -v o="$own_seconds" 'BEGIN { d = b - o; printf "%.1f", d < 0 ? 0 : d }')

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
cores=$(nproc)
mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
blas=$(ldd "$pipeprune" | grep -o 'libopenblas[^ ]*' | head -1 || true)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
total_seconds=$(elapsed "$start_all")
"$bench/e2e_summary" --model "$work/model" --probe "$work/probe.json" "${report_args[@]}" \
  --info "cpu=$cpu" --info "cores=$cores" --info "memory=$mem" --info "blas=${blas:-unknown}" \
  --info "load_average_start=$load_start" --info "load_average_end=$load_end" \
  --info "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" --info "commit=$commit" \
  --info "shape=$shape" --info "layers=$layers" --info "dtype=$dtype" \
  --info "nsamples=$nsamples" --info "seqlen=$seqlen" --info "synth_seconds=$synth_seconds" \
  --info "script_seconds=$total_seconds" --info "other_cpu_seconds=$other_seconds" \
  --info "omp_wait_policy=${OMP_WAIT_POLICY:-unset}" \
  --json "$work/summary.json" --markdown "$work/tables.md"

{
  echo "<!-- e2e:begin (generated by benchmarks/run_e2e.sh; edit outside these markers) -->"
  cat "$work/tables.md"
  echo "<!-- e2e:end -->"
} > "$work/block.md"

mkdir -p "$(dirname "$doc")"
if [ -f "$doc" ] && grep -q '<!-- e2e:begin' "$doc" && grep -q '<!-- e2e:end -->' "$doc"; then
  awk -v block="$work/block.md" '
    /<!-- e2e:begin/ { while ((getline line < block) > 0) print line; skip = 1; next }
    /<!-- e2e:end -->/ { skip = 0; next }
    !skip { print }' "$doc" > "$work/doc.md"
  cp "$work/doc.md" "$doc"
else
  { echo "# Performance"; echo; cat "$work/block.md"; } > "$doc"
fi
cp "$work/summary.json" "$json"
say "done in ${total_seconds} s: $doc, $json"
[ "${KEEP:-0}" = 1 ] || rm -rf "$work"
