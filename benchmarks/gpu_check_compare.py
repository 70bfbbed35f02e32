"""Comparisons of benchmarks/gpu_check.sh: two runs of pipeprune (CUDA against CPU, budgeted against
unbudgeted, two ranks against one) or pipeprune against transformers, each as one JSON line on
stdout and an exit status: 0 within the tolerance, 1 outside it, 2 when the inputs cannot be
compared (a one-line message says why).

    gpu_check_compare.py masks A_DIR B_DIR [--min-agreement 0.999]
    gpu_check_compare.py logits --a-windows W --a-logits L --a-eval TXT --b-windows ... [--max-relative 1e-4]
    gpu_check_compare.py hf --model DIR --windows W --logits L --eval TXT [--device cuda]
    gpu_check_compare.py text A.txt B.txt --a-ids A.npy --b-ids B.npy [--min-prefix 128]
    gpu_check_compare.py timing --label L --wall S --report R.json --memory-log M.csv --reference REF.json
    gpu_check_compare.py cuda-info
    gpu_check_compare.py selftest

`masks` compares the zero pattern of every decoder-layer linear (`*.layers.N.*proj.weight`) of
two safetensors output folders: the fraction of entries that are zero in both or non-zero in
both. `logits` and `hf` use the tolerances of tests/xcheck (logits: max |a - b| over max |b|;
total NLL: |a / b - 1|), and `hf` reuses tests/xcheck/xcheck_util.py's transformers helpers.
"""

import argparse
import glob
import json
import os
import re
import sys
import tempfile

import numpy as np
import torch
from safetensors import safe_open

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Incomparable(Exception):
    """The two sides cannot be compared at all (exit 2), as opposed to disagreeing (exit 1)."""


def emit(result, ok):
    result["pass"] = bool(ok)
    print(json.dumps(result, sort_keys=True))
    return 0 if ok else 1


def read_tensors(folder):
    """Every tensor of every .safetensors file of the folder, by name."""
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        raise Incomparable(f"{folder}: no .safetensors files")
    tensors = {}
    for path in files:
        with safe_open(path, framework="pt") as f:
            for name in f.keys():
                tensors[name] = f.get_tensor(name)
    return tensors


def is_layer_linear(name):
    return re.search(r"\.layers\.\d+\.", name) is not None and name.endswith("proj.weight")


def mask_agreement(a_dir, b_dir):
    a, b = read_tensors(a_dir), read_tensors(b_dir)
    if sorted(a) != sorted(b):
        only = sorted(set(a) ^ set(b))[:3]
        raise Incomparable(f"{a_dir} and {b_dir} hold different tensors (e.g. {only})")
    linears = [name for name in a if is_layer_linear(name)]
    if not linears:
        raise Incomparable(f"{a_dir}: no decoder-layer linears (*.layers.N.*proj.weight)")
    agree = total = 0
    worst_name, worst = None, 1.0
    kept_difference = 0.0
    for name in sorted(linears):
        x, y = a[name], b[name]
        if x.shape != y.shape:
            raise Incomparable(f"{name}: shape {tuple(x.shape)} in {a_dir}, {tuple(y.shape)} in {b_dir}")
        same = (x == 0) == (y == 0)
        agree += int(same.sum())
        total += same.numel()
        fraction = float(same.float().mean())
        if fraction < worst:
            worst_name, worst = name, fraction
        both = (x != 0) & (y != 0)
        if bool(both.any()):
            kept_difference = max(kept_difference, float((x.float() - y.float())[both].abs().max()))
    identical = all(a[n].dtype == b[n].dtype and torch.equal(a[n], b[n]) for n in a)
    return {"agreement": agree / total, "entries": total, "linears": len(linears), "worst_linear": worst_name,
            "worst_linear_agreement": worst, "kept_weight_max_difference": kept_difference,
            "all_tensors_identical": identical}


def read_eval(path):
    """The perplexity and total NLL printed by `pipeprune eval`."""
    text = open(path).read()
    ppl = re.search(r"perplexity ([0-9.eE+-]+)", text)
    nll = re.search(r"total nll ([0-9.eE+-]+)", text)
    if not ppl or not nll:
        raise Incomparable(f"{path}: no 'perplexity X ... total nll Y' line of pipeprune eval")
    return float(ppl.group(1)), float(nll.group(1))


def relative_difference(ours, theirs):
    """max |ours - theirs| over max |theirs|, as tests/xcheck/xcheck_util.py's relative_difference."""
    return float((ours - theirs).abs().max() / theirs.abs().max())


def load_windows_logits(windows_path, logits_path):
    return torch.from_numpy(np.load(windows_path)), torch.from_numpy(np.load(logits_path))


def compare_logits(args):
    a_windows, a_logits = load_windows_logits(args.a_windows, args.a_logits)
    b_windows, b_logits = load_windows_logits(args.b_windows, args.b_logits)
    if not torch.equal(a_windows, b_windows):
        raise Incomparable("the two evals saw different token windows")
    if a_logits.shape != b_logits.shape:
        raise Incomparable(f"logits of shape {tuple(a_logits.shape)} and {tuple(b_logits.shape)}")
    a_ppl, a_nll = read_eval(args.a_eval)
    b_ppl, b_nll = read_eval(args.b_eval)
    result = {"logits_relative_difference": relative_difference(a_logits, b_logits), "perplexity_a": a_ppl,
              "perplexity_b": b_ppl, "nll_ratio_minus_1": abs(a_nll / b_nll - 1), "max_relative": args.max_relative,
              "max_nll_ratio": args.max_nll_ratio, "windows": list(a_windows.shape)}
    ok = result["logits_relative_difference"] <= args.max_relative and result["nll_ratio_minus_1"] <= args.max_nll_ratio
    return emit(result, ok)


def import_xcheck_util():
    """tests/xcheck/xcheck_util.py, whose module reads the binary's path at import (unused here)."""
    os.environ.setdefault("PIPEPRUNE_BINARY", "unused-by-gpu-check")
    os.environ.setdefault("PIPEPRUNE_SOURCE_DIR", ROOT)
    sys.path.insert(0, os.path.join(ROOT, "tests", "xcheck"))
    threads = torch.get_num_threads()
    import xcheck_util

    torch.set_num_threads(threads)  # it pins one thread for its ctest runs; keep this machine's
    return xcheck_util


def compare_hf(args):
    x = import_xcheck_util()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise Incomparable(f"--device {args.device}: torch {torch.__version__} sees no GPU")
    windows, ours = load_windows_logits(args.windows, args.logits)
    _, nll = read_eval(args.eval)
    # Eager attention: the explicit matmul + softmax pipeprune computes, on every device (sdpa
    # picks other kernels on a GPU, which would measure transformers' kernels, not our forward).
    model, info = x.hf_model(args.model, attn_implementation="eager")
    problems = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if problems:
        return emit({"load_problems": {k: list(map(str, v))[:5] for k, v in problems.items()}}, False)
    theirs = x.hf_logits(model.to(device), windows.to(device)).cpu()
    result = {"logits_relative_difference": x.relative_difference(ours, theirs),
              "nll_ratio_minus_1": abs(nll / x.nll_of(theirs, windows) - 1), "device": str(device),
              "max_relative": args.max_relative, "max_nll_ratio": args.max_nll_ratio}
    ok = result["logits_relative_difference"] <= args.max_relative and result["nll_ratio_minus_1"] <= args.max_nll_ratio
    return emit(result, ok)


def common_prefix(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def compare_text(args):
    a_text, b_text = open(args.a, encoding="utf-8").read(), open(args.b, encoding="utf-8").read()
    a_ids, b_ids = np.load(args.a_ids).tolist(), np.load(args.b_ids).tolist()
    prefix = common_prefix(a_ids, b_ids)
    result = {"same_text": a_text == b_text, "tokens_a": len(a_ids), "tokens_b": len(b_ids),
              "common_prefix_tokens": prefix, "min_prefix": args.min_prefix}
    if args.expected:
        with open(args.expected) as f:
            result["a_equals_expected_text"] = a_text.rstrip("\n") == json.load(f)["expected_text"]
    if not a_ids:
        return emit(dict(result, error="the first side generated nothing"), False)
    return emit(result, a_text == b_text or prefix >= min(args.min_prefix, len(b_ids)))


def max_device_peak(memory_log):
    """The largest device_peak_bytes of a --log-memory CSV (None when the column is empty)."""
    peak = None
    with open(memory_log) as f:
        header = f.readline().strip().split(",")
        if "device_peak_bytes" not in header:
            raise Incomparable(f"{memory_log}: no device_peak_bytes column")
        column = header.index("device_peak_bytes")
        for line in f:
            cells = line.strip().split(",")
            if len(cells) > column and cells[column]:
                peak = max(peak or 0, int(cells[column]))
    return peak


def timing_row(args):
    with open(args.report) as f:
        report = json.load(f)
    with open(args.reference) as f:
        reference = json.load(f)
    ours_peak = max_device_peak(args.memory_log)
    compared = reference.get("compared", {}).get("pipeprune", {})
    row = {"label": args.label, "pipeprune_wall_seconds": args.wall, "pipeprune_job_seconds": report.get("seconds_total"),
           "pipeprune_device_peak_bytes": ours_peak, "pipeprune_host_peak_rss_bytes": report["ranks"][0].get("peak_rss_bytes"),
           "reference_seconds_total": reference["seconds_total"], "reference_seconds_loop": reference["seconds_loop"],
           "reference_device_peak_allocated_bytes": reference.get("peak_device_allocated_bytes"),
           "reference_device_peak_reserved_bytes": reference.get("peak_device_reserved_bytes"),
           "reference_peak_rss_bytes": reference.get("peak_rss_bytes"),
           "speedup_vs_reference": reference["seconds_total"] / args.wall,
           "mask_agreement_vs_reference": compared.get("mask_agreement")}
    return emit(row, True)


def cuda_info(_args):
    info = {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "available": torch.cuda.is_available()}
    if info["available"]:
        info["name"] = torch.cuda.get_device_name(0)
        info["count"] = torch.cuda.device_count()
        info["total_bytes"] = torch.cuda.get_device_properties(0).total_memory
        info["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    print(json.dumps(info, sort_keys=True))
    return 0


def selftest(_args):
    """Each comparison on made-up folders and arrays whose answer is known, including the
    failing side of every threshold, so that a comparer which always passes fails here."""
    from safetensors.torch import save_file

    work = tempfile.mkdtemp(prefix="gpu_check_selftest_")
    generator = torch.Generator().manual_seed(0)

    def folder(name, tensors):
        path = os.path.join(work, name)
        os.makedirs(path)
        save_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
        return path

    weight = torch.randn(64, 128, generator=generator)
    weight[weight.abs() < 0.67] = 0  # about half zero
    base = {"model.layers.0.self_attn.q_proj.weight": weight, "model.norm.weight": torch.ones(128)}
    flipped = weight.clone().flatten()
    flipped[:82] = torch.where(flipped[:82] == 0, torch.ones(82), torch.zeros(82))  # 82 of 8192 = 1.0%
    a = folder("a", base)
    same = folder("same", {k: v.clone() for k, v in base.items()})
    other = folder("flipped", dict(base, **{"model.layers.0.self_attn.q_proj.weight": flipped.reshape(64, 128)}))
    renamed = folder("renamed", {"model.layers.0.self_attn.k_proj.weight": weight, "model.norm.weight": torch.ones(128)})
    checks = []
    r = mask_agreement(a, same)
    checks.append(("identical folders agree 1.0 and are identical", r["agreement"] == 1.0 and r["all_tensors_identical"]))
    r = mask_agreement(a, other)
    checks.append(("1% flipped zeros give 0.99", abs(r["agreement"] - (1 - 82 / 8192)) < 1e-12))
    checks.append(("and are below 0.999", r["agreement"] < 0.999 and not r["all_tensors_identical"]))
    try:
        mask_agreement(a, renamed)
        checks.append(("different tensor names are refused", False))
    except Incomparable:
        checks.append(("different tensor names are refused", True))

    logits = torch.randn(2, 8, 16, generator=generator)
    checks.append(("equal logits differ by 0", relative_difference(logits, logits.clone()) == 0.0))
    bumped = logits.clone()
    bumped[1, 3, 5] += 1e-3 * float(logits.abs().max())
    checks.append(("a 1e-3 bump is seen as 1e-3", abs(relative_difference(bumped, logits) - 1e-3) < 1e-6))
    eval_line = os.path.join(work, "eval.txt")
    with open(eval_line, "w") as f:
        f.write("perplexity 3.978687 (8 windows of 256 tokens, 2040 predictions, total nll 2817.1416925376352, 0.4s)\n")
    checks.append(("the eval line is parsed", read_eval(eval_line) == (3.978687, 2817.1416925376352)))
    checks.append(("a common prefix stops at the first difference", common_prefix([1, 2, 3, 4], [1, 2, 5, 4]) == 2))
    csv = os.path.join(work, "memory.csv")
    with open(csv, "w") as f:
        f.write("rank,checkpoint,seconds,host_rss_bytes,host_peak_bytes,device_allocated_bytes,device_reserved_bytes,"
                "device_peak_bytes,device_free_bytes\n0,start,0,1,1,,,,\n0,layer 0 done,1,2,2,5,6,70,9\n"
                "0,end,2,2,2,5,6,40,9\n")
    checks.append(("the memory log's device peak is its largest", max_device_peak(csv) == 70))
    failed = [name for name, ok in checks if not ok]
    for name, ok in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    print(json.dumps({"selftest_cases": len(checks), "failed": failed}))
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("masks")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--min-agreement", type=float, default=0.999)
    p.add_argument("--require-identical", action="store_true", help="also every tensor bit for bit")
    p = sub.add_parser("logits")
    for side in ("a", "b"):
        for what in ("windows", "logits", "eval"):
            p.add_argument(f"--{side}-{what}", required=True)
    p.add_argument("--max-relative", type=float, default=1e-4)
    p.add_argument("--max-nll-ratio", type=float, default=1e-5)
    p = sub.add_parser("hf")
    for what in ("model", "windows", "logits", "eval"):
        p.add_argument(f"--{what}", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-relative", type=float, default=1e-4)
    p.add_argument("--max-nll-ratio", type=float, default=1e-5)
    p = sub.add_parser("text")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--a-ids", required=True)
    p.add_argument("--b-ids", required=True)
    p.add_argument("--min-prefix", type=int, default=128)
    p.add_argument("--expected", help="a reference.json whose expected_text A is compared with")
    p = sub.add_parser("timing")
    p.add_argument("--label", required=True)
    p.add_argument("--wall", type=float, required=True)
    p.add_argument("--report", required=True)
    p.add_argument("--memory-log", required=True)
    p.add_argument("--reference", required=True)
    sub.add_parser("cuda-info")
    sub.add_parser("selftest")
    args = parser.parse_args()
    try:
        if args.command == "masks":
            result = mask_agreement(args.a, args.b)
            result["min_agreement"] = args.min_agreement
            ok = result["agreement"] >= args.min_agreement and (result["all_tensors_identical"] or not args.require_identical)
            return emit(result, ok)
        return {"logits": compare_logits, "hf": compare_hf, "text": compare_text, "timing": timing_row,
                "cuda-info": cuda_info, "selftest": selftest}[args.command](args)
    except (Incomparable, OSError, KeyError, ValueError) as error:
        print(f"gpu_check_compare {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
