#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang with AddressSanitizer and UBSan) into build-fuzz/
# and runs each for SECONDS (default 600) from a seed corpus made of the repository's fixtures.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (targets: safetensors torch_bin config_json
#        tokenizer_json sentencepiece npy run_journal toml_config; default: all)
# sentencepiece is built with UBSan alone, in build-fuzz-ubsan/: we dlopen libsentencepiece with
# RTLD_DEEPBIND, which ASan refuses (google/sanitizers#611).
# Prints each target's executions and findings; a crash input is kept in
# build-fuzz/findings/TARGET/ (make it a regression test). Exit status 1 when anything was found.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds=${1:-600}
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(safetensors torch_bin config_json tokenizer_json sentencepiece npy run_journal toml_config)
build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
build_ubsan="$build-ubsan"
configure() {  # configure DIR SANITIZERS
  CC=clang CXX=clang++ cmake -S "$root" -B "$1" -DCMAKE_BUILD_TYPE=Release -DPIPEPRUNE_BUILD_FUZZERS=ON \
    -DPIPEPRUNE_SANITIZE="$2" -DPIPEPRUNE_BUILD_TESTS=OFF -DPIPEPRUNE_BUILD_BENCHMARKS=OFF >/dev/null
}
binary() {  # binary TARGET: where its fuzzer is
  if [ "$1" = sentencepiece ]; then echo "$build_ubsan/fuzz/fuzz_$1"; else echo "$build/fuzz/fuzz_$1"; fi
}
asan_targets=()
for target in "${targets[@]}"; do
  if [ "$target" = sentencepiece ]; then
    configure "$build_ubsan" undefined
    cmake --build "$build_ubsan" -j "$(nproc)" --target fuzz_sentencepiece
  else
    asan_targets+=("$target")
  fi
done
if [ "${#asan_targets[@]}" -gt 0 ]; then
  configure "$build" address,undefined
  cmake --build "$build" -j "$(nproc)" --target $(printf 'fuzz_%s ' "${asan_targets[@]}")
fi

seeds="$build/seeds"
rm -rf "$seeds"
mkdir -p "$seeds"/{safetensors,torch_bin,config_json,tokenizer_json,sentencepiece,npy,run_journal,toml_config}
copy() {  # copy TARGET FILE...: each file as a seed, under a unique name
  local target=$1 i=0
  shift
  for f in "$@"; do cp "$f" "$seeds/$target/seed$((i++))"; done
}
cd "$root"
copy safetensors $(find examples tests/fixtures -name '*.safetensors' -size -2M)
copy torch_bin $(find tests/data/torch_bin -name '*.bin')
copy config_json $(find examples tests/fixtures -name 'config.json') tests/fixtures/random_models/*.json
copy tokenizer_json $(find examples tests/fixtures -name 'tokenizer.json' -size -100k)
python3 scripts/fuzz_cut_tokenizers.py "$seeds/tokenizer_json" tests/fixtures/tokenizers/{gpt2,llama2}/tokenizer.json \
  ../shared/fixtures/tokenizers/{llama3,qwen2}/tokenizer.json
copy sentencepiece $(find tests/fixtures -name 'tokenizer.model')
copy toml_config configs/*.toml
# An int64 [2, 3] and an int32 [1, 4] token array, as numpy writes them (format 1.0).
python3 - "$seeds/npy" <<'PY'
import struct, sys
for name, descr, shape, item in (("int64", "<i8", (2, 3), 8), ("int32", "<i4", (1, 4), 4)):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, str(shape))
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    count = 1
    for d in shape:
        count *= d
    data = b"".join(struct.pack("<q" if item == 8 else "<i", v) for v in range(count))
    open(f"{sys.argv[1]}/{name}", "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data)
PY
printf '{\n  "method": "sparsegpt",\n  "percdamp": "0.01",\n  "calibration_tokens": "8x128 0123456789abcdef"\n}\n' > "$seeds/run_journal/run"

status=0
for target in "${targets[@]}"; do
  corpus="$build/corpus/$target"
  findings="$build/findings/$target"
  mkdir -p "$corpus" "$findings"
  log="$build/fuzz_$target.log"
  # LibTorch 1.13's PyTorchStreamReader leaks its zip reader (~700 bytes) when it rejects an
  # archive, inside libtorch_cpu; a rejected file ends the process anyway, so leaks are not
  # findings for torch_bin.
  leaks=1
  [ "$target" = torch_bin ] && leaks=0
  set +e
  ASAN_OPTIONS=detect_leaks=$leaks "$(binary "$target")" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$findings/" "$corpus" "$seeds/$target" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  found=$(find "$findings" -type f ! -name 'slow-unit-*' | wc -l)  # slow units are not failures
  echo "fuzz_$target: ${seconds}s, $runs executions, corpus $(ls "$corpus" | wc -l) inputs, $found finding(s), exit $rc"
  if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then status=1; grep -m3 -E 'ERROR|SUMMARY|deadly' "$log" || true; fi
done
exit "$status"
