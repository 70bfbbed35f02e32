"""pipeprune and llm-compressor side by side, in one run on one machine: the same model, the same
calibration token ids, the same method and sparsity; wall time and peak RSS of each tool's whole
process, and how far their masks agree.

    build/xcheck-venv/bin/python benchmarks/llmcompressor_side_by_side.py [--out results.json]

Models: the trained stories260K (8 windows of 128 tokens), and the TinyLlama (llama-1b) shape with
8 of its 22 layers in fp32, synthesized by `pipeprune synth` (8 windows of 512 tokens, as
benchmarks/run_e2e.sh; fp32 so that both tools compute in one dtype throughout). Both tools get
THREADS threads (default 2). Each tool runs in its own process, one after the other; the peak RSS
is that process's (getrusage of the child). The masks are compared twice: with pipeprune built on
Debian's LibTorch 1.13 (OpenBLAS), the timed run, and with pipeprune built on the same pip
LibTorch as llm-compressor (BUILD/cuda-libtorch, scripts/build_cuda_libtorch.sh) when it exists.
The Python environment is the xcheck one (scripts/xcheck_env.sh).
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "xcheck"))
os.environ.setdefault("PIPEPRUNE_BINARY", os.path.join(ROOT, "build", "pipeprune"))
os.environ.setdefault("PIPEPRUNE_SOURCE_DIR", ROOT)

import llmcompressor_peer as peer  # noqa: E402


# Forks the measured command from a fresh, small interpreter, which reports the command's peak
# RSS on the file descriptor given first: a child forked (or posix_spawn'ed) straight from this
# process would count this process's memory (torch is imported here) in its own high-water mark.
LAUNCHER = """
import os, sys
report, command = int(sys.argv[1]), sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.execvp(command[0], command)
_, status, usage = os.wait4(pid, 0)
os.write(report, str(usage.ru_maxrss).encode())
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measured(command, env):
    """Runs command; returns (wall seconds, peak RSS bytes of that process, its stdout)."""
    read_end, write_end = os.pipe()
    start = time.time()
    result = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, str(write_end), *command], env=env,
                            capture_output=True, text=True, pass_fds=(write_end,))
    seconds = time.time() - start
    os.close(write_end)
    peak_kib = int(os.read(read_end, 64) or b"0")
    os.close(read_end)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return seconds, peak_kib * 1024, result.stdout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "pipeprune_llmcompressor.json"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", default="wanda,sparsegpt")
    args = parser.parse_args()
    binary = os.environ["PIPEPRUNE_BINARY"]
    work = tempfile.mkdtemp(prefix="pipeprune_side_by_side_")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads),
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    tiny_llama = os.path.join(work, "llama-1b-8layers")
    # With Llama 2's tokenizer (its 32000 ids are the shape's vocabulary): llm-compressor wants one.
    subprocess.run([binary, "synth", "--shape", "llama-1b", "--layers", "8", "--dtype", "fp32", "--output", tiny_llama,
                    "--tokenizer-from", os.path.join(ROOT, "tests", "fixtures", "tokenizers", "llama2"), "--quiet"],
                   check=True)
    models = [("stories260K", os.path.join(ROOT, "examples", "stories260K"), 8, 128),
              ("llama-1b shape, 8 layers, fp32", tiny_llama, 8, 512)]
    same_libtorch = os.path.join(os.path.dirname(binary), "cuda-libtorch", "pipeprune")
    rows = []
    for label, model, nsamples, seqlen in models:
        with open(os.path.join(model, "config.json")) as f:
            vocab = json.load(f)["vocab_size"]
        windows = os.path.join(work, f"calib_{nsamples}x{seqlen}.npy")
        np.save(windows, np.random.default_rng(0).integers(3, vocab, size=(nsamples, seqlen), dtype=np.int64))
        for method in args.methods.split(","):
            ours = os.path.join(work, "ours")
            theirs = os.path.join(work, "theirs")
            ours_s, ours_rss, _ = measured([binary, "prune", "--model", model, "--output", ours, "--method", method,
                                         "--calib-tokens", windows, "--threads", str(args.threads), "--quiet"], env)
            theirs_s, theirs_rss, theirs_out = measured([sys.executable, "-B", peer.__file__, model, windows, method, "unstructured",
                                             theirs], env)
            agreement, kept = peer.compare(ours, theirs)
            same = None
            if os.path.exists(same_libtorch):
                shutil.rmtree(ours)
                measured([same_libtorch, "prune", "--model", model, "--output", ours, "--method", method,
                          "--calib-tokens", windows, "--threads", str(args.threads), "--quiet"], env)
                same = peer.compare(ours, theirs)
            row = dict(model=label, method=method, nsamples=nsamples, seqlen=seqlen, threads=args.threads,
                       pipeprune_seconds=round(ours_s, 1), pipeprune_peak_rss_mib=round(ours_rss / 2**20),
                       llmcompressor_seconds=round(theirs_s, 1),
                       llmcompressor_oneshot_seconds=round(float(theirs_out.strip().splitlines()[-1]), 1),
                       llmcompressor_peak_rss_mib=round(theirs_rss / 2**20),
                       mask_agreement=round(agreement, 6), kept_weight_difference=kept,
                       same_libtorch_mask_agreement=None if same is None else round(same[0], 6),
                       same_libtorch_kept_weight_difference=None if same is None else same[1])
            print(json.dumps(row), flush=True)
            rows.append(row)
            shutil.rmtree(ours)
            shutil.rmtree(theirs)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=2)
    print("| model | method | pipeprune s | llm-compressor s (oneshot) | pipeprune peak RSS | llm-compressor peak RSS "
          "| masks agree | same LibTorch: masks agree, kept weights differ |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['method']} | {r['pipeprune_seconds']} | {r['llmcompressor_seconds']} "
              f"({r['llmcompressor_oneshot_seconds']}) | {r['pipeprune_peak_rss_mib']} MiB | "
              f"{r['llmcompressor_peak_rss_mib']} MiB | {r['mask_agreement']:.6f} | "
              f"{r['same_libtorch_mask_agreement']}, {r['same_libtorch_kept_weight_difference']} |")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
