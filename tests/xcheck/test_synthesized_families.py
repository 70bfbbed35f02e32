"""Every family as pipeprune writes it: `pipeprune synth` of each config in
tests/fixtures/random_models (llama, qwen2, qwen3, phi3, gemma2, gemma3_text; the models of the
multi-rank tests), and its SparseGPT 2:4 prune, load in AutoModelForCausalLM with no missing,
unexpected or mismatched tensor and give there the logits `pipeprune eval` gives; transformers'
greedy generation from the prompt's ids is the text `pipeprune generate` prints. (Gemma 2 runs transformers' eager
attention: its default sdpa path drops attention soft-capping, see test_forward_oracle.py.)
"""

import glob
import os
import shutil
import unittest

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

import xcheck_util as x

PROMPT = "Once upon a time"
NEW_TOKENS = 20


class SynthesizedFamilies(unittest.TestCase):
    def test_synth_loads_in_transformers_and_generates_the_same_text(self):
        configs = sorted(glob.glob(os.path.join(x.SOURCE, "tests", "fixtures", "random_models", "*.json")))
        self.assertGreaterEqual(len(configs), 6)
        for config in configs:
            name = os.path.basename(config)[:-5]
            with self.subTest(name):
                path = x.temp_dir(name)
                shutil.rmtree(path)
                x.pipeprune("synth", "--config", config, "--output", path, "--tokenizer-from", x.DEMO_MODEL, "--seed",
                            "3", "--quiet")
                options = {"attn_implementation": "eager"} if "gemma2" in name else {}
                pruned = x.temp_dir(name + "_pruned")
                shutil.rmtree(pruned)
                x.pipeprune("prune", "--model", path, "--output", pruned, "--method", "sparsegpt", "--pattern", "2:4",
                            "--calib-data", x.TEXT, "--nsamples", "4", "--seqlen", "48", "--quiet")
                for label, folder in (("synthesized", path), ("pruned", pruned)):
                    model, info = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                                       output_loading_info=True, **options)
                    model.eval()
                    for key in ("missing_keys", "unexpected_keys", "mismatched_keys"):
                        self.assertFalse(info[key], f"{label}: {key}")
                    windows, ours, _ = x.eval_forward(folder, seqlen=48, chunks=3)
                    difference = x.relative_difference(ours, x.hf_logits(model, windows))
                    print(f"{name} {label}: logits differ by {difference:.2e} of their largest")
                    self.assertLess(difference, 1e-4)
                shutil.rmtree(pruned)
                model, _ = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, output_loading_info=True,
                                                                **options)
                model.eval()

                tokenizer = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
                ids = tokenizer.encode(PROMPT).ids
                with torch.no_grad():
                    generated = model.generate(torch.tensor([ids]), max_new_tokens=NEW_TOKENS, do_sample=False,
                                               eos_token_id=model.config.eos_token_id, pad_token_id=0)
                # transformers pads after EOS; pipeprune stops there.
                eos = model.config.eos_token_id
                eos = set(eos if isinstance(eos, list) else [eos])
                new = generated[0, len(ids):].tolist()
                new = new[:next((i for i, t in enumerate(new) if t in eos), len(new))]
                theirs = tokenizer.decode(ids + new, skip_special_tokens=True)
                printed = x.pipeprune("generate", "--model", path, "--prompt", PROMPT, "--max-new-tokens",
                                      str(NEW_TOKENS), "--quiet")
                self.assertEqual(printed.rstrip("\n"), theirs)
                shutil.rmtree(path)


if __name__ == "__main__":
    unittest.main()
