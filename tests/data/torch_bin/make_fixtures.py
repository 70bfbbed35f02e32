#!/usr/bin/env python3
"""Writes the torch.save fixtures of tests/unit/io/torch_bin_test.cpp into this folder.

Run with any Python that has torch and safetensors (the files are checked in; CI has no torch):
    build/xcheck-venv/bin/python tests/data/torch_bin/make_fixtures.py
Each file is a few KB. The checked-in copies were made with torch 2.14 (the xcheck venv).
"""
import collections
import json
import os
import pathlib
import struct
import zipfile

import torch
from safetensors.torch import save_file

HERE = pathlib.Path(__file__).resolve().parent


def state_dict():
    """A state dict as nn.Module.state_dict() returns it: an OrderedDict with _metadata."""
    g = torch.Generator().manual_seed(0)
    sd = collections.OrderedDict()
    sd["w32"] = torch.randn(3, 4, generator=g)
    sd["w16"] = torch.randn(5, generator=g).to(torch.float16)
    sd["wbf16"] = torch.randn(2, 3, generator=g).to(torch.bfloat16)
    # Tied embeddings: two tensor objects on one storage (state_dict() detaches each name).
    emb = torch.randn(4, 3, generator=g)
    sd["model.embed_tokens.weight"] = emb.detach()
    sd["lm_head.weight"] = emb.detach()
    # The same tensor object twice (pickled once, then fetched from the memo).
    sd["w32_again"] = sd["w32"]
    sd["scalar"] = torch.tensor(2.5)
    sd["empty"] = torch.zeros(0, 3, dtype=torch.float16)
    # A contiguous view at storage_offset 4 of a 10-element storage: values 4, 5, 6, 7.
    sd["view"] = torch.arange(10, dtype=torch.float16)[4:8]
    sd._metadata = collections.OrderedDict({"": {"version": 1}})
    return sd


def repack_as_zip64(source, target):
    """The records of `source` in a zip whose every size and offset is in zip64 fields, as a
    shard over 4 GiB has them (torch.save's miniz writes those only when needed)."""
    with zipfile.ZipFile(source) as z:
        records = [(i.filename.encode(), i.CRC, z.read(i)) for i in z.infolist()]
    out, directory = bytearray(), bytearray()
    for name, crc, data in records:
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(name), 20)
        out += name + struct.pack("<HHQQ", 1, 16, len(data), len(data)) + data
        directory += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                                 len(name), 28, 0, 0, 0, 0, 0xFFFFFFFF)
        directory += name + struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
    dir_offset = len(out)
    out += directory
    end64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(records), len(records), len(directory),
                       dir_offset)
    out += struct.pack("<IIQI", 0x07064B50, 0, end64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    target.write_bytes(bytes(out))
    with zipfile.ZipFile(target) as z:  # Python's zipfile reads it back
        assert [z.read(i) for i in z.infolist()] == [data for _, _, data in records]


class Evil:
    """Pickles as a call to os.system; the reader must refuse it without running anything."""

    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def main():
    sd = state_dict()
    torch.save(sd, HERE / "state_dict.bin")
    # The reference bytes: the same tensors as safetensors (which cannot hold shared storages).
    save_file({k: v.clone().contiguous() for k, v in sd.items()}, str(HERE / "state_dict.safetensors"))

    repack_as_zip64(HERE / "state_dict.bin", HERE / "zip64.bin")
    assert all(torch.equal(a, b) for a, b in zip(torch.load(HERE / "zip64.bin").values(), sd.values()))

    torch.save({"t": torch.arange(6, dtype=torch.float32).reshape(2, 3).t()}, HERE / "noncontiguous.bin")
    torch.save({"ids": torch.arange(4, dtype=torch.int64)}, HERE / "int64.bin")
    torch.save({"w": torch.ones(2)}, HERE / "legacy.bin", _use_new_zipfile_serialization=False)
    torch.save({"w": torch.ones(2), "evil": Evil()}, HERE / "foreign_global.bin")
    torch.save({"state_dict": {"w": torch.ones(2)}}, HERE / "nested.bin")
    # Protocol 4 (torch.save(pickle_protocol=4)): FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE.
    torch.save({"w": torch.tensor([1.0, -2.0], dtype=torch.bfloat16)}, HERE / "protocol4.bin", pickle_protocol=4)

    # A sharded checkpoint as save_pretrained(safe_serialization=False, max_shard_size=...) lays it out.
    shards = {
        "pytorch_model-00001-of-00002.bin": {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3)},
        "pytorch_model-00002-of-00002.bin": {"b": torch.arange(4, dtype=torch.bfloat16),
                                             "c": torch.full((2,), 3.0, dtype=torch.float16)},
    }
    sharded = HERE / "sharded"
    sharded.mkdir(exist_ok=True)
    weight_map = {}
    for name, tensors in shards.items():
        torch.save(tensors, sharded / name)
        weight_map.update({t: name for t in tensors})
    total = sum(t.numel() * t.element_size() for s in shards.values() for t in s.values())
    with open(sharded / "pytorch_model.bin.index.json", "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
