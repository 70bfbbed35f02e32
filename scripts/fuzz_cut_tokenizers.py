#!/usr/bin/env python3
"""Cuts real tokenizer.json files to their first 400 tokens (and the merges among them) as
seeds for fuzz_tokenizer_json: a full one takes about a second per input under ASan, which
starves the fuzzer, while the cut one keeps each family's normalizer, pre-tokenizer, decoder
and post-processor. Usage: fuzz_cut_tokenizers.py OUT_DIR TOKENIZER_JSON..."""
import json
import os
import sys

KEEP = 400


def renumber_ids(node, renumber):
    """Special-token ids in post-processors follow the added tokens' new ids."""
    if isinstance(node, dict):
        if isinstance(node.get("ids"), list):
            node["ids"] = [renumber.get(i, i % KEEP) for i in node["ids"]]
        for value in node.values():
            renumber_ids(value, renumber)
    elif isinstance(node, list):
        for value in node:
            renumber_ids(value, renumber)


def cut(path, out_dir):
    with open(path, encoding="utf-8") as f:
        t = json.load(f)
    model = t["model"]
    vocab = {tok: i for tok, i in model["vocab"].items() if i < KEEP}
    model["vocab"] = vocab
    merges = []
    for merge in model.get("merges", []):
        a, b = merge.split(" ", 1) if isinstance(merge, str) else merge
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(merge)
    model["merges"] = merges
    added = t.get("added_tokens", [])[:8]
    renumber = {}
    for n, token in enumerate(added):
        renumber[token["id"]] = KEEP + n
        token["id"] = KEEP + n
    t["added_tokens"] = added
    renumber_ids(t.get("post_processor"), renumber)
    name = os.path.basename(os.path.dirname(os.path.abspath(path)))
    with open(os.path.join(out_dir, f"cut_{name}"), "w", encoding="utf-8") as f:
        json.dump(t, f, ensure_ascii=False)


for tokenizer in sys.argv[2:]:
    if os.path.exists(tokenizer):
        cut(tokenizer, sys.argv[1])
