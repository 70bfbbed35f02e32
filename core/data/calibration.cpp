#include "core/data/calibration.h"

#include <ATen/ATen.h>

#include <set>

#include "core/common/error.h"
#include "core/common/files.h"
#include "core/common/log.h"
#include "core/data/random.h"
#include "core/data/text_source.h"
#include "core/io/npy.h"
#include "core/tokenizer/tokenizer.h"

namespace pipeprune {
namespace {

at::Tensor windows_from_documents(const std::vector<std::string>& documents,
                                  const CalibrationOptions& options, const Tokenizer& tokenizer) {
  const std::string source = options.calib_data.string();
  PIPEPRUNE_CHECK(!documents.empty(), ConfigError,
                  source << ": no JSON line with a \"text\" field; --calib-data needs text");
  SeededRandom random(options.seed);
  at::Tensor windows = at::empty({options.nsamples, options.seqlen}, at::kLong);
  auto* out = windows.data_ptr<int64_t>();
  // Encodings are cached and too-short documents remembered, so a file with no long enough
  // document is reported after every document was tried once instead of looping forever.
  std::vector<std::vector<int64_t>> encoded(documents.size());
  std::set<size_t> too_short;
  for (int64_t s = 0; s < options.nsamples; ++s) {
    const std::vector<int64_t>* ids = nullptr;
    while (ids == nullptr) {
      PIPEPRUNE_CHECK(too_short.size() < documents.size(), ConfigError,
                      source << ": no document is longer than --seqlen " << options.seqlen
                             << " tokens; use a smaller --seqlen or longer texts");
      const auto doc = static_cast<size_t>(random.uniform_int(0, static_cast<int64_t>(documents.size()) - 1));
      if (encoded[doc].empty()) encoded[doc] = tokenizer.encode_with_bos(documents[doc]);
      if (static_cast<int64_t>(encoded[doc].size()) > options.seqlen) {
        ids = &encoded[doc];
      } else {
        too_short.insert(doc);
      }
    }
    const int64_t start = random.uniform_int(0, static_cast<int64_t>(ids->size()) - options.seqlen - 1);
    std::copy(ids->begin() + start, ids->begin() + start + options.seqlen, out + s * options.seqlen);
  }
  return windows;
}

at::Tensor windows_from_npy(const CalibrationOptions& options) {
  const std::string source = options.calib_tokens.string();
  at::Tensor windows = read_token_matrix(options.calib_tokens);
  const int64_t rows = windows.size(0);
  const int64_t cols = windows.size(1);
  PIPEPRUNE_CHECK(!options.nsamples_given || rows == options.nsamples, ConfigError,
                  source << ": holds " << rows << " windows but --nsamples is " << options.nsamples
                         << "; drop --nsamples or make them agree");
  PIPEPRUNE_CHECK(!options.seqlen_given || cols == options.seqlen, ConfigError,
                  source << ": windows have " << cols << " tokens but --seqlen is " << options.seqlen
                         << "; drop --seqlen or make them agree");
  PIPEPRUNE_CHECK(rows >= 1 && cols >= 2, ConfigError,
                  source << ": shape [" << rows << ", " << cols
                         << "] is too small; --calib-tokens needs [nsamples >= 1, seqlen >= 2]");
  return windows;
}

}  // namespace

at::Tensor draw_windows_from_stream(const std::vector<int64_t>& stream, int64_t nsamples,
                                    int64_t seqlen, uint64_t seed, const std::string& source) {
  const auto n_tokens = static_cast<int64_t>(stream.size());
  PIPEPRUNE_CHECK(n_tokens > seqlen, ConfigError,
                  source << ": calibration text has " << n_tokens << " tokens, shorter than one window of --seqlen "
                         << seqlen << " (+1); use more text or a smaller --seqlen");
  SeededRandom random(seed);
  at::Tensor windows = at::empty({nsamples, seqlen}, at::kLong);
  auto* out = windows.data_ptr<int64_t>();
  for (int64_t s = 0; s < nsamples; ++s) {
    const int64_t start = random.uniform_int(0, n_tokens - seqlen - 1);
    std::copy(stream.begin() + start, stream.begin() + start + seqlen, out + s * seqlen);
  }
  return windows;
}

void check_seqlen(int64_t seqlen, const char* flag) {
  PIPEPRUNE_CHECK(seqlen >= 2, ConfigError, flag << " must be at least 2 (got " << seqlen << ")");
}

int64_t clamp_seqlen(int64_t seqlen, int64_t max_positions, const char* flag) {
  check_seqlen(seqlen, flag);
  if (seqlen > max_positions) {
    log::warn("{} {} is longer than the model's context ({} positions); using {}", flag, seqlen, max_positions,
              max_positions);
    return max_positions;
  }
  return seqlen;
}

void CalibrationOptions::validate(bool needs_source) const {
  const bool has_text = !calib_data.empty();
  const bool has_tokens = !calib_tokens.empty();
  PIPEPRUNE_CHECK(!needs_source || has_text != has_tokens, ConfigError,
                  (has_text ? "give only one of --calib-data and --calib-tokens"
                            : "this method needs calibration data: pass --calib-data FILE or --calib-tokens FILE.npy"));
  PIPEPRUNE_CHECK(nsamples >= 1, ConfigError, "--nsamples must be at least 1 (got " << nsamples << ")");
  check_seqlen(seqlen);
}

at::Tensor load_calibration_tokens(const CalibrationOptions& options, const Tokenizer* tokenizer,
                                   int64_t vocab_size) {
  options.validate();
  const bool has_tokens = !options.calib_tokens.empty();
  at::Tensor windows;
  std::string source;
  if (has_tokens) {
    windows = windows_from_npy(options);
    source = options.calib_tokens.string();
  } else {
    source = options.calib_data.string();
    PIPEPRUNE_CHECK(tokenizer != nullptr, ConfigError,
                    source << ": --calib-data needs the model's tokenizer; give --calib-tokens FILE.npy instead");
    const TextSource text = read_text_source(options.calib_data);
    if (text.json_lines) {
      windows = windows_from_documents(text.documents, options, *tokenizer);
    } else {
      PIPEPRUNE_CHECK(!text.documents.empty() && !text.documents[0].empty(), ConfigError,
                      source << ": calibration text is empty");
      windows = draw_windows_from_stream(tokenizer->encode_with_bos(text.documents[0]), options.nsamples,
                                         options.seqlen, options.seed, source);
    }
  }
  const int64_t max_id = windows.max().item<int64_t>();
  const int64_t min_id = windows.min().item<int64_t>();
  PIPEPRUNE_CHECK(min_id >= 0 && max_id < vocab_size, ConfigError,
                  source << ": token id " << (min_id < 0 ? min_id : max_id)
                         << " is outside the model's vocabulary [0, " << vocab_size << ")");
  return windows;
}

}  // namespace pipeprune
