// The `decoder` of a tokenizer.json: Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip,
// Metaspace. Turns the token strings of some ids into text exactly as Hugging Face does.
//
// Built once from JSON (FormatError naming the file and field for anything unsupported);
// immutable afterwards and safe to use from many threads.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/tokenizer/json_fields.h"

namespace pipeprune::tok {

class Decoder {
 public:
  // j is the "decoder" value; null means Hugging Face's default (tokens joined by spaces).
  Decoder(const Json& j, const std::string& where);

  std::string decode(std::vector<std::string> tokens) const;

  // True when the decoder has a ByteFallback step and token is a "<0xNN>" byte piece, whose
  // text depends on the byte pieces that follow it.
  bool is_byte_piece(std::string_view token) const;

 private:
  enum class Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace };
  struct Step {
    Kind kind;
    std::string from, to;  // Replace; Strip/Metaspace keep their character in `from`
    int64_t start = 0, stop = 0;  // Strip
    bool strip_first = true;      // Metaspace: drop the replacement in the first token
  };
  void add(const Json& j, const std::string& where);

  std::vector<Step> steps_;
  bool join_with_spaces_ = false;
  bool has_byte_fallback_ = false;
};

}  // namespace pipeprune::tok
