// `pipeprune generate`: text continuation with a KV cache through the stage pipeline.
// Temperature 0 is greedy (argmax, lowest id on ties); otherwise softmax(logits / temperature)
// restricted to the smallest set of tokens whose probability reaches top_p, sampled with
// SeededRandom(seed). Stops at max_new_tokens, an EOS id, or the model's context length.
// Collective: every rank calls run_generate_job; the first rank prints the text as it comes.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dist/fault_injection.h"
#include "dist/transport/transport.h"

namespace pipeprune {

struct GenerateJobOptions {
  std::filesystem::path model_dir;
  std::string prompt;
  int64_t max_new_tokens = 64;
  double temperature = 0.0;
  double top_p = 1.0;
  uint64_t seed = 0;
  c10::Device device = c10::Device(c10::kCPU);
  c10::ScalarType compute_dtype = c10::ScalarType::Float;
  std::optional<int64_t> budget_bytes;
  std::shared_ptr<FaultInjector> faults;  // tests only; null: none
  // Receives text pieces as they become printable (first rank only).
  std::function<void(const std::string&)> on_text;
};

struct GenerateResult {
  std::vector<int64_t> token_ids;  // prompt (with BOS when the tokenizer adds one) + generated
  int64_t n_prompt_tokens = 0;
  std::string text;                // decoded generated part
  double seconds = 0;
};

GenerateResult run_generate_job(Transport& transport, const GenerateJobOptions& options);

// Picks the next token from last-position logits [vocab] (exposed for tests).
int64_t sample_next_token(const at::Tensor& logits, double temperature, double top_p, class SeededRandom& random);

}  // namespace pipeprune
