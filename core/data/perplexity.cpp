#include "core/data/perplexity.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/common/error.h"

namespace pipeprune {

at::Tensor make_eval_windows(const std::vector<int64_t>& stream, int64_t seqlen, int64_t max_windows,
                             const std::string& source) {
  PIPEPRUNE_CHECK(seqlen >= 2, ConfigError, "--seqlen must be at least 2 (got " << seqlen << ")");
  int64_t n_windows = static_cast<int64_t>(stream.size()) / seqlen;
  PIPEPRUNE_CHECK(n_windows >= 1, ConfigError,
                  source << ": evaluation text has " << stream.size() << " tokens, fewer than one window of --seqlen "
                         << seqlen << "; use a longer text or a smaller --seqlen");
  if (max_windows > 0) n_windows = std::min(n_windows, max_windows);
  at::Tensor windows = at::empty({n_windows, seqlen}, at::kLong);
  std::copy(stream.begin(), stream.begin() + n_windows * seqlen, windows.data_ptr<int64_t>());
  return windows;
}

void PerplexityAccumulator::add(const at::Tensor& logits, const at::Tensor& tokens) {
  const int64_t n_tokens = tokens.size(1);
  const at::Tensor predicted = logits.slice(1, 0, n_tokens - 1).to(at::kFloat);
  const at::Tensor targets = tokens.slice(1, 1, n_tokens).to(predicted.device());
  const at::Tensor log_probs = at::log_softmax(predicted, -1);
  const at::Tensor nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1);
  // Summed in double so the total does not depend on how windows are grouped into calls.
  const at::Tensor per_window = nll.to(at::kDouble).sum(1).cpu();
  for (int64_t b = 0; b < per_window.size(0); ++b) total_nll_ += per_window[b].item<double>();
  predictions_ += nll.numel();
}

double PerplexityAccumulator::perplexity() const {
  PIPEPRUNE_CHECK(predictions_ > 0, Error, "perplexity of zero predictions");
  return std::exp(total_nll_ / static_cast<double>(predictions_));
}

}  // namespace pipeprune
