// Text <-> token ids, exactly as Hugging Face `tokenizers` (tokenizer.json) or SentencePiece
// (tokenizer.model) produce them.
//
// load_tokenizer() picks the backend from the files present in a model folder: tokenizer.json
// (BPE: SentencePiece-style with byte fallback, or byte-level with a regex pre-tokenizer),
// else tokenizer.model through Debian's libsentencepiece. BOS/EOS come from
// tokenizer_config.json, generation_config.json and config.json. Objects are immutable after
// loading (apart from an internal word cache guarded by a mutex); encode/decode may be called
// from any thread. Input text that is not valid UTF-8 is read with each invalid sequence
// replaced by U+FFFD.
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
  // text (e.g. "<|endoftext|>") are recognised as the tokenizer.json's added tokens do
  // (a tokenizer.model has no added tokens: there "<s>" is plain text, as in SentencePiece).
  virtual std::vector<int64_t> encode(std::string_view text) const = 0;
  // The text of the ids; special tokens are skipped when skip_special is true. Ids outside
  // the vocabulary are skipped.
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const = 0;
  // One past the largest id the tokenizer knows (model vocabulary and added tokens).
  virtual int64_t vocab_size() const = 0;
  // The id of a token string (e.g. "<|eot_id|>", "▁the"), if the vocabulary has it.
  virtual std::optional<int64_t> token_to_id(std::string_view token) const = 0;
  // True when the id is a byte piece ("<0xNN>") whose text depends on the ids after it;
  // StreamingDecoder holds text back while such pieces arrive.
  virtual bool is_byte_piece(int64_t id) const { return false; }

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
// print as it goes without splitting a multi-byte character or a "▁"-prefixed word. The
// concatenation of everything push() and flush() return equals tokenizer.decode(all ids)
// (special tokens skipped). Work per push is proportional to the ids since the last printed
// text, not to the whole sequence. One decoder per sequence; not thread-safe.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  // Adds one id; returns the new text that is now complete (possibly empty).
  std::string push(int64_t id);
  // Returns whatever text is still held back; the decoder may then be reused from empty.
  std::string flush();
  // Feeds ids whose text the caller already has (a generation prompt), none of it returned:
  // later text is then decoded as their continuation, with the spaces a whole decode gives.
  void push_context(const std::vector<int64_t>& ids);

 private:
  // New text of ids_[prefix_:] beyond the text of ids_[prefix_:read_], or nullopt while it
  // is not yet safe to print (an incomplete character at the end).
  std::optional<std::string> pending_text(bool final) const;

  const Tokenizer& tokenizer_;
  std::vector<int64_t> ids_;
  size_t prefix_ = 0;  // decode windows start here: earlier ids no longer affect new text
  size_t read_ = 0;    // the text of ids_[0:read_] has been returned
};

// Loads the tokenizer of a model folder: tokenizer.json when present, else tokenizer.model;
// BOS/EOS from the folder's tokenizer_config.json, generation_config.json and config.json.
// FormatError naming the file and field when no tokenizer file is present or one is
// malformed or unsupported (e.g. a WordPiece or Unigram tokenizer.json); IoError when a
// file cannot be read.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& model_dir);
// A specific tokenizer.json; special ids from the config files in config_dir (default: the
// file's folder).
std::unique_ptr<Tokenizer> load_tokenizer_json(const std::filesystem::path& tokenizer_json,
                                               const std::filesystem::path& config_dir = {});
// A specific SentencePiece tokenizer.model; special ids from the config files in config_dir
// (default: the file's folder), else the model's own BOS (added, by Llama convention) and EOS.
std::unique_ptr<Tokenizer> load_sentencepiece_model(const std::filesystem::path& model_file,
                                                    const std::filesystem::path& config_dir = {});

}  // namespace pipeprune
