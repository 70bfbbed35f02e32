#!/usr/bin/env bash
# End-to-end benchmark (issue 6): synthesizes a TinyLlama-shaped model (`synth --shape
# llama-1b`), prunes it with each method on one rank and, for METHOD:np2 entries, as a pipeline
# of two ranks under mpirun, measures the machine's yardsticks in the same run (gemm_probe), and
# writes docs/performance.json plus the tables of docs/performance.md (between the e2e markers;
# the hand-written text around them is kept).
#
#   benchmarks/run_e2e.sh            # defaults below, about 12 minutes on an idle 2-core machine
#   LAYERS=22 NSAMPLES=16 benchmarks/run_e2e.sh
#
# Settings (environment):
#   BUILD_DIR  build folder holding pipeprune and benchmarks/ (default: build; built if missing)
#   WORK_DIR   scratch folder for the model, tokens and reports (default: /tmp/pipeprune_e2e)
#   LAYERS     decoder layers kept of llama-1b's 22 (default 8: all layers have one shape, so the
#              per-layer numbers are those of the full model; whole-model time scales linearly)
#   NSAMPLES, SEQLEN   calibration windows (default 8 x 512)
#   DTYPE      storage dtype of the synthetic model (default bf16; compute is always fp32)
#   METHODS    default "magnitude wanda sparsegpt magnitude:np2 wanda:np2 sparsegpt:np2";
#              variants, combinable (wanda:np2:spin):
#                METHOD:npN     N >= 2 ranks, `mpirun -np N` on this machine, each rank with
#                               pipeprune's default share of the cores (cores / N threads)
#                METHOD:spin    libgomp's spinning workers (OMP_WAIT_POLICY=ACTIVE,
#                               GOMP_SPINCOUNT=300000: its default when the variable is unset)
#                METHOD:passive OMP_WAIT_POLICY=PASSIVE (what pipeprune picks when it is unset)
#   REFERENCE  the published loops (benchmarks/reference_loop.py) beside every 1-rank entry of
#              magnitude, wanda and sparsegpt without variants, timed in the same run: "auto"
#              (default) when REFERENCE_PYTHON exists, 1 (required: fail without it), 0 (off)
#   REFERENCE_PYTHON  a Python with torch and transformers (default BUILD_DIR/xcheck-venv/bin/python,
#              scripts/xcheck_env.sh). Its masks are also compared with a pipeprune built on that
#              Python's LibTorch (BUILD_DIR/cuda-libtorch/pipeprune, scripts/build_cuda_libtorch.sh)
#              when that binary exists: untimed, to tell LibTorch rounding from algorithm
#   DOC, JSON  outputs (default docs/performance.md, docs/performance.json)
#   KEEP=1     keep WORK_DIR afterwards
# OMP_NUM_THREADS, when set, is every rank's thread count, at any world size (pipeprune's rule).
# No Python: the tokens come from benchmarks/random_tokens, the tables from benchmarks/e2e_summary.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
work="${WORK_DIR:-/tmp/pipeprune_e2e}"
layers="${LAYERS:-8}"
nsamples="${NSAMPLES:-8}"
seqlen="${SEQLEN:-512}"
dtype="${DTYPE:-bf16}"
methods="${METHODS:-magnitude wanda sparsegpt magnitude:np2 wanda:np2 sparsegpt:np2}"
doc="${DOC:-$root/docs/performance.md}"
json="${JSON:-$root/docs/performance.json}"
shape=llama-1b
reference="${REFERENCE:-auto}"
reference_python="${REFERENCE_PYTHON:-$build/xcheck-venv/bin/python}"
same_libtorch="$build/cuda-libtorch/pipeprune"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "[run_e2e] $*" >&2; }

# parse_entry ENTRY: sets method, label, ranks and run_env from a METHODS entry
# (METHOD[:VARIANT]...). Labels end with ", N ranks" for N > 1: e2e_summary compares such a row
# with the row of the same label without that suffix.
parse_entry() {
  local entry=$1 rest variant policy_label=""
  method="${entry%%:*}"
  ranks=1
  run_env=()
  rest="${entry#"$method"}"
  [ -n "$method" ] || { say "empty method in METHODS entry '$entry'"; return 1; }
  while [ -n "$rest" ]; do
    rest="${rest#:}"
    variant="${rest%%:*}"
    rest="${rest#"$variant"}"
    case "$variant" in
      # pipeprune runs with OMP_WAIT_POLICY=PASSIVE unless the variable is set. spin brings back
      # libgomp's default spinning for comparison (the policy set, so pipeprune keeps it; the
      # spin count libgomp uses when the variable is unset); passive sets PASSIVE explicitly.
      spin) run_env=(OMP_WAIT_POLICY=ACTIVE GOMP_SPINCOUNT=300000); policy_label=", OMP spin" ;;
      passive) run_env=(OMP_WAIT_POLICY=PASSIVE); policy_label=", OMP passive" ;;
      np*)
        ranks="${variant#np}"
        if ! [[ "$ranks" =~ ^[0-9]+$ ]] || [ "$ranks" -lt 2 ]; then
          say "bad rank count in METHODS entry '$entry': use npN with N >= 2 (e.g. $method:np2)"
          return 1
        fi ;;
      *) say "unknown variant '$variant' in METHODS entry '$entry' (use METHOD, METHOD:npN, METHOD:spin, METHOD:passive, or several: METHOD:np2:spin)"; return 1 ;;
    esac
  done
  label="$method$policy_label"
  [ "$ranks" -eq 1 ] || label+=", $ranks ranks"
}

# Every entry checked before any work: a typo should not cost the synth and the probe first.
multi_rank=0
for entry in $methods; do
  parse_entry "$entry" || exit 1
  [ "$ranks" -eq 1 ] || multi_rank=1
done
if [ "$multi_rank" = 1 ] && ! command -v mpirun >/dev/null; then
  say "METHODS has multi-rank entries (METHOD:npN) but mpirun is not on PATH; install Open MPI or drop those entries"
  exit 1
fi

case "$reference" in
  0) ;;
  1|auto)
    if ! "$reference_python" -c "import torch, transformers, safetensors" 2>/dev/null; then
      [ "$reference" = auto ] || { say "REFERENCE=1 but $reference_python cannot import torch, transformers and safetensors (scripts/xcheck_env.sh $build makes that environment; or set REFERENCE_PYTHON)"; exit 1; }
      say "no Python with torch and transformers at $reference_python: the reference loops are skipped (scripts/xcheck_env.sh $build makes one)"
      reference=0
    fi ;;
  *) say "REFERENCE must be 0, 1 or auto, got '$reference'"; exit 1 ;;
esac

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

# Multi-rank runs: mpirun as the repository's launcher and MPI tests call it (launch/pipeprune-mpirun,
# tests/mpi/CMakeLists.txt). --bind-to none: a rank bound to one core would keep all its threads
# there; --oversubscribe: Open MPI may count fewer slots than nproc (hyperthreads, containers);
# root needs the explicit allowance; restricted containers break the shared-memory single-copy
# path. No --threads: pipeprune gives each rank its share of the node's cores (cores / ranks,
# from OMPI_COMM_WORLD_LOCAL_SIZE), as the 1-rank rows get all of them.
export OMPI_MCA_btl_vader_single_copy_mechanism="${OMPI_MCA_btl_vader_single_copy_mechanism:-none}"
mpirun_flags=(--oversubscribe --bind-to none)
[ "$(id -u)" -ne 0 ] || mpirun_flags+=(--allow-run-as-root)

report_args=()
for entry in $methods; do
  parse_entry "$entry"
  launcher=()
  [ "$ranks" -eq 1 ] || launcher=(mpirun "${mpirun_flags[@]}" -np "$ranks")
  say "prune --method $method${launcher[*]:+ under ${launcher[*]}} ${run_env[*]:-}"
  name="${entry//:/-}"
  report="$work/report-$name.json"
  t=$(now)
  env "${run_env[@]}" "${launcher[@]}" "$pipeprune" prune --model "$work/model" --output "$work/pruned-$name" \
    --method "$method" --sparsity 0.5 --calib-tokens "$work/tokens.npy" --nsamples "$nsamples" --seqlen "$seqlen" \
    --report "$report" --quiet
  prune_seconds=$(elapsed "$t")
  # A pipeprune built without MPI would run N independent 1-rank jobs under mpirun (each writing
  # the same report), which would pass for a multi-rank row.
  if ! grep -Eq "\"world_size\": *$ranks([^0-9]|\$)" "$report"; then
    say "$entry: the report says world_size $(grep -o '"world_size": *[0-9]*' "$report" | grep -o '[0-9]*$'), expected $ranks (is $pipeprune built with MPI?)"
    exit 1
  fi
  report_args+=(--report "$label=$report")
  if [ "$reference" != 0 ] && [ "$ranks" -eq 1 ] && [ "$entry" = "$method" ]; then
    # The published loop on the same model, windows and thread count (pipeprune's default: all
    # cores), then its masks against pipeprune's output, and against a same-LibTorch build's.
    compare=(--compare "timed build=$work/pruned-$name")
    if [ -x "$same_libtorch" ]; then
      "$same_libtorch" prune --model "$work/model" --output "$work/same-$name" --method "$method" --sparsity 0.5 \
        --calib-tokens "$work/tokens.npy" --nsamples "$nsamples" --seqlen "$seqlen" --quiet
      compare+=(--compare "same LibTorch=$work/same-$name")
    fi
    say "reference loop --method $method ($reference_python)"
    HF_HUB_OFFLINE=1 "$reference_python" -B "$root/benchmarks/reference_loop.py" --model "$work/model" --tokens "$work/tokens.npy" \
      --method "$method" --sparsity 0.5 --threads "$(nproc)" --summary "$work/reference-$name.json" "${compare[@]}" \
      > "$work/reference-$name.log" 2>&1 || { tail -20 "$work/reference-$name.log" >&2; say "the reference loop failed"; exit 1; }
    report_args+=(--reference "$label=$work/reference-$name.json" --wall "$label=$prune_seconds")
    rm -rf "$work/same-$name"
  fi
  rm -rf "$work/pruned-$name"  # only the reports are needed; keeps the disk footprint to one model
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
  --info "omp_wait_policy=${OMP_WAIT_POLICY:-unset}" --info "omp_num_threads=${OMP_NUM_THREADS:-unset}" \
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
