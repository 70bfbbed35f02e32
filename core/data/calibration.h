// Calibration token windows for pruning: drawn from text (seeded), or read exactly from .npy.
//
// Plain text (any file not ending in .jsonl/.json): the whole file is one stream, encoded once
// as [BOS] + encode(text); each sample is a window of `seqlen` tokens starting at
// uniform_int(0, n_tokens - seqlen - 1), as Wanda's wikitext2 loader draws them.
// JSON lines (.jsonl/.json, one object with a "text" field per line; C4 style): each sample
// draws documents uniformly until one encodes ([BOS] + encode(text)) to more than `seqlen`
// tokens, then takes a window at uniform_int(0, n_tokens - seqlen - 1) inside it, as Wanda's
// C4 loader does. Randomness: SeededRandom(seed) (core/data/random.h).
// A .npy file (--calib-tokens) gives the windows themselves: int32 or int64, [nsamples, seqlen].
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>

namespace pipeprune {

class Tokenizer;

struct CalibrationOptions {
  std::filesystem::path calib_data;    // text or JSON lines
  std::filesystem::path calib_tokens;  // .npy windows (exclusive with calib_data)
  int64_t nsamples = 128;
  int64_t seqlen = 2048;
  uint64_t seed = 0;
  // Set when the user gave --nsamples / --seqlen explicitly, so a .npy of another shape is an
  // error instead of silently overriding them.
  bool nsamples_given = false;
  bool seqlen_given = false;

  // ConfigError naming the flag: --nsamples below 1, --seqlen below 2, and, when the method
  // needs calibration data, not exactly one of --calib-data and --calib-tokens.
  void validate(bool needs_source = true) const;
};

// A window length the user gave (`flag`, e.g. "--seqlen") clamped to the model's context
// (max_positions), with a warning naming the flag; ConfigError when it is below 2.
int64_t clamp_seqlen(int64_t seqlen, int64_t max_positions, const char* flag = "--seqlen");
// ConfigError naming the flag when a window length is below 2 (one prediction needs two tokens).
void check_seqlen(int64_t seqlen, const char* flag = "--seqlen");

// Returns int64 token windows [nsamples, seqlen]. `tokenizer` is needed for --calib-data only
// (may be null with --calib-tokens, e.g. for synthetic models without a tokenizer). ConfigError/FormatError with one line naming
// the file or flag: no calibration source, text shorter than one window, no JSON line with a
// long enough text, a .npy of the wrong dtype/shape, ids outside the vocabulary.
at::Tensor load_calibration_tokens(const CalibrationOptions& options, const Tokenizer* tokenizer,
                                   int64_t vocab_size);

// Draws windows from one token stream (exposed for tests).
at::Tensor draw_windows_from_stream(const std::vector<int64_t>& stream, int64_t nsamples,
                                    int64_t seqlen, uint64_t seed, const std::string& source);

}  // namespace pipeprune
