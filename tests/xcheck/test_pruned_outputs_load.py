"""Outputs load where users load them: every pruned output (each method and pattern, the real
trained stories260K in fp32 and bf16-sharded, a transformers-made Qwen2 with biases, at one and
two ranks) is read file by file by safetensors, loads in transformers' AutoModelForCausalLM
with no missing or unexpected tensor, holds the sparsity that was asked for, and gives in
transformers the logits (1e-4 relative) and perplexity that `pipeprune eval` gives.
"""

import glob
import json
import os
import shutil
import unittest

import torch
from safetensors import safe_open
from transformers import Qwen2Config

import xcheck_util as x

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def tied_llama_saved_by_save_model():
    """Tied embeddings stored once, as lm_head.weight, with the alias in the metadata."""
    from transformers import LlamaConfig

    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=512, max_position_embeddings=256, tie_word_embeddings=True,
                         bos_token_id=1, eos_token_id=2)
    return x.save_tiny_model(config, x.temp_dir("alias_input"), seed=4, saver="save_model")


def qwen2_model():
    config = Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=512, max_position_embeddings=256, tie_word_embeddings=True,
                         use_sliding_window=False, bos_token_id=1, eos_token_id=2)
    return x.save_tiny_model(config, x.temp_dir("qwen2_input"), seed=3)


def safetensors_tensors(folder):
    """Every tensor of every .safetensors file of the folder, and the files' metadata, read by
    the safetensors library."""
    tensors, metadata = {}, {}
    for path in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        with safe_open(path, "pt") as f:
            assert f.metadata().get("format") == "pt", f"{path}: metadata {f.metadata()}"
            metadata.update(f.metadata())
            for name in f.keys():
                tensors[name] = f.get_tensor(name)
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        assert set(weight_map) == set(tensors), "the index must list exactly the stored tensors"
    return tensors, metadata


class PrunedOutputsLoad(unittest.TestCase):
    def check_output(self, source, output, method, pattern):
        stored, metadata = safetensors_tensors(output)
        source_tensors, source_metadata = safetensors_tensors(source)
        self.assertEqual(set(stored), set(source_tensors), "the output keeps the input's tensor names")
        self.assertEqual(metadata, source_metadata, "and its metadata (aliases of tied tensors)")
        for name, tensor in stored.items():
            if not name.endswith(tuple(f"{linear}.weight" for linear in LINEARS)):
                continue
            zeros = tensor == 0
            if pattern == "2:4":
                groups = zeros.reshape(tensor.shape[0], -1, 4).sum(-1)
                self.assertTrue(bool((groups >= 2).all()), f"{name}: a group of 4 with fewer than 2 zeros")
            else:
                # Magnitude prunes int(numel * s) + 1 plus ties of the whole matrix; the others per row.
                self.assertAlmostEqual(zeros.float().mean().item(), 0.5, delta=0.02, msg=name)
        model, info = x.hf_model(output)
        self.assertFalse(info["missing_keys"], "missing tensors")
        self.assertFalse(info["unexpected_keys"], "unexpected tensors")
        self.assertFalse(info["mismatched_keys"], "mismatched tensors")
        windows, ours, nll = x.eval_forward(output, seqlen=64, chunks=4)
        theirs = x.hf_logits(model, windows)
        difference = x.relative_difference(ours, theirs)
        print(f"{os.path.basename(source)} {method} {pattern}: logits differ by {difference:.2e}")
        self.assertLess(difference, 1e-4)
        self.assertAlmostEqual(nll / x.nll_of(theirs, windows), 1.0, delta=1e-5)

    def test_every_method_and_pattern_loads_in_transformers_with_the_same_forward(self):
        qwen2 = qwen2_model()
        alias = tied_llama_saved_by_save_model()
        cases = [(x.DEMO_MODEL, method, pattern, 1) for method in ("magnitude", "wanda", "sparsegpt")
                 for pattern in ("unstructured", "2:4")]
        cases += [(x.BF16_SHARDED, "sparsegpt", "unstructured", 1), (qwen2, "wanda", "2:4", 1),
                  (alias, "sparsegpt", "2:4", 1), (alias, "wanda", "unstructured", 2),
                  (x.DEMO_MODEL, "sparsegpt", "2:4", 2), (qwen2, "sparsegpt", "unstructured", 2)]
        for source, method, pattern, world in cases:
            with self.subTest(source=os.path.basename(source), method=method, pattern=pattern, world=world):
                output = os.path.join(x.temp_dir("pruned"), "out")
                x.pipeprune("prune", "--model", source, "--output", output, "--method", method, "--pattern", pattern,
                            "--sparsity", "0.5", "--calib-data", x.TEXT, "--nsamples", "8", "--seqlen", "64", "--quiet",
                            world=world)
                self.check_output(source, output, method, pattern)
                shutil.rmtree(os.path.dirname(output))
        shutil.rmtree(qwen2)
        shutil.rmtree(alias)


if __name__ == "__main__":
    unittest.main()
