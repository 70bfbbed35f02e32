#include "dist/generate_job.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>

#include "core/common/error.h"
#include "core/common/log.h"
#include "core/data/random.h"
#include "core/tokenizer/tokenizer.h"
#include "dist/stage_model.h"

namespace pipeprune {

int64_t sample_next_token(const at::Tensor& logits, double temperature, double top_p, SeededRandom& random) {
  const at::Tensor scores = logits.to(at::kCPU, at::kFloat).contiguous();
  if (temperature <= 0.0) return scores.argmax().item<int64_t>();
  const at::Tensor probs = at::softmax(scores.to(at::kDouble) / temperature, 0);
  const at::Tensor sorted_order = std::get<1>(probs.sort(/*stable=*/true, 0, /*descending=*/true));
  const auto* p = probs.data_ptr<double>();
  const auto* order = sorted_order.data_ptr<int64_t>();
  const int64_t vocab = probs.numel();
  // Nucleus: the smallest prefix of the sorted tokens whose mass reaches top_p (at least one).
  int64_t keep = 0;
  double mass = 0.0;
  while (keep < vocab && (keep == 0 || mass < top_p)) mass += p[order[keep++]];
  const double u = static_cast<double>(random.uniform_int(0, (int64_t{1} << 53) - 1)) / 9007199254740992.0 * mass;
  double cumulative = 0.0;
  for (int64_t i = 0; i < keep; ++i) {
    cumulative += p[order[i]];
    if (u < cumulative) return order[i];
  }
  return order[keep - 1];
}

GenerateResult run_generate_job(Transport& transport, const GenerateJobOptions& options) {
  c10::InferenceMode inference_guard;
  const auto start = std::chrono::steady_clock::now();
  PIPEPRUNE_CHECK(options.max_new_tokens >= 0, ConfigError, "--max-new-tokens must be >= 0");
  PIPEPRUNE_CHECK(options.temperature >= 0.0, ConfigError, "--temperature must be >= 0");
  PIPEPRUNE_CHECK(options.top_p > 0.0 && options.top_p <= 1.0, ConfigError, "--top-p must be in (0, 1]");
  const StageContext context =
      open_stage(transport, StageOptions{options.model_dir, options.device, options.compute_dtype, options.budget_bytes,
                                         std::nullopt});
  const auto tokenizer = load_tokenizer(context.model_dir);
  GenerateResult result;
  result.token_ids = tokenizer->encode_with_bos(options.prompt);
  PIPEPRUNE_CHECK(!result.token_ids.empty(), ConfigError,
                  "--prompt is empty and this tokenizer adds no BOS: give a prompt");
  result.n_prompt_tokens = static_cast<int64_t>(result.token_ids.size());
  const int64_t max_positions = context.config.context_positions();
  PIPEPRUNE_CHECK(result.n_prompt_tokens < max_positions, ConfigError,
                  "--prompt has " << result.n_prompt_tokens << " tokens; the model's context is " << max_positions);
  const int64_t total = std::min(max_positions, result.n_prompt_tokens + options.max_new_tokens);
  StageModel model(context, total, options.faults ? *options.faults : no_faults());
  std::vector<LayerKVCache> caches = model.make_caches();
  SeededRandom random(options.seed);
  StreamingDecoder stream(*tokenizer);
  // The prompt goes through the decoder first, unprinted: decoders keep or strip a leading space
  // by position (SentencePiece's "\u2581", the Strip step), so the continuation is decoded after it.
  stream.push_context(result.token_ids);
  const std::vector<int64_t>& eos = tokenizer->eos_ids();
  at::Tensor step_tokens = at::tensor(result.token_ids, at::kLong).unsqueeze(0);
  while (static_cast<int64_t>(result.token_ids.size()) < total) {
    const at::Tensor logits = model.pipeline_forward(step_tokens, kTagGeneration, &caches);
    at::Tensor next = at::zeros({1}, at::kLong);
    if (context.is_last()) {
      next[0] = sample_next_token(logits[0][-1], options.temperature, options.top_p, random);
    }
    next = transport.broadcast(next, BroadcastOptions{context.world_size() - 1});
    const int64_t id = next[0].item<int64_t>();
    if (std::find(eos.begin(), eos.end(), id) != eos.end()) break;
    result.token_ids.push_back(id);
    const std::string piece = stream.push(id);
    if (context.is_first() && options.on_text && !piece.empty()) options.on_text(piece);
    step_tokens = next.unsqueeze(0);
  }
  const std::string rest = stream.flush();
  if (context.is_first() && options.on_text && !rest.empty()) options.on_text(rest);
  const std::vector<int64_t> prompt(result.token_ids.begin(), result.token_ids.begin() + result.n_prompt_tokens);
  const std::vector<int64_t> generated(result.token_ids.begin() + result.n_prompt_tokens, result.token_ids.end());
  const std::string all = tokenizer->decode(result.token_ids), before = tokenizer->decode(prompt);
  result.text = all.compare(0, before.size(), before) == 0 ? all.substr(before.size()) : tokenizer->decode(generated);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace pipeprune
