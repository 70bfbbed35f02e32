// `pipeprune merge`: fine-tuned models of one base merged tensor by tensor (mergekit's methods,
// core/merge/merge_tensor.h), LoRA adapters folded in first (core/merge/lora_adapter.h).
//
// Streamed: one tensor of every input is in memory at a time (the inputs are mmap'd), so the
// peak is about (inputs + 2) x the largest tensor in fp32 above the process itself; that figure
// is checked against --max-memory before any work and recorded in the report. Under mpirun the
// tensors are split across ranks by bytes; each rank writes its own into the planned shards of
// one staged folder (core/io/checkpoint_writer.h) and the first rank commits it: the output
// appears complete or not at all. Which models feed which tensor, the shapes and the options are
// all checked before the first tensor is read.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "core/common/dtype.h"
#include "core/merge/merge_method.h"
#include "dist/transport/transport.h"

namespace pipeprune {

struct MergeModelInput {
  std::filesystem::path model;    // a checkpoint folder
  std::filesystem::path adapter;  // empty, or a PEFT LoRA adapter folded into `model` first
  ModelParams params;
};

struct MergeJobOptions {
  MergeSettings settings;
  bool lora_only = false;             // --method lora: the base with one adapter folded in
  std::filesystem::path base;         // required but for linear (where it is only the donor)
  std::vector<MergeModelInput> models;
  std::optional<DType> out_dtype;     // unset: the donor's dtype per tensor
  std::filesystem::path output;
  bool overwrite = false;
  std::optional<int64_t> max_shard_bytes;  // unset: the donor's sharding
  std::optional<int64_t> budget_bytes;     // host memory per rank (--max-memory cpu=)
  c10::Device device = c10::Device(c10::kCPU);
  std::filesystem::path report;       // empty: none
  // Tests: the first attempt of each of these tensors fails as a device out-of-memory would
  // (launch/test_hooks.h), so the CPU retry runs on any machine.
  std::set<std::string> inject_out_of_memory;
};

struct MergeJobResult {
  int64_t tensors = 0;         // merged or copied, all ranks
  int64_t bytes_written = 0;   // all ranks
  int64_t estimated_peak_bytes = 0;
  int64_t cpu_retries = 0;     // tensors redone on the CPU after a device out-of-memory (this rank)
  double seconds = 0;
};

MergeJobResult run_merge_job(Transport& transport, const MergeJobOptions& options);

}  // namespace pipeprune
