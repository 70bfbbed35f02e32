// What one rank knows about its part of a job: the model's config and checkpoint (headers
// only), the stage plan every rank agreed on, and its own stage.
//
// open_stage() is collective: every rank calls it with the same model; budgets are
// all-gathered and each rank computes the same plan from them. No weights are read.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "core/io/safetensors.h"
#include "core/memory/memory_estimate.h"
#include "core/model/model_config.h"
#include "core/model/model_spec.h"
#include "dist/stage_plan.h"
#include "dist/transport/transport.h"

namespace pipeprune {

struct StageOptions {
  std::filesystem::path model_dir;
  c10::Device device = c10::Device(c10::kCPU);
  c10::ScalarType compute_dtype = c10::ScalarType::Float;
  // This rank's memory budget; unset: derived from the free memory of its host (see budget.h).
  std::optional<int64_t> budget_bytes;
  // A GPU rank's host RAM budget; unset: its share of the host's free RAM (see budget.h).
  std::optional<int64_t> host_budget_bytes;
};

struct StageContext {
  Transport* transport = nullptr;
  std::filesystem::path model_dir;
  ModelConfig config;
  ModelSpec spec;  // shapes and bytes of every tensor, from the headers
  SafetensorsCheckpoint checkpoint;
  int64_t baseline_bytes = 0;  // this rank's RSS before any model data (runtime_baseline_bytes)
  // Host RAM this rank may use besides its device (on a CPU rank the stage budget is the host's).
  int64_t host_budget_bytes = 0;
  StagePlan plan;
  Stage stage;
  c10::Device device = c10::Device(c10::kCPU);
  c10::ScalarType compute_dtype = c10::ScalarType::Float;

  int rank() const { return stage.rank; }
  int world_size() const { return plan.world_size(); }
  bool is_first() const { return stage.rank == 0; }
  bool is_last() const { return stage.rank + 1 == plan.world_size(); }
  int previous_rank() const { return stage.rank - 1; }
  int next_rank() const { return stage.rank + 1; }
  StageShare share() const { return StageShare{stage.first_layer, stage.end_layer, stage.has_embedding, stage.has_head}; }
};

// Byte sizes of the layers, embedding and head, as the planner weighs them.
ModelFootprint footprint_of(const ModelSpec& spec);

StageContext open_stage(Transport& transport, const StageOptions& options);

}  // namespace pipeprune
