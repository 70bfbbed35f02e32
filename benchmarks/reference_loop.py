"""The published pruning loops, as the yardstick of benchmarks/run_e2e.sh (issue 14).

    python benchmarks/reference_loop.py --model DIR --tokens calib.npy --method wanda \
        --threads 2 --summary ref.json [--compare LABEL=PIPEPRUNE_OUTPUT_DIR] [--device cuda]

The loops are those of locuslab/wanda (lib/prune.py: prune_magnitude, prune_wanda with
lib/layerwrapper.py's WrappedGPT) and IST-DASLab/sparsegpt (llama.py: llama_sequential with
sparsegpt.py's SparseGPT.add_batch and fasterprune), step for step: the inputs of layer 0
caught by a Catcher, every layer's linears hooked, each calibration window through the layer as
its own batch of one, the layer's linears pruned from one statistics pass, a second pass with
the pruned weights for the next layer's inputs. The model is transformers' LlamaForCausalLM held
in its stored dtype. Where the published code runs on a GPU in that dtype, this CPU port does
what ../shared/REFERENCE_SEMANTICS.md states and pipeprune does: each layer computes in fp32
(upcast for its passes, cast back to the stored dtype after pruning, so the output pass sees
the weights as saved) with the rotary tables in fp32. The attention is transformers' "eager"
LlamaAttention (explicit matmul, causal mask, softmax in fp32): the one the published code ran
on (transformers 4.28-4.36, before SDPA), and the one pipeprune computes; --attention sdpa
takes transformers 5's default instead, whose CPU kernel rounds differently (SparseGPT's masks
then agree to ~0.988 rather than 1.0 on 2 layers of the llama-1b shape, measured 2026-12-02).
Unstructured sparsity only. --device cuda runs the same loop, with the same fp32 layer passes, on
the GPU, as the published code does (benchmarks/gpu_check.sh); the default, cpu, is the port above.

The summary JSON holds the process's wall time from its start (imports, loading, the loop) and
the loop's alone, per-layer phase seconds, and the peak RSS of this process (getrusage); on a GPU
also the caching allocator's peak allocated and reserved bytes (the CUDA context not included), with
the loop's seconds taken after a device synchronize. With
each --compare LABEL=DIR, after the timing, the pruned linears are compared with that
pipeprune output folder: the fraction of entries whose zero/non-zero state agrees and the largest difference of the kept
weights.
"""

import argparse
import json
import math
import os
import resource
import sys
import time

START = time.time()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402


def find_layers(module, name=""):
    """lib/prune.py's find_layers: every nn.Linear below module, by dotted name."""
    if isinstance(module, nn.Linear):
        return {name: module}
    found = {}
    for child_name, child in module.named_children():
        found.update(find_layers(child, name + "." + child_name if name else child_name))
    return found


def batch_columns(inp):
    """Both add_batch methods' first lines: the batch size, and the inputs as [cols, tokens]."""
    if len(inp.shape) == 2:
        inp = inp.unsqueeze(0)
    tmp = inp.shape[0]
    if len(inp.shape) == 3:
        inp = inp.reshape((-1, inp.shape[-1]))
    return tmp, inp.t()


class WrappedGPT:
    """lib/layerwrapper.py: Wanda's running mean of ||x_j||^2 over calibration sequences."""

    def __init__(self, layer):
        self.layer = layer
        self.columns = layer.weight.shape[1]
        self.scaler_row = torch.zeros(self.columns, device=layer.weight.device)
        self.nsamples = 0

    def add_batch(self, inp):
        tmp, inp = batch_columns(inp)
        self.scaler_row *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        inp = inp.type(torch.float32)
        self.scaler_row += torch.norm(inp, p=2, dim=1) ** 2 / self.nsamples


class SparseGPT:
    """sparsegpt.py: the Hessian as a running mean, and fasterprune's blocked column sweep."""

    def __init__(self, layer):
        self.layer = layer
        self.rows, self.columns = layer.weight.shape
        self.H = torch.zeros((self.columns, self.columns), device=layer.weight.device)
        self.nsamples = 0

    def add_batch(self, inp):
        tmp, inp = batch_columns(inp)
        self.H *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        inp = math.sqrt(2 / self.nsamples) * inp.float()
        self.H += inp.matmul(inp.t())

    def fasterprune(self, sparsity, blocksize=128, percdamp=0.01):
        W = self.layer.weight.data.clone().float()
        H = self.H
        del self.H
        dead = torch.diag(H) == 0
        H[dead, dead] = 1
        W[:, dead] = 0
        damp = percdamp * torch.mean(torch.diag(H))
        diag = torch.arange(self.columns, device=W.device)
        H[diag, diag] += damp
        H = torch.linalg.cholesky(H)
        H = torch.cholesky_inverse(H)
        H = torch.linalg.cholesky(H, upper=True)
        Hinv = H
        for i1 in range(0, self.columns, blocksize):
            i2 = min(i1 + blocksize, self.columns)
            count = i2 - i1
            W1 = W[:, i1:i2].clone()
            Q1 = torch.zeros_like(W1)
            Err1 = torch.zeros_like(W1)
            Hinv1 = Hinv[i1:i2, i1:i2]
            tmp = W1 ** 2 / (torch.diag(Hinv1).reshape((1, -1))) ** 2
            thresh = torch.sort(tmp.flatten())[0][int(tmp.numel() * sparsity)]
            mask1 = tmp <= thresh
            for i in range(count):
                w = W1[:, i]
                d = Hinv1[i, i]
                q = w.clone()
                q[mask1[:, i]] = 0
                Q1[:, i] = q
                err1 = (w - q) / d
                W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
                Err1[:, i] = err1
            W[:, i1:i2] = Q1
            W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
        self.layer.weight.data = W.reshape(self.layer.weight.shape).to(self.layer.weight.data.dtype)


class Catcher(nn.Module):
    """lib/prune.py's prepare_calibration_input: stores layer 0's inputs and stops the forward."""

    def __init__(self, module, inps):
        super().__init__()
        self.module = module
        self.inps = inps
        self.index = 0
        self.kwargs = None

    def forward(self, hidden_states, **kwargs):
        self.inps[self.index] = hidden_states[0]
        self.index += 1
        self.kwargs = kwargs
        raise ValueError


def calibration_inputs(model, windows):
    layers = model.model.layers
    inps = torch.zeros((len(windows), windows.shape[1], model.config.hidden_size), dtype=torch.float32,
                       device=windows.device)
    layers[0] = Catcher(layers[0], inps)
    for window in windows:
        try:
            model(window.unsqueeze(0))
        except ValueError:
            pass
    kwargs = layers[0].kwargs
    layers[0] = layers[0].module
    # The rotary tables in fp32 (transformers casts them to the hidden states' dtype).
    kwargs["position_embeddings"] = model.model.rotary_emb(inps[:1], kwargs["position_ids"])
    layer_kwargs = {k: kwargs[k] for k in ("attention_mask", "position_ids", "position_embeddings")}
    if model.config._attn_implementation == "eager" and layer_kwargs["attention_mask"] is None:
        # The eager path applies only the mask it is given; the published code always got one.
        n = windows.shape[1]
        layer_kwargs["attention_mask"] = torch.full((n, n), float("-inf"), device=windows.device).triu(1)[None, None]
    return inps, torch.zeros_like(inps), layer_kwargs


def run_layer(layer, inps, outs, kwargs):
    for j in range(inps.shape[0]):
        outs[j] = layer(inps[j].unsqueeze(0), **kwargs)[0]


def prune_magnitude(model, sparsity):
    for layer in model.model.layers:
        for name, linear in find_layers(layer).items():
            W = linear.weight.data
            W_metric = torch.abs(W)
            thresh = torch.sort(W_metric.flatten())[0][int(W.numel() * sparsity)]
            W[W_metric <= thresh] = 0


def prune_calibrated(model, windows, method, sparsity, phases):
    stored = model.dtype
    with torch.no_grad():
        inps, outs, kwargs = calibration_inputs(model, windows)
        for layer in model.model.layers:
            t0 = time.time()
            layer.float()
            subset = find_layers(layer)
            wrapped = {name: (WrappedGPT if method == "wanda" else SparseGPT)(subset[name]) for name in subset}
            handles = [subset[name].register_forward_hook(
                (lambda name: lambda _, inp, out: wrapped[name].add_batch(inp[0].data))(name)) for name in subset]
            run_layer(layer, inps, outs, kwargs)
            for handle in handles:
                handle.remove()
            t1 = time.time()
            for name in subset:
                if method == "wanda":
                    W_metric = torch.abs(subset[name].weight.data) * torch.sqrt(wrapped[name].scaler_row.reshape((1, -1)))
                    W_mask = torch.zeros_like(W_metric) == 1
                    sort_res = torch.sort(W_metric, dim=-1, stable=True)
                    indices = sort_res[1][:, :int(W_metric.shape[1] * sparsity)]
                    W_mask.scatter_(1, indices, True)
                    subset[name].weight.data[W_mask] = 0
                else:
                    wrapped[name].fasterprune(sparsity)
            del wrapped
            # The output pass sees the weights as the model stores them.
            layer.to(stored).float()
            t2 = time.time()
            run_layer(layer, inps, outs, kwargs)
            layer.to(stored)
            phases.append({"stats": t1 - t0, "prune": t2 - t1, "output": time.time() - t2})
            inps, outs = outs, inps


def linear_tensors(folder):
    """Every layer linear's weight of a safetensors folder, by tensor name."""
    found = {}
    for file in sorted(os.listdir(folder)):
        if not file.endswith(".safetensors"):
            continue
        with safe_open(os.path.join(folder, file), framework="pt") as f:
            for key in f.keys():
                if ".layers." in key and key.endswith("proj.weight"):
                    found[key] = f.get_tensor(key)
    return found


def compare(model, folder):
    ours = {name + ".weight": linear.weight.data for name, linear in find_layers(model).items()
            if ".layers." in name}
    theirs = linear_tensors(folder)
    if sorted(ours) != sorted(theirs):
        raise SystemExit(f"--compare {folder}: its layer linears are not this model's")
    agree = total = 0
    kept_difference = 0.0
    for key, w in ours.items():
        other = theirs[key].to(device=w.device, dtype=w.dtype)
        same = (w == 0) == (other == 0)
        agree += int(same.sum())
        total += same.numel()
        both = (w != 0) & (other != 0)
        if both.any():
            kept_difference = max(kept_difference, float((w.float() - other.float())[both].abs().max()))
    return agree / total, kept_difference


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--tokens", required=True, help="[nsamples, seqlen] int32/int64 .npy")
    parser.add_argument("--method", required=True, choices=["magnitude", "wanda", "sparsegpt"])
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--attention", default="eager", choices=["eager", "sdpa"])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda / cuda:N")
    parser.add_argument("--summary", required=True)
    parser.add_argument("--compare", action="append", default=[], metavar="LABEL=DIR",
                        help="a pipeprune output folder of the same job (repeatable)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: torch {torch.__version__} sees no GPU (torch.cuda.is_available() is False)")
    windows = torch.from_numpy(np.load(args.tokens).astype(np.int64)).to(device)
    with open(os.path.join(args.model, "config.json")) as f:
        config = json.load(f)
    stored = getattr(torch, config.get("dtype") or config.get("torch_dtype") or "float32")
    model = transformers.AutoModelForCausalLM.from_pretrained(args.model, dtype=stored, attn_implementation=args.attention)
    model.config.use_cache = False
    model.eval()
    model.to(device)
    loop_start = time.time()
    phases = []
    if args.method == "magnitude":
        prune_magnitude(model, args.sparsity)
    else:
        prune_calibrated(model, windows, args.method, args.sparsity, phases)
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the kernels queued by the loop are part of its time
    loop_seconds = time.time() - loop_start
    summary = {"method": args.method, "sparsity": args.sparsity, "threads": args.threads,
               "attention": args.attention, "nsamples": int(windows.shape[0]), "seqlen": int(windows.shape[1]),
               "seconds_total": time.time() - START, "seconds_loop": loop_seconds,
               "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
               "layers": phases, "torch": torch.__version__, "transformers": transformers.__version__}
    if device.type == "cuda":
        summary["device"] = torch.cuda.get_device_name(device)
        summary["peak_device_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
        summary["peak_device_reserved_bytes"] = torch.cuda.max_memory_reserved(device)
    summary["compared"] = {}
    for entry in args.compare:
        label, _, folder = entry.partition("=")
        if not folder:
            raise SystemExit(f"--compare needs LABEL=DIR, got '{entry}'")
        agreement, kept = compare(model, folder)
        summary["compared"][label] = {"folder": folder, "mask_agreement": agreement, "kept_weight_difference": kept}
    with open(args.summary, "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps({k: v for k, v in summary.items() if k != "layers"}))


if __name__ == "__main__":
    sys.exit(main())
