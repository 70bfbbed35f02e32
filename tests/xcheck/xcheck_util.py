"""Helpers of the cross-check tests: running pipeprune, tiny models made by transformers itself,
and the forward and perplexity of a model as transformers computes them.

The tests run under tests/xcheck/run.sh with the pinned environment (requirements.txt); ctest
passes the paths through the environment (tests/xcheck/CMakeLists.txt).
"""

import json
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import torch

BINARY = os.environ["PIPEPRUNE_BINARY"]
SOURCE = os.environ["PIPEPRUNE_SOURCE_DIR"]
SHARED_FIXTURES = os.environ.get("PIPEPRUNE_SHARED_FIXTURES", os.path.join(SOURCE, "..", "shared", "fixtures"))
DEMO_MODEL = os.path.join(SOURCE, "examples", "stories260K")
BF16_SHARDED = os.path.join(SOURCE, "tests", "fixtures", "stories260K-bf16-sharded")
TEXT = os.path.join(SOURCE, "examples", "text", "tinystories_val.txt")
MPIRUN = ["mpirun", "--oversubscribe", "--allow-run-as-root", "--bind-to", "none", "-x", "OMP_NUM_THREADS=1",
          "-x", "OMPI_MCA_btl_vader_single_copy_mechanism=none"]

torch.set_num_threads(1)


def temp_dir(name):
    return tempfile.mkdtemp(prefix=f"pipeprune_xcheck_{name}_")


def pipeprune(*args, world=1, binary=BINARY):
    """Runs the binary (under mpirun for world > 1); returns stdout; fails with its stderr."""
    command = [binary, *map(str, args)]
    if world > 1:
        command = [*MPIRUN, "-np", str(world), *command]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr}")
    return result.stdout


def eval_forward(model_dir, seqlen=64, chunks=4, world=1, binary=BINARY):
    """pipeprune's windows [n, seqlen], logits [n, seqlen, vocab] and total NLL on the demo text."""
    work = temp_dir("eval")
    out = pipeprune("eval", "--model", model_dir, "--data", TEXT, "--seqlen", seqlen, "--max-chunks", chunks,
                    "--save-windows", f"{work}/windows.npy", "--save-logits", f"{work}/logits.npy", "--quiet",
                    world=world, binary=binary)
    nll = float(re.search(r"total nll ([0-9.e+-]+)", out).group(1))
    windows = torch.from_numpy(np.load(f"{work}/windows.npy"))
    logits = torch.from_numpy(np.load(f"{work}/logits.npy"))
    shutil.rmtree(work)
    return windows, logits, nll


def hf_model(model_dir, **options):
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, output_loading_info=True,
                                                       **options)
    return model.eval(), info


def hf_logits(model, windows):
    with torch.no_grad():
        return model(windows).logits.float()


def nll_of(logits, windows):
    """The recipe's NLL: tokens 1.. of each window given their prefix, log-softmax in fp32."""
    log_probs = logits[:, :-1].float().log_softmax(-1).double()
    return -log_probs.gather(-1, windows[:, 1:].unsqueeze(-1)).sum().item()


def relative_difference(ours, theirs):
    """max |ours - theirs| over max |theirs|: the tests' "1e-4 relative"."""
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


def save_tiny_model(config, path, dtype=torch.float32, seed=0, max_shard_size=None, saver="save_pretrained"):
    """A transformers model from `config` with seeded random weights, with the demo model's
    tokenizer beside it, saved by transformers' save_pretrained or (saver="save_model") by
    safetensors.torch.save_model, which stores a tied tensor once and records its other name in
    the header's __metadata__."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # transformers' init is N(0, 0.02); norms at 1. Perturb the norms so a forward that drops
    # one (or swaps its weight) cannot agree by accident.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.uniform_(0.5, 1.5)
    model = model.to(dtype)
    if saver == "save_model":
        from safetensors.torch import save_model

        os.makedirs(path, exist_ok=True)
        save_model(model, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
        model.config.save_pretrained(path)
    else:
        kwargs = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
        model.save_pretrained(path, **kwargs)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(DEMO_MODEL, name), os.path.join(path, name))
    return path


def calibration_windows(work, model, n, seqlen, seed=0):
    """n windows of seqlen ids drawn (seeded) from the demo text as the model's tokenizer encodes
    it, saved as work/calib_NxSEQLEN.npy for --calib-tokens; returns the path."""
    stream = np.array(json.loads(pipeprune("tokenize", "--model", model, "--file", TEXT)), dtype=np.int64)
    starts = np.random.default_rng(seed).integers(0, len(stream) - seqlen - 1, size=n)
    path = os.path.join(work, f"calib_{n}x{seqlen}.npy")
    np.save(path, np.stack([stream[s:s + seqlen] for s in starts]))
    return path


def read_json(path):
    with open(path) as f:
        return json.load(f)


def save_as_pytorch_bin(model_dir, path, max_shard_size=None):
    """The checkpoint at `model_dir` re-saved as transformers 4 saved it with
    save_pretrained(safe_serialization=False) (transformers 5 no longer writes .bin):
    model.state_dict() through torch.save, tied tensors kept as two names on one storage,
    sharded by huggingface_hub into pytorch_model-0000N-of-0000M.bin with
    pytorch_model.bin.index.json; config and tokenizer files copied."""
    from huggingface_hub import split_torch_state_dict_into_shards
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto")
    state_dict = model.state_dict()
    split = split_torch_state_dict_into_shards(state_dict, filename_pattern="pytorch_model{suffix}.bin",
                                               max_shard_size=max_shard_size or "50GB")
    os.makedirs(path, exist_ok=True)
    for file_name, names in split.filename_to_tensors.items():
        torch.save({name: state_dict[name].contiguous() for name in names}, os.path.join(path, file_name))
    if split.is_sharded:
        index = {"metadata": split.metadata, "weight_map": split.tensor_to_filename}
        with open(os.path.join(path, "pytorch_model.bin.index.json"), "w") as f:
            json.dump(index, f, indent=2, sort_keys=True)
            f.write("\n")
    for name in os.listdir(model_dir):
        if name.endswith(".json") and not name.startswith("model.safetensors"):
            shutil.copy(os.path.join(model_dir, name), os.path.join(path, name))
    return path
