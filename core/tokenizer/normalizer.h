// The `normalizer` of a tokenizer.json: Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD.
//
// Built once from JSON (FormatError naming the file and field for an unsupported type);
// immutable afterwards and safe to use from many threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/tokenizer/json_fields.h"
#include "core/tokenizer/regex.h"
#include "core/tokenizer/unicode_text.h"

namespace pipeprune::tok {

class Normalizer {
 public:
  // j is the "normalizer" value (not null); where names it, e.g. "PATH: normalizer".
  Normalizer(const Json& j, const std::string& where);

  // The normalized text of s (valid UTF-8).
  std::string apply(std::string_view s) const;

 private:
  enum class Kind { kPrepend, kReplace, kNormalForm };
  struct Step {
    Kind kind;
    std::string text;     // Prepend: the prefix; Replace: the literal pattern
    std::string content;  // Replace: the replacement
    std::shared_ptr<const Regex> regex;  // Replace with a Regex pattern
    NormalForm form = NormalForm::kNfc;
  };
  void add(const Json& j, const std::string& where);

  std::vector<Step> steps_;
};

}  // namespace pipeprune::tok
