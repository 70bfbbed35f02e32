// A compiled PCRE2 pattern (UTF + UCP: \p{L}, \s, (?i:...) follow Unicode) used by the
// pre-tokenizers to split text the way Hugging Face's Oniguruma patterns do.
//
// Compiled once at load and JIT-compiled when PCRE2 allows; immutable afterwards, so
// find_all() may run on many threads at once (each call owns its match data).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pipeprune::tok {

class Regex {
 public:
  // FormatError "<where>: ..." when the pattern does not compile.
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Byte ranges [begin, end) of the successive non-overlapping, non-empty matches in text
  // (valid UTF-8), scanning left to right as Rust's find_iter does.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8, kept out of this header
  std::string where_;
};

}  // namespace pipeprune::tok
