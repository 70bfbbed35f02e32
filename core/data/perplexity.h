// Perplexity with the Wanda/SparseGPT recipe: one token stream ([BOS] + encode(text)),
// non-overlapping windows of `seqlen` tokens (the tail is dropped), each window an independent
// sequence, NLL of tokens 1..seqlen-1 given their prefix, ppl = exp(total NLL / predictions).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace pipeprune {

// Cuts the stream into [n_windows, seqlen] int64 windows; at most max_windows when > 0.
// ConfigError naming `source` when the stream holds less than one window.
at::Tensor make_eval_windows(const std::vector<int64_t>& stream, int64_t seqlen, int64_t max_windows,
                             const std::string& source);

// Accumulates the NLL of windows as their logits arrive, in double.
class PerplexityAccumulator {
 public:
  // logits: [batch, tokens, vocab] (any float dtype), tokens: [batch, tokens] int64.
  // Adds the NLL of tokens[:, 1:] under logits[:, :-1] (computed in fp32 log_softmax).
  void add(const at::Tensor& logits, const at::Tensor& tokens);
  double total_nll() const { return total_nll_; }
  int64_t predictions() const { return predictions_; }
  double perplexity() const;

 private:
  double total_nll_ = 0.0;
  int64_t predictions_ = 0;
};

}  // namespace pipeprune
