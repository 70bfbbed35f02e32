#!/usr/bin/env bash
# --compute-dtype on the CPU (issue 14): the 1B-shaped job (`synth --shape llama-1b`, LAYERS
# layers, bf16 storage, NSAMPLES x SEQLEN random tokens) pruned with each method at each compute
# dtype, ROUNDS alternating rounds in one sequence; prints per run the wall time, the report's
# stats/prune/output seconds per layer and peak RSS, then each dtype's mask agreement with fp32
# compute (the share of weights whose pruned/kept state is the same; numpy from PYTHON).
#
#   benchmarks/run_compute_dtype_bench.sh
#   LAYERS=2 METHODS="wanda" DTYPES="fp32 bf16" benchmarks/run_compute_dtype_bench.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
work="${WORK_DIR:-/tmp/pipeprune_compute_dtype}"
layers="${LAYERS:-2}"
nsamples="${NSAMPLES:-8}"
seqlen="${SEQLEN:-512}"
rounds="${ROUNDS:-2}"
methods="${METHODS:-wanda sparsegpt}"
dtypes="${DTYPES:-fp32 bf16}"  # fp16: CUDA only with Debian's LibTorch
python="${PYTHON:-$build/xcheck-venv/bin/python}"
for target in "$build/pipeprune" "$build/benchmarks/random_tokens"; do
  [ -x "$target" ] || { echo "missing $target: build it first (cmake --build $build --target pipeprune random_tokens)" >&2; exit 1; }
done
rm -rf "$work"
mkdir -p "$work"
"$build/pipeprune" synth --shape llama-1b --layers "$layers" --dtype bf16 --output "$work/model" --quiet
vocab=$(grep -o '"vocab_size": *[0-9]*' "$work/model/config.json" | grep -o '[0-9]*$')
"$build/benchmarks/random_tokens" --vocab "$vocab" --nsamples "$nsamples" --seqlen "$seqlen" --seed 0 --output "$work/tokens.npy"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); bf16 hardware:" \
  "$(grep -q avx512_bf16 /proc/cpuinfo && echo avx512_bf16 || echo none)"
printf "%-10s %-5s %-6s %8s %10s %10s %10s %9s\n" method dtype round wall_s stats_s prune_s output_s peak_MiB
for round in $(seq 1 "$rounds"); do
  for method in $methods; do
    for dtype in $dtypes; do
      out="$work/$method-$dtype"
      rm -rf "$out"
      start=$(date +%s.%N)
      OMP_WAIT_POLICY=PASSIVE "$build/pipeprune" prune --model "$work/model" --output "$out" --method "$method" \
        --sparsity 0.5 --calib-tokens "$work/tokens.npy" --compute-dtype "$dtype" --report "$out.json" --quiet
      wall=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
      python3 - "$out.json" "$method" "$dtype" "$round" "$wall" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
layers = r["layers"]
mean = lambda key: sum(l[key] for l in layers) / len(layers)
peak = max(rank["peak_rss_bytes"] for rank in r["ranks"]) / 2**20
print(f"{sys.argv[2]:<10} {sys.argv[3]:<5} {sys.argv[4]:<6} {float(sys.argv[5]):8.1f} {mean('seconds_stats'):10.2f} "
      f"{mean('seconds_prune'):10.2f} {mean('seconds_output'):10.2f} {peak:9.0f}")
PY
    done
  done
done
if ! "$python" -c "import numpy" 2>/dev/null; then
  echo "no numpy at $python: mask agreement skipped (scripts/xcheck_env.sh $build makes that Python)"
  exit 0
fi
echo "mask agreement with fp32 compute (share of weights pruned in both or kept in both):"
for method in $methods; do
  for dtype in $dtypes; do
    [ "$dtype" = fp32 ] && continue
    "$python" - "$work/$method-fp32" "$work/$method-$dtype" "$method" "$dtype" <<'PY'
import json, struct, sys
import numpy as np

def zeros(folder):
    # bf16 storage: a weight is pruned when its 16 bits are +0 or -0.
    masks = {}
    import glob, os
    for path in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
            data = f.read()
        for name, info in header.items():
            if name == "__metadata__" or not name.endswith("proj.weight"):
                continue
            begin, end = info["data_offsets"]
            bits = np.frombuffer(data[begin:end], dtype=np.uint16)
            masks[name] = (bits & 0x7FFF) == 0
    return masks

a, b = zeros(sys.argv[1]), zeros(sys.argv[2])
same = sum(int((a[k] == b[k]).sum()) for k in a)
total = sum(a[k].size for k in a)
print(f"  {sys.argv[3]:<10} {sys.argv[4]:<5} {same / total:.6f} of {total} weights")
PY
  done
done
