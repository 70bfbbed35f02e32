// The Hugging Face tokenizer.json backend: added tokens -> normalizer -> pre-tokenizer ->
// BPE model, and the decoder back (internal to core/tokenizer; callers use load_tokenizer*).
//
// Immutable after construction apart from the BPE word cache (mutex-guarded); thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/tokenizer/added_vocabulary.h"
#include "core/tokenizer/bpe_model.h"
#include "core/tokenizer/decoder.h"
#include "core/tokenizer/json_fields.h"
#include "core/tokenizer/normalizer.h"
#include "core/tokenizer/pre_tokenizer.h"
#include "core/tokenizer/tokenizer.h"

namespace pipeprune::tok {

class HfTokenizer final : public Tokenizer {
 public:
  // root: the parsed tokenizer.json; file: its path, for error messages.
  HfTokenizer(const Json& root, const std::string& file);

  std::vector<int64_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const override;
  int64_t vocab_size() const override;
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  bool is_byte_piece(int64_t id) const override;

  // The BOS a TemplateProcessing post-processor puts before a single sequence, if any.
  std::optional<int64_t> template_bos() const { return template_bos_; }

 private:
  void load_added_tokens(const Json& root, const std::string& file);
  void load_template_bos(const Json& post_processor, const std::string& where);

  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<AddedVocabulary> added_;
  std::optional<int64_t> template_bos_;
};

}  // namespace pipeprune::tok
