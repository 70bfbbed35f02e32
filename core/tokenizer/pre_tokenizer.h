// The `pre_tokenizer` of a tokenizer.json: Sequence, Split (regex or string; Isolated, Removed,
// MergedWithPrevious, MergedWithNext, Contiguous; invert), ByteLevel (GPT-2 split and the
// bytes-to-unicode map) and Metaspace (prepend_scheme always/first/never, split).
//
// Built once from JSON (FormatError naming the file and field for anything unsupported);
// immutable afterwards and safe to use from many threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tokenizer/json_fields.h"
#include "core/tokenizer/regex.h"

namespace pipeprune::tok {

// A piece of normalized text on its way to the model. at_origin: the piece starts at offset 0
// of the original text (Metaspace's prepend_scheme "first" prepends only there).
struct PreToken {
  std::string text;
  bool at_origin = false;
};

class PreTokenizer {
 public:
  // j is the "pre_tokenizer" value (not null); where names it, e.g. "PATH: pre_tokenizer".
  PreTokenizer(const Json& j, const std::string& where);

  // Splits and rewrites the pieces in place; empty pieces are dropped, as Hugging Face does.
  void apply(std::vector<PreToken>& pieces) const;

 private:
  enum class Kind { kSplit, kByteLevel, kMetaspace };
  enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
  struct Step {
    Kind kind = Kind::kSplit;
    std::shared_ptr<const Regex> regex;  // Split with a Regex, ByteLevel with use_regex
    std::string literal;                 // Split with a String; Metaspace's replacement
    Behavior behavior = Behavior::kIsolated;
    bool invert = false;
    bool add_prefix_space = false;  // ByteLevel
    enum class Prepend { kAlways, kFirst, kNever } prepend = Prepend::kAlways;  // Metaspace
    bool split = true;                                                          // Metaspace
  };
  void add(const Json& j, const std::string& where);
  static Step parse_split(const Json& j, const std::string& where);
  static Step parse_metaspace(const Json& j, const std::string& where);
  void apply_step(const Step& step, const PreToken& piece, std::vector<PreToken>& out) const;

  std::vector<Step> steps_;
};

}  // namespace pipeprune::tok
