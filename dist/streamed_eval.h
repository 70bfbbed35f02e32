// Evaluation when a stage's layers do not fit its memory budget: a layer-major walk of the
// stage runner instead of a window-major one. All windows' hidden states pass through one layer
// at a time, each layer loaded from the checkpoint once and freed after, so the rank holds one
// layer plus the hidden states (which spill to disk beyond the budget). Each window computes
// exactly what the resident path computes, so the perplexity is identical.
//
// Collective with the neighbouring stages (the runner receives every window's hidden state
// from the previous rank or embeds on the first, and sends every window's result on; the last
// rank instead accumulates the NLL). Compatible with neighbours running the resident path: both
// move windows in order on the same tag.
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <functional>

#include "dist/memory_plan.h"
#include "dist/stage_runner.h"

namespace pipeprune {

// What the last rank does with each window's logits [1, seqlen, vocab], in window order.
using WindowLogits = std::function<void(const at::Tensor& logits, const at::Tensor& tokens)>;

// windows: [n_windows, seqlen] token ids (every rank has them); the runner's rotary tables
// cover seqlen positions.
void evaluate_streamed(StageRunner& runner, const at::Tensor& windows, const MemoryPlan& memory,
                       const std::filesystem::path& spill_dir, const WindowLogits& on_window);

}  // namespace pipeprune
