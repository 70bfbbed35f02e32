"""pytorch_model.bin inputs read like their safetensors twins: tiny random Llamas (untied fp32,
tied bf16; one file and sharded) saved by transformers as safetensors, and the same weights
written as transformers 4's save_pretrained(safe_serialization=False) wrote them (one .bin, or
pytorch_model-0000N-of-0000M.bin with an index; tied embeddings as two names on one storage).
Checked: transformers loads the .bin folder; `pipeprune eval` gives the .bin folder exactly the
twin's logits and perplexity; `pipeprune prune` (Wanda, 50%) of the .bin folder writes
safetensors only (model.safetensors, or shards grouped as the .bin shards were, with an index),
whose tensors equal those of pruning the twin bit for bit and whose eval perplexity is the
same (at two ranks, byte for byte what one rank writes); and AutoModelForCausalLM loads that
output with no missing, unexpected or mismatched tensor.
"""

import glob
import os
import shutil
import subprocess
import unittest

import torch
from safetensors import safe_open
from transformers import LlamaConfig

import xcheck_util as x


def llama_config(tied):
    return LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=512, max_position_embeddings=256, tie_word_embeddings=tied,
                       bos_token_id=1, eos_token_id=2)


def safetensors_tensors(folder):
    tensors = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        with safe_open(path, "pt") as f:
            for name in f.keys():
                tensors[name] = f.get_tensor(name)
    return tensors


def prune(source):
    """Prunes with Wanda at 50%; returns the output folder and the log (stderr)."""
    output = os.path.join(x.temp_dir("bin_pruned"), "out")
    command = [x.BINARY, "prune", "--model", source, "--output", output, "--method", "wanda", "--sparsity", "0.5",
               "--calib-data", x.TEXT, "--nsamples", "8", "--seqlen", "64"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr}")
    return output, result.stderr


def bytes_equal(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(torch.uint8), b.view(torch.uint8))


class PytorchBinInputs(unittest.TestCase):
    def check(self, tied, dtype, max_shard_size):
        twin = x.save_tiny_model(llama_config(tied), x.temp_dir("bin_twin"), dtype=dtype, seed=5,
                                 max_shard_size=max_shard_size)
        binary = x.save_as_pytorch_bin(twin, x.temp_dir("bin_input"), max_shard_size=max_shard_size)
        self.assertFalse(glob.glob(os.path.join(binary, "*.safetensors*")))
        bin_files = sorted(glob.glob(os.path.join(binary, "pytorch_model*.bin")))
        self.assertEqual(len(bin_files) > 1, max_shard_size is not None, bin_files)
        if tied:
            # Kept as torch.save keeps them: two names on one storage, in one shard.
            shared = []
            for path in bin_files:
                sd = torch.load(path, weights_only=True)
                if "lm_head.weight" in sd:
                    shared.append(sd["lm_head.weight"].untyped_storage().data_ptr() ==
                                  sd["model.embed_tokens.weight"].untyped_storage().data_ptr())
            self.assertEqual(shared, [True])
        _, info = x.hf_model(binary)
        self.assertFalse(info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"], info)

        windows_bin, logits_bin, nll_bin = x.eval_forward(binary)
        windows_twin, logits_twin, nll_twin = x.eval_forward(twin)
        self.assertTrue(torch.equal(windows_bin, windows_twin))
        self.assertTrue(torch.equal(logits_bin, logits_twin), "the .bin forward is the twin's, bit for bit")
        self.assertEqual(nll_bin, nll_twin)

        out_bin, log = prune(binary)
        out_twin, _ = prune(twin)
        self.assertEqual(log.count("input is pytorch_model.bin; the output is written as safetensors"), 1, log)
        files = sorted(os.listdir(out_bin))
        self.assertFalse([f for f in files if f.startswith("pytorch_model")], files)
        if max_shard_size is None:
            self.assertIn("model.safetensors", files)
            self.assertNotIn("model.safetensors.index.json", files)
        else:
            # The .bin shards' grouping, under safetensors names.
            bin_map = x.read_json(os.path.join(binary, "pytorch_model.bin.index.json"))["weight_map"]
            out_map = x.read_json(os.path.join(out_bin, "model.safetensors.index.json"))["weight_map"]
            self.assertEqual(set(out_map), set(bin_map))
            for name, shard in bin_map.items():
                self.assertEqual(out_map[name], shard.replace("pytorch_model-", "model-").replace(".bin", ".safetensors"))

        stored_bin, stored_twin = safetensors_tensors(out_bin), safetensors_tensors(out_twin)
        # The twin (transformers 5's safetensors) stores a tied head once; the .bin stores both
        # names, and the output keeps what the input stores, as for a safetensors input with both.
        extra = set(stored_bin) - set(stored_twin)
        self.assertEqual(extra, {"lm_head.weight"} if tied else set())
        self.assertFalse(set(stored_twin) - set(stored_bin))
        for name, tensor in stored_twin.items():
            self.assertTrue(bytes_equal(stored_bin[name], tensor), name)
        if tied:
            self.assertTrue(bytes_equal(stored_bin["lm_head.weight"], stored_twin["model.embed_tokens.weight"]))

        if max_shard_size is not None:
            # Two ranks: each copies its own layers' tensors out of the .bin shards.
            out_world2 = os.path.join(x.temp_dir("bin_pruned_world2"), "out")
            x.pipeprune("prune", "--model", binary, "--output", out_world2, "--method", "wanda", "--sparsity", "0.5",
                        "--calib-data", x.TEXT, "--nsamples", "8", "--seqlen", "64", "--quiet", world=2)
            for name in sorted(os.listdir(out_bin)):
                with open(os.path.join(out_bin, name), "rb") as a, open(os.path.join(out_world2, name), "rb") as b:
                    self.assertEqual(a.read(), b.read(), f"{name}: world 2 differs from world 1")
            shutil.rmtree(os.path.dirname(out_world2))

        _, logits_out_bin, nll_out_bin = x.eval_forward(out_bin)
        _, logits_out_twin, nll_out_twin = x.eval_forward(out_twin)
        self.assertEqual(nll_out_bin, nll_out_twin)
        self.assertTrue(torch.equal(logits_out_bin, logits_out_twin))
        model, info = x.hf_model(out_bin)
        self.assertFalse(info["missing_keys"], "missing tensors")
        self.assertFalse(info["unexpected_keys"], "unexpected tensors")
        self.assertFalse(info["mismatched_keys"], "mismatched tensors")
        theirs = x.hf_logits(model, windows_bin)
        self.assertLess(x.relative_difference(logits_out_bin, theirs), 1e-4)
        print(f"tied={tied} {dtype} shards={len(bin_files)}: nll {nll_bin:.6f} -> pruned {nll_out_bin:.6f}")
        for folder in (twin, binary, os.path.dirname(out_bin), os.path.dirname(out_twin)):
            shutil.rmtree(folder)

    def test_bin_inputs_read_and_prune_like_their_safetensors_twins(self):
        for tied, dtype in ((False, torch.float32), (True, torch.bfloat16)):
            for max_shard_size in (None, "200KB"):
                with self.subTest(tied=tied, dtype=str(dtype), sharded=max_shard_size is not None):
                    self.check(tied, dtype, max_shard_size)


if __name__ == "__main__":
    unittest.main()
