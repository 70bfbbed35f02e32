// Text <-> token ids, exactly as Hugging Face `tokenizers` (tokenizer.json) or SentencePiece
// (tokenizer.model) produce them.
//
// load_tokenizer() picks the backend from the files present in a model folder: tokenizer.json
// (BPE: SentencePiece-style with byte fallback, or byte-level with a regex pre-tokenizer),
// else tokenizer.model through Debian's libsentencepiece. BOS/EOS come from
// tokenizer_config.json, generation_config.json and config.json. Objects are immutable after
// loading; encode/decode may be called from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pipeprune {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Ids of the text with no special tokens added (no BOS/EOS); special tokens written in the
  // text (e.g. "<|endoftext|>") are recognised as the tokenizer.json's added tokens do.
  virtual std::vector<int64_t> encode(std::string_view text) const = 0;
  // The text of the ids; special tokens are skipped when skip_special is true.
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const = 0;
  virtual int64_t vocab_size() const = 0;

  // The BOS id, set only when this tokenizer adds BOS to an encoded text (Llama: yes; Qwen2,
  // GPT-2: no).
  std::optional<int64_t> bos_id() const { return bos_id_; }
  const std::vector<int64_t>& eos_ids() const { return eos_ids_; }
  // encode(text) with BOS in front when bos_id() is set: what a model sees for a text.
  std::vector<int64_t> encode_with_bos(std::string_view text) const;

  void set_special_ids(std::optional<int64_t> bos, std::vector<int64_t> eos) {
    bos_id_ = bos;
    eos_ids_ = std::move(eos);
  }

 private:
  std::optional<int64_t> bos_id_;
  std::vector<int64_t> eos_ids_;
};

// Decodes a growing id sequence into text pieces as they become printable, so `generate` can
// print as it goes without splitting a multi-byte character or a "▁"-prefixed word.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  // Adds one id; returns the new text that is now complete (possibly empty).
  std::string push(int64_t id);
  // Returns whatever text is still held back.
  std::string flush();

 private:
  const Tokenizer& tokenizer_;
  std::vector<int64_t> ids_;
  std::string emitted_;
};

// FormatError/IoError naming the file when no usable tokenizer file is found or one is malformed.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& model_dir);

}  // namespace pipeprune
