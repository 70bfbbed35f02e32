// The SentencePiece tokenizer.model backend, through Debian's libsentencepiece (internal to
// core/tokenizer; callers use load_tokenizer*).
//
// Why it is loaded with dlopen: Debian's libsentencepiece.so.0 carries its own copy of
// protobuf 3.14 with exported symbols, and LibTorch pulls in the system libprotobuf 3.21.
// Linked normally, the two resolve to each other's symbols and the process crashes during
// static initialisation. dlopen(RTLD_LOCAL | RTLD_DEEPBIND) keeps sentencepiece's symbols to
// itself; this file then reaches it only through virtual calls and three dlsym'd functions,
// so nothing in the link refers to libsentencepiece.
//
// Immutable after loading; SentencePieceProcessor's const methods are thread-safe.
#pragma once

#include <filesystem>
#include <memory>

#include "core/tokenizer/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace pipeprune::tok {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // IoError when the file or libsentencepiece cannot be opened; FormatError naming the file
  // when it is not a SentencePiece model.
  explicit SentencePieceTokenizer(const std::filesystem::path& file);
  ~SentencePieceTokenizer() override;

  std::vector<int64_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const override;
  int64_t vocab_size() const override;
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  bool is_byte_piece(int64_t id) const override;

  // The model's own BOS/EOS ids (-1 in the model means none).
  std::optional<int64_t> model_bos() const;
  std::optional<int64_t> model_eos() const;

 private:
  std::string decode_ids(const std::vector<int>& ids) const;

  struct ProcessorDeleter {
    void operator()(sentencepiece::SentencePieceProcessor* p) const;
  };
  std::unique_ptr<sentencepiece::SentencePieceProcessor, ProcessorDeleter> processor_;
  std::string file_;
};

}  // namespace pipeprune::tok
