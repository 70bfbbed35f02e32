#include "core/tokenizer/added_vocabulary.h"

#include <algorithm>

#include "core/tokenizer/unicode_text.h"

namespace pipeprune::tok {
namespace {

// The character that ends text[0, pos) (valid UTF-8), and where it starts.
char32_t char_before(std::string_view text, size_t pos, size_t* start) {
  size_t i = pos - 1;
  while (i > 0 && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) --i;
  *start = i;
  size_t j = i;
  return utf8_next(text, j);
}

bool ends_with_word(std::string_view text, size_t pos) {
  size_t start = 0;
  return pos > 0 && is_word_char(char_before(text, pos, &start));
}

bool starts_with_word(std::string_view text, size_t pos) {
  return pos < text.size() && is_word_char(utf8_next(text, pos));
}

// Start of the whitespace run that ends at pos.
size_t whitespace_run_start(std::string_view text, size_t pos) {
  while (pos > 0) {
    size_t start = 0;
    if (!is_unicode_whitespace(char_before(text, pos, &start))) break;
    pos = start;
  }
  return pos;
}

// End of the whitespace run that starts at pos.
size_t whitespace_run_end(std::string_view text, size_t pos) {
  while (pos < text.size()) {
    size_t next = pos;
    if (!is_unicode_whitespace(utf8_next(text, next))) break;
    pos = next;
  }
  return pos;
}

}  // namespace

void AddedVocabulary::Trie::insert(const std::string& key, size_t token) {
  if (key.empty()) return;
  first_bytes_[static_cast<unsigned char>(key[0])] = true;
  int32_t node = 0;
  for (char ch : key) {
    const auto c = static_cast<unsigned char>(ch);
    auto& children = nodes_[node].children;
    const auto it = std::find_if(children.begin(), children.end(),
                                 [c](const auto& edge) { return edge.first == c; });
    if (it != children.end()) {
      node = it->second;
    } else {
      const auto child = static_cast<int32_t>(nodes_.size());
      children.emplace_back(c, child);
      nodes_.emplace_back();  // invalidates `children`; not used past this point
      node = child;
    }
  }
  // The first token listed with a given content keeps it.
  if (nodes_[node].token < 0) nodes_[node].token = static_cast<int64_t>(token);
}

std::pair<size_t, size_t> AddedVocabulary::Trie::longest_match(std::string_view text,
                                                                size_t pos) const {
  std::pair<size_t, size_t> best{0, 0};
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const auto& children = nodes_[node].children;
    const auto it = std::find_if(children.begin(), children.end(),
                                 [c](const auto& edge) { return edge.first == c; });
    if (it == children.end()) break;
    node = it->second;
    if (nodes_[node].token >= 0) best = {i + 1 - pos, static_cast<size_t>(nodes_[node].token)};
  }
  return best;
}

std::vector<TextSegment> AddedVocabulary::split(std::string_view text, const Trie& trie) const {
  std::vector<TextSegment> segments;
  if (text.empty()) return segments;
  size_t covered = 0;  // text before this offset is already in segments
  for (size_t pos = 0; pos < text.size();) {
    if (trie.empty()) break;
    if (!trie.may_start(static_cast<unsigned char>(text[pos]))) {
      ++pos;
      continue;
    }
    const auto [length, index] = trie.longest_match(text, pos);
    if (length == 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[index];
    size_t start = pos, stop = pos + length;
    pos = stop;  // matches never overlap, even when this one is discarded
    if (token.single_word && (ends_with_word(text, start) || starts_with_word(text, stop))) continue;
    if (token.lstrip) start = std::max(whitespace_run_start(text, start), covered);
    if (token.rstrip) stop = whitespace_run_end(text, stop);
    pos = stop;
    if (covered < start) segments.push_back({covered, start, -1});
    segments.push_back({start, stop, token.id});
    covered = stop;
  }
  if (covered < text.size()) segments.push_back({covered, text.size(), -1});
  return segments;
}

const AddedToken* AddedVocabulary::find(int64_t id) const {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedVocabulary::find(std::string_view content) const {
  const auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

}  // namespace pipeprune::tok
