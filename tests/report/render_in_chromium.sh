#!/usr/bin/env bash
# render_in_chromium.sh BINARY MODEL TEXT OUT_DIR NP [MPIRUN...]
#
# The report page in a real browser: prunes MODEL (as NP ranks under MPIRUN when NP > 1) with
# --report and --log-memory, runs `pipeprune report` on three versions of the report (with the
# memory log, without it, and naming a log that is not there), has headless Chromium load each
# page and dump its DOM and a screenshot (OUT_DIR/*.png, kept for a person to look at), and
# fails unless check_report_page.py finds every bar, line and number of the JSON on the page.
set -euo pipefail
bin=$1 model=$2 text=$3 out=$4 np=$5
shift 5
mpirun=("$@")
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "FAIL: chromium is not installed; the report's browser test needs it:" \
       "run 'bash $root/scripts/install_deps.sh --with-browser' (scripts/test.sh does)" >&2
  exit 1
fi

rm -rf "$out"
mkdir -p "$out"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
launcher=()
[ "$np" -gt 1 ] && launcher=("${mpirun[@]}")
# World 1 prunes uniformly, world 2 with OWL (per-layer targets, the profile table).
profile=()
[ "$np" -gt 1 ] && profile=(--sparsity-profile owl)
"${launcher[@]}" "$bin" prune --model "$model" --calib-data "$text" --eval-data "$text" --eval-dense \
  --eval-max-chunks 4 --nsamples 8 --seqlen 64 --method wanda --sparsity 0.5 "${profile[@]}" \
  --output "$out/model" --report "$out/run.json" --log-memory --log-memory-file "$out/run.mem.csv" > "$out/prune.log" 2>&1 ||
  { tail -20 "$out/prune.log"; echo "FAIL: the prune failed"; exit 1; }
# prune --report draws the page itself and names it on the first rank's last line (the other
# rank's lines may come after it in the merged output).
[ -s "$out/run.html" ] || { echo "FAIL: prune --report did not write $out/run.html"; exit 1; }
grep -v '^\[rank [1-9]' "$out/prune.log" | tail -1 | grep -qE "^(\[rank 0/[0-9]+\] )?done in .*the run's page: $out/run.html" ||
  { echo "FAIL: the prune's last line does not name the page"; exit 1; }
rm "$out/run.html"

# Three reports from the one run: "memory_log" as prune writes it, removed (an older report:
# peak bars), and naming a file that is not there (a note on the page, not an error).
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
with open(f"{out}/run.json") as f:
    report = json.load(f)
if report.get("memory_log") != os.path.abspath(f"{out}/run.mem.csv"):
    sys.exit(f"FAIL: prune --log-memory wrote memory_log {report.get('memory_log')!r} into the report")
peaks = dict(report)
del peaks["memory_log"]
with open(f"{out}/peaks.json", "w") as f:
    json.dump(peaks, f, indent=2)
peaks["memory_log"] = "no-such-log.csv"
with open(f"{out}/missing.json", "w") as f:
    json.dump(peaks, f, indent=2)
PY

csv=$(python3 -c 'import json,os,sys; p=json.load(open(sys.argv[1]))["memory_log"]; print(p if os.path.isabs(p) else os.path.join(os.path.dirname(sys.argv[1]), p))' "$out/run.json")
status=0
for mode in log peaks missing; do
  name=$mode
  [ "$mode" = log ] && name=run
  written=$("$bin" report "$out/$name.json")
  if [ "$written" != "$out/$name.html" ]; then
    echo "FAIL: pipeprune report printed '$written', expected $out/$name.html"
    status=1
    continue
  fi
  flags=(--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars --window-size=1480,2400)
  timeout 120 "$browser" "${flags[@]}" --dump-dom "file://$out/$name.html" > "$out/$name.dom.html" 2> "$out/$name.chromium.log" ||
    { echo "FAIL: chromium --dump-dom failed (log: $out/$name.chromium.log)"; tail -5 "$out/$name.chromium.log"; status=1; continue; }
  timeout 120 "$browser" "${flags[@]}" --screenshot="$out/$name.png" "file://$out/$name.html" >> "$out/$name.chromium.log" 2>&1 ||
    { echo "FAIL: chromium --screenshot failed (log: $out/$name.chromium.log)"; status=1; }
  [ -s "$out/$name.png" ] || { echo "FAIL: no screenshot $out/$name.png"; status=1; }
  python3 "$here/check_report_page.py" "$out/$name.json" "$out/$name.dom.html" "$mode" "$csv" || status=1
done
[ "$status" -eq 0 ] && echo "report pages checked in Chromium; screenshots: $out/*.png"
exit "$status"
