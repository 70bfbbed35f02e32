#include "core/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>

#include "core/common/error.h"
#include "core/tokenizer/unicode_text.h"

namespace pipeprune::tok {
namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  const int n = pcre2_get_error_message(code, buffer, sizeof(buffer));
  return n < 0 ? "PCRE2 error " + std::to_string(code) : std::string(reinterpret_cast<char*>(buffer));
}

}  // namespace

Regex::Regex(const std::string& pattern, const std::string& where) : where_(where) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  PIPEPRUNE_CHECK(code != nullptr, FormatError,
                  where << ": the regex does not compile with PCRE2 (" << pcre2_message(error_code)
                        << " at offset " << error_offset << "); use a PCRE-compatible pattern");
  // JIT is an optimisation only: when it is unavailable the interpreter gives the same matches.
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  code_ = code;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  auto* code = static_cast<pcre2_code*>(code_);
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
      pcre2_match_data_create_from_pattern(code, nullptr), &pcre2_match_data_free);
  PIPEPRUNE_CHECK(data != nullptr, OutOfMemoryError, where_ << ": cannot allocate regex match data");
  std::vector<std::pair<size_t, size_t>> matches;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  uint32_t options = PCRE2_NO_UTF_CHECK;
  size_t offset = 0;
  while (offset <= text.size()) {
    int rc = pcre2_match(code, subject, text.size(), offset, options, data.get(), nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      // A pathological input outgrew the JIT stack; the interpreter keeps its frames on the heap.
      options |= PCRE2_NO_JIT;
      continue;
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    PIPEPRUNE_CHECK(rc >= 0, FormatError,
                    where_ << ": regex matching failed (" << pcre2_message(rc) << ")");
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    const size_t begin = ovector[0], end = ovector[1];
    if (end > begin) {
      matches.emplace_back(begin, end);
      offset = end;
    } else {
      // An empty match is dropped and the scan moves on by one character.
      if (begin >= text.size()) break;
      offset = begin + utf8_char_length(static_cast<unsigned char>(text[begin]));
    }
  }
  return matches;
}

}  // namespace pipeprune::tok
