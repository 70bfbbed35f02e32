#include "core/tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <utility>

#include "core/common/error.h"
#include "core/tokenizer/unicode_text.h"

namespace pipeprune::tok {
namespace {

using Ranges = std::vector<std::pair<size_t, size_t>>;

// The split GPT-2 (and every ByteLevel pre-tokenizer with use_regex) applies before BPE.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::shared_ptr<const Regex> gpt2_regex() {
  static const auto regex = std::make_shared<const Regex>(kGpt2Pattern, "ByteLevel GPT-2 pattern");
  return regex;
}

Ranges find_literal(std::string_view text, std::string_view literal) {
  Ranges out;
  for (size_t hit = text.find(literal); hit != std::string_view::npos;
       hit = text.find(literal, hit + literal.size())) {
    out.emplace_back(hit, hit + literal.size());
  }
  return out;
}

std::string replace_spaces(std::string_view s, std::string_view with) {
  std::string out;
  out.reserve(s.size() + 8);
  for (char c : s) {
    if (c == ' ') {
      out.append(with);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string to_byte_level(std::string_view s) {
  const auto& chars = byte_level_chars();
  std::string out;
  out.reserve(s.size() * 2);
  for (char c : s) out.append(chars[static_cast<unsigned char>(c)]);
  return out;
}

}  // namespace

PreTokenizer::PreTokenizer(const Json& j, const std::string& where) { add(j, where); }

PreTokenizer::Step PreTokenizer::parse_split(const Json& j, const std::string& where) {
  Step step;
  step.kind = Kind::kSplit;
  bool is_regex = false;
  const std::string pattern = json_pattern(j, "pattern", &is_regex, where);
  if (is_regex) {
    step.regex = std::make_shared<const Regex>(pattern, where + ".pattern.Regex");
  } else {
    PIPEPRUNE_CHECK(!pattern.empty(), FormatError, where << ".pattern.String is empty");
    step.literal = pattern;
  }
  const std::string behavior = json_string(j, "behavior", where);
  if (behavior == "Removed") {
    step.behavior = Behavior::kRemoved;
  } else if (behavior == "Isolated") {
    step.behavior = Behavior::kIsolated;
  } else if (behavior == "MergedWithPrevious") {
    step.behavior = Behavior::kMergedWithPrevious;
  } else if (behavior == "MergedWithNext") {
    step.behavior = Behavior::kMergedWithNext;
  } else if (behavior == "Contiguous") {
    step.behavior = Behavior::kContiguous;
  } else {
    PIPEPRUNE_FAIL(FormatError, where << ".behavior '" << behavior << "' is not a known split behavior");
  }
  step.invert = json_bool_or(j, "invert", false, where);
  return step;
}

PreTokenizer::Step PreTokenizer::parse_metaspace(const Json& j, const std::string& where) {
  Step step;
  step.kind = Kind::kMetaspace;
  step.literal = json_string_or(j, "replacement", "\xE2\x96\x81", where);
  PIPEPRUNE_CHECK(!step.literal.empty(), FormatError, where << ".replacement is empty");
  if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null()) {
    const std::string scheme = json_string(j, "prepend_scheme", where);
    PIPEPRUNE_CHECK(scheme == "always" || scheme == "first" || scheme == "never", FormatError,
                    where << ".prepend_scheme '" << scheme << "' is not always, first or never");
    step.prepend = scheme == "always"  ? Step::Prepend::kAlways
                   : scheme == "first" ? Step::Prepend::kFirst
                                       : Step::Prepend::kNever;
  } else {
    // Files written before prepend_scheme existed say add_prefix_space.
    step.prepend = json_bool_or(j, "add_prefix_space", true, where) ? Step::Prepend::kAlways
                                                                    : Step::Prepend::kNever;
  }
  step.split = json_bool_or(j, "split", true, where);
  return step;
}

void PreTokenizer::add(const Json& j, const std::string& where) {
  const std::string type = json_type(j, where);
  if (type == "Sequence") {
    const Json& list = json_field(j, "pretokenizers", where);
    PIPEPRUNE_CHECK(list.is_array(), FormatError, where << ".pretokenizers must be a list");
    for (size_t i = 0; i < list.size(); ++i) {
      add(list[i], where + ".pretokenizers[" + std::to_string(i) + "]");
    }
  } else if (type == "Split") {
    steps_.push_back(parse_split(j, where));
  } else if (type == "ByteLevel") {
    Step step;
    step.kind = Kind::kByteLevel;
    // Hugging Face's defaults when the fields are absent.
    step.add_prefix_space = json_bool_or(j, "add_prefix_space", true, where);
    if (json_bool_or(j, "use_regex", true, where)) step.regex = gpt2_regex();
    steps_.push_back(std::move(step));
  } else if (type == "Metaspace") {
    steps_.push_back(parse_metaspace(j, where));
  } else {
    PIPEPRUNE_FAIL(FormatError, where << ".type '" << type
                                      << "' is not supported (supported: Sequence, Split, "
                                         "ByteLevel, Metaspace)");
  }
}

void PreTokenizer::apply(std::vector<PreToken>& pieces) const {
  std::vector<PreToken> next;
  for (const Step& step : steps_) {
    next.clear();
    next.reserve(pieces.size());
    for (const PreToken& piece : pieces) apply_step(step, piece, next);
    pieces.swap(next);
  }
}

namespace {

struct Segment {
  size_t begin, end;
  bool is_match;
};

// Groups matched and unmatched segments as `behavior` says, like Hugging Face's
// NormalizedString::split.
template <typename Behavior>
Ranges group_segments(const std::vector<Segment>& segments, Behavior behavior) {
  Ranges parts;
  bool previous_match = false;
  switch (behavior) {
    case Behavior::kRemoved:
      for (const Segment& s : segments) {
        if (!s.is_match) parts.emplace_back(s.begin, s.end);
      }
      break;
    case Behavior::kIsolated:
      for (const Segment& s : segments) parts.emplace_back(s.begin, s.end);
      break;
    case Behavior::kMergedWithPrevious:
      for (const Segment& s : segments) {
        if (s.is_match && !previous_match && !parts.empty()) {
          parts.back().second = s.end;
        } else {
          parts.emplace_back(s.begin, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    case Behavior::kMergedWithNext:
      for (auto s = segments.rbegin(); s != segments.rend(); ++s) {
        if (s->is_match && !previous_match && !parts.empty()) {
          parts.back().first = s->begin;
        } else {
          parts.emplace_back(s->begin, s->end);
        }
        previous_match = s->is_match;
      }
      std::reverse(parts.begin(), parts.end());
      break;
    case Behavior::kContiguous:
      for (const Segment& s : segments) {
        if (s.is_match == previous_match && !parts.empty()) {
          parts.back().second = s.end;
        } else {
          parts.emplace_back(s.begin, s.end);
        }
        previous_match = s.is_match;
      }
      break;
  }
  return parts;
}

// Cuts text at the matches and appends the non-empty parts, grouped as `behavior` says.
template <typename Behavior>
void split_into(const std::string& text, bool at_origin, const Ranges& matches, Behavior behavior,
                bool invert, std::vector<PreToken>& out) {
  std::vector<Segment> segments;
  size_t previous = 0;
  for (const auto& [begin, end] : matches) {
    if (begin > previous) segments.push_back({previous, begin, invert});
    segments.push_back({begin, end, !invert});
    previous = end;
  }
  if (previous < text.size()) segments.push_back({previous, text.size(), invert});
  for (const auto& [begin, end] : group_segments(segments, behavior)) {
    if (end > begin) out.push_back({text.substr(begin, end - begin), at_origin && begin == 0});
  }
}

}  // namespace

void PreTokenizer::apply_step(const Step& step, const PreToken& piece,
                              std::vector<PreToken>& out) const {
  switch (step.kind) {
    case Kind::kSplit: {
      const Ranges matches =
          step.regex ? step.regex->find_all(piece.text) : find_literal(piece.text, step.literal);
      split_into(piece.text, piece.at_origin, matches, step.behavior, step.invert, out);
      return;
    }
    case Kind::kByteLevel: {
      std::string text = piece.text;
      if (step.add_prefix_space && (text.empty() || text[0] != ' ')) text.insert(0, " ");
      const size_t first = out.size();
      if (step.regex) {
        split_into(text, piece.at_origin, step.regex->find_all(text), Behavior::kIsolated, false, out);
      } else if (!text.empty()) {
        out.push_back({std::move(text), piece.at_origin});
      }
      for (size_t i = first; i < out.size(); ++i) out[i].text = to_byte_level(out[i].text);
      return;
    }
    case Kind::kMetaspace: {
      std::string text = replace_spaces(piece.text, step.literal);
      const bool starts_with_replacement = text.compare(0, step.literal.size(), step.literal) == 0;
      if (!starts_with_replacement && (step.prepend == Step::Prepend::kAlways ||
                                       (step.prepend == Step::Prepend::kFirst && piece.at_origin))) {
        text.insert(0, step.literal);
      }
      if (step.split) {
        split_into(text, piece.at_origin, find_literal(text, step.literal), Behavior::kMergedWithNext,
                   false, out);
      } else if (!text.empty()) {
        out.push_back({std::move(text), piece.at_origin});
      }
      return;
    }
  }
}

}  // namespace pipeprune::tok
