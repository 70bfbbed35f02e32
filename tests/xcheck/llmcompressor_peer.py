"""llm-compressor as a peer: its WandaPruningModifier or SparseGPTModifier run oneshot on the
CPU with the very calibration token ids pipeprune is given (--calib-tokens), and the masks of
two outputs compared linear by linear. Used by test_llmcompressor.py and by
benchmarks/llmcompressor_side_by_side.py.

Settings matched to pipeprune's: the sequential pipeline (each decoder layer calibrated on the
outputs of the already pruned layers before it, as the references and pipeprune do), no
shuffling, batch size 1, every Linear of the decoder layers (lm_head left dense), SparseGPT's
block size 128 and dampening 0.01.
"""

import glob
import os
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def run(model_dir, windows_npy, method, pattern, output, sparsity=0.5):
    """Prunes model_dir with llm-compressor into output; returns the seconds oneshot took."""
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.pruning import SparseGPTModifier, WandaPruningModifier
    from transformers import AutoModelForCausalLM

    windows = np.load(windows_npy)
    dataset = Dataset.from_dict({"input_ids": windows.tolist(), "attention_mask": np.ones_like(windows).tolist()})
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    structure = "0:0" if pattern == "unstructured" else pattern
    common = dict(sparsity=sparsity, mask_structure=structure, targets=["Linear"], ignore=["re:.*lm_head"])
    if method == "wanda":
        modifier = WandaPruningModifier(**common)
    else:
        modifier = SparseGPTModifier(**common, block_size=128, dampening_frac=0.01)
    start = time.time()
    oneshot(model=model, dataset=dataset, recipe=[modifier], num_calibration_samples=len(windows),
            max_seq_length=windows.shape[1], shuffle_calibration_samples=False, pipeline="sequential",
            batch_size=1)
    seconds = time.time() - start
    model.save_pretrained(output)
    return seconds


def load_linears(folder):
    tensors = {}
    for path in glob.glob(os.path.join(folder, "*.safetensors")):
        tensors.update(load_file(path))
    return {k: v.float() for k, v in tensors.items() if k.endswith(tuple(f"{n}.weight" for n in LINEARS))}


def compare(ours_dir, theirs_dir):
    """(mask agreement over all decoder linears, largest relative difference of the weights both keep)."""
    ours, theirs = load_linears(ours_dir), load_linears(theirs_dir)
    assert set(ours) == set(theirs), "the two outputs prune different tensors"
    agree = total = 0
    kept_difference = 0.0
    for name in ours:
        a, b = ours[name], theirs[name]
        agree += ((a == 0) == (b == 0)).sum().item()
        total += a.numel()
        both = (a != 0) & (b != 0)
        kept_difference = max(kept_difference, ((a - b).abs() * both).max().item() / b.abs().max().item())
    return agree / total, kept_difference


if __name__ == "__main__":
    # python llmcompressor_peer.py MODEL WINDOWS.npy METHOD PATTERN OUTPUT: prints the seconds.
    print(run(*sys.argv[1:6]))
