"""OWL's per-layer sparsity against a direct implementation of the original recipe
(luuyin/OWL lib/prune_all.py, ../shared/OWL_SEMANTICS.md) written here on transformers' own
forward of the trained stories260K, with the same calibration token ids:

- the layer outlier densities (percent) are equal (counts of A > M * mean(A), A = |W| *
  sqrt(scaler_row), scaler_row accumulated as the original's WrappedGPT does over the dense
  model's inputs), and the layer ratios agree to 1e-6;
- pipeprune applies them: every row of every linear of layer l keeps cols - int(cols * s_l)
  weights, as the original's per-row Wanda sort at s_l does;
- the same ratios at world sizes 1 and 2 (pipeline), and with --parallel samples to 1e-6.
"""

import os
import shutil
import unittest

import numpy as np
import torch

import xcheck_util as x

LAMBDA, M, SPARSITY = 0.08, 5.0, 0.7


def owl_reference(model_dir, windows):
    """The original's LOD pass and ratio formula, in its order of operations."""
    model, _ = x.hf_model(model_dir)
    layers = model.model.layers
    scaler, count = {}, {}
    hooks = []
    for l, layer in enumerate(layers):
        for name, module in layer.named_modules():
            if isinstance(module, torch.nn.Linear):
                key = (l, name)
                scaler[key] = torch.zeros(module.in_features, dtype=torch.float32)
                count[key] = 0

                def add_batch(module, inputs, output, key=key):
                    # WrappedGPT.add_batch: one sequence per call here (batch 1).
                    inp = inputs[0]
                    if inp.dim() == 2:
                        inp = inp.unsqueeze(0)
                    tmp = inp.shape[0]
                    inp = inp.reshape(-1, inp.shape[-1]).t().type(torch.float32)
                    scaler[key] *= count[key] / (count[key] + tmp)
                    count[key] += tmp
                    scaler[key] += torch.norm(inp, p=2, dim=1) ** 2 / count[key]

                hooks.append(module.register_forward_hook(add_batch))
    # The dense model: layer l's inputs are the outputs of the dense layers before it.
    with torch.no_grad():
        for i in range(windows.shape[0]):
            model(windows[i:i + 1])
    for hook in hooks:
        hook.remove()
    percent = []
    for l, layer in enumerate(layers):
        metrics = []
        for name, module in layer.named_modules():
            if isinstance(module, torch.nn.Linear):
                w = module.weight.data
                metrics.append((torch.abs(w) * torch.sqrt(scaler[(l, name)].reshape((1, -1)))).flatten())
        w_metric = torch.cat(metrics)
        threshold = torch.mean(w_metric) * M
        outliers = (w_metric > threshold).sum().item()
        percent.append(float(outliers) / w_metric.numel() * 100)
    ratio = np.array(percent)
    ratio = (ratio - ratio.min()) * (1 / (ratio.max() - ratio.min()) * LAMBDA * 2)
    ratio = ratio - np.mean(ratio) + (1 - SPARSITY)
    sparsity = [0.01 if 1 - r <= 0 else 1 - r for r in ratio]
    return percent, sparsity


def pruned_with_owl(work, windows, tag, world=1, extra=()):
    out = os.path.join(work, tag)
    report = out + ".json"
    x.pipeprune("prune", "--model", x.DEMO_MODEL, "--output", out, "--method", "wanda", "--sparsity", SPARSITY,
                "--sparsity-profile", "owl", "--owl-lambda", LAMBDA, "--owl-m", M, "--calib-tokens", windows,
                "--report", report, "--quiet", *extra, world=world)
    return out, x.read_json(report)


class OwlAgainstTheRecipe(unittest.TestCase):
    def test_ratios_equal_a_direct_implementation(self):
        work = x.temp_dir("owl")
        windows_path = x.calibration_windows(work, x.DEMO_MODEL, 16, 128, seed=3)
        windows = torch.from_numpy(np.load(windows_path))
        percent, sparsity = owl_reference(x.DEMO_MODEL, windows)
        out, report = pruned_with_owl(work, windows_path, "world1")
        profile = report["sparsity_profile"]
        print("outlier %: ours", profile["outlier_percent"], "recipe", percent)
        print("sparsity : ours", profile["layer_sparsity"], "recipe", sparsity)
        self.assertEqual(profile["kind"], "owl")
        np.testing.assert_allclose(profile["outlier_percent"], percent, rtol=0, atol=1e-9)
        np.testing.assert_allclose(profile["layer_sparsity"], sparsity, rtol=0, atol=1e-6)
        # Not uniform: the ratios spread by exactly 2 lambda.
        self.assertAlmostEqual(max(sparsity) - min(sparsity), 2 * LAMBDA, places=9)

        # Applied: per row, int(cols * s_l) pruned in every linear of layer l.
        from safetensors.numpy import load_file

        tensors = load_file(os.path.join(out, "model.safetensors"))
        for l, s in enumerate(profile["layer_sparsity"]):
            for name, w in tensors.items():
                if name.startswith(f"model.layers.{l}.") and name.endswith("proj.weight"):
                    zeros_per_row = (w == 0).sum(axis=1)
                    self.assertTrue((zeros_per_row == int(w.shape[1] * s)).all(), f"{name} at {s}")
            layer = next(e for e in report["layers"] if e["layer"] == l)
            self.assertAlmostEqual(layer["target_sparsity"], s, places=12)

        # The pipeline at two ranks walks the same dense activations: the same densities.
        _, report2 = pruned_with_owl(work, windows_path, "world2", world=2)
        self.assertEqual(report2["sparsity_profile"]["outlier_percent"], profile["outlier_percent"])
        self.assertEqual(report2["sparsity_profile"]["layer_sparsity"], profile["layer_sparsity"])
        # Sample-parallel sums the statistics in another order: the same to float rounding.
        _, report3 = pruned_with_owl(work, windows_path, "samples2", world=2, extra=("--parallel", "samples"))
        np.testing.assert_allclose(report3["sparsity_profile"]["layer_sparsity"], sparsity, rtol=0, atol=1e-6)
        shutil.rmtree(work)


if __name__ == "__main__":
    unittest.main()
