"""mergekit and PEFT as the oracles of `pipeprune merge`, on tiny Llama checkpoints transformers
saves itself (a base and two "fine-tunes": the base plus small seeded noise, as real fine-tunes
differ from their base):

- linear, task_arithmetic and ties, computed in fp32 (mergekit with `dtype: float32`): every
  output tensor equals mergekit's run_merge bit for bit, except TIES entries whose task-vector
  magnitude ties with the trim threshold (mergekit's argsort is unstable there; pipeprune keeps
  the lowest index): those are counted and must be none on these random fp32 deltas;
- dare_ties: no two implementations share a random stream, so the statistics: the fraction of
  each tensor changed from the base is the density's, as in mergekit's output;
- LoRA: adapters made and saved by PEFT (plain, rsLoRA with rank/alpha patterns, embeddings),
  folded by PEFT's merge_and_unload and by `pipeprune merge --method lora`: the same tensors to
  float rounding.
"""

import glob
import os
import shutil
import unittest

import torch
from safetensors.torch import load_file

import xcheck_util as x

CONFIG = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              vocab_size=512, max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=False)


def tensors_of(folder):
    out = {}
    for f in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        out.update(load_file(f))
    return out


def fine_tune(base, path, seed):
    """The base's weights plus N(0, 0.002) noise (norms included), saved by transformers."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.002)
    model.save_pretrained(path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(base, name), os.path.join(path, name))
    return path


def mergekit_merge(config, out):
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    run_merge(MergeConfiguration.model_validate(config), out,
              MergeOptions(copy_tokenizer=False, write_model_card=False, lazy_unpickle=False, quiet=True))
    return out


class MergekitSideBySide(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from transformers import LlamaConfig

        cls.work = x.temp_dir("mergekit")
        cls.base = x.save_tiny_model(LlamaConfig(**CONFIG), os.path.join(cls.work, "base"), seed=0)
        cls.a = fine_tune(cls.base, os.path.join(cls.work, "a"), 1)
        cls.b = fine_tune(cls.base, os.path.join(cls.work, "b"), 2)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work)

    def ours(self, name, *args):
        out = os.path.join(self.work, "ours_" + name)
        x.pipeprune("merge", *args, "--output", out, "--overwrite", "--quiet")
        return tensors_of(out)

    def compare_exact(self, ours, theirs, label):
        self.assertEqual(sorted(ours), sorted(theirs), label)
        differing = 0
        for key, t in theirs.items():
            o = ours[key]
            self.assertEqual(o.dtype, t.dtype, f"{label} {key}")
            self.assertEqual(o.shape, t.shape, f"{label} {key}")
            differing += int((o != t).sum())
        print(f"{label}: {differing} of {sum(t.numel() for t in theirs.values())} entries differ from mergekit")
        self.assertEqual(differing, 0, label)

    def test_linear_task_arithmetic_ties_equal_mergekit(self):
        cases = {
            "linear": ({"merge_method": "linear", "dtype": "float32",
                        "models": [{"model": self.a, "parameters": {"weight": 0.7}},
                                   {"model": self.b, "parameters": {"weight": 0.5}}]},
                       ["--method", "linear", "--models", f"{self.a},{self.b}", "--weights", "0.7,0.5"]),
            "task_arithmetic": ({"merge_method": "task_arithmetic", "base_model": self.base, "dtype": "float32",
                                 "parameters": {"lambda": 0.9},
                                 "models": [{"model": self.a, "parameters": {"weight": 0.5}},
                                            {"model": self.b, "parameters": {"weight": 0.7}}]},
                                ["--method", "task_arithmetic", "--base", self.base, "--models", f"{self.a},{self.b}",
                                 "--weights", "0.5,0.7", "--lambda", "0.9"]),
            "ties": ({"merge_method": "ties", "base_model": self.base, "dtype": "float32",
                      "models": [{"model": self.a, "parameters": {"weight": 0.6, "density": 0.4}},
                                 {"model": self.b, "parameters": {"weight": 0.4, "density": 0.7}}]},
                     ["--method", "ties", "--base", self.base, "--models", f"{self.a},{self.b}", "--weights", "0.6,0.4",
                      "--density", "0.4,0.7"]),
        }
        for name, (config, args) in cases.items():
            with self.subTest(method=name):
                theirs = tensors_of(mergekit_merge(config, os.path.join(self.work, "theirs_" + name)))
                self.compare_exact(self.ours(name, *args), theirs, name)

    def test_dare_ties_drops_as_mergekit_does(self):
        config = {"merge_method": "dare_ties", "base_model": self.base, "dtype": "float32",
                  "models": [{"model": self.a, "parameters": {"weight": 0.5, "density": 0.3}},
                             {"model": self.b, "parameters": {"weight": 0.5, "density": 0.3}}]}
        theirs = tensors_of(mergekit_merge(config, os.path.join(self.work, "theirs_dare")))
        ours = self.ours("dare", "--method", "dare_ties", "--base", self.base, "--models", f"{self.a},{self.b}",
                         "--weights", "0.5,0.5", "--density", "0.3", "--seed", "3")
        base = tensors_of(self.base)
        for key in ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"):
            changed_ours = (ours[key] != base[key]).double().mean().item()
            changed_theirs = (theirs[key] != base[key]).double().mean().item()
            # An entry changes when some model kept it with the elected sign: at density 0.3 for
            # two models about 1 - 0.7^2 = 0.51 are kept by either, fewer agree with the sign.
            print(f"dare_ties {key}: changed {changed_ours:.4f} (pipeprune) vs {changed_theirs:.4f} (mergekit)")
            self.assertAlmostEqual(changed_ours, changed_theirs, delta=0.03)

    def test_lora_fold_equals_peft_merge_and_unload(self):
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        cases = {
            "plain": LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]),
            "rslora_patterns": LoraConfig(r=8, lora_alpha=16, use_rslora=True, target_modules=["q_proj", "o_proj", "up_proj"],
                                          rank_pattern={"o_proj": 2}, alpha_pattern={"up_proj": 4}),
            "embeddings": LoraConfig(r=4, lora_alpha=4, target_modules=["embed_tokens", "k_proj"]),
        }
        for name, lora in cases.items():
            with self.subTest(adapter=name):
                model = AutoModelForCausalLM.from_pretrained(self.base, dtype=torch.float32)
                peft_model = get_peft_model(model, lora)
                generator = torch.Generator().manual_seed(7)
                with torch.no_grad():
                    # PEFT starts B (or the embedding's A) at zero: a zero update would prove nothing.
                    for key, p in peft_model.named_parameters():
                        if "lora_" in key:
                            p.copy_(torch.randn(p.shape, generator=generator) * 0.05)
                adapter = os.path.join(self.work, "adapter_" + name)
                peft_model.save_pretrained(adapter)
                expected = {k: v.detach().clone() for k, v in peft_model.merge_and_unload().state_dict().items()}
                out = os.path.join(self.work, "folded_" + name)
                x.pipeprune("merge", "--method", "lora", "--lora", adapter, "--lora-base", self.base, "--output", out,
                            "--overwrite", "--quiet")
                ours = tensors_of(out)
                changed = 0
                for key, t in ours.items():
                    want = expected[key]
                    scale = want.abs().max().item()
                    self.assertLessEqual((t - want).abs().max().item(), 1e-6 * max(scale, 1.0), f"{name} {key}")
                    changed += int(not torch.equal(t, tensors_of(self.base)[key])) if key.endswith("proj.weight") else 0
                print(f"lora {name}: {len(ours)} tensors equal PEFT's merge_and_unload to 1e-6; {changed} projections changed")
                self.assertGreater(changed, 0)


if __name__ == "__main__":
    unittest.main()
