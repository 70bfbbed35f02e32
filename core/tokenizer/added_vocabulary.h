// The added tokens of a tokenizer.json (special tokens such as "<|endoftext|>", "<s>"), found in
// the text before the model sees it, with Hugging Face's AddedVocabulary semantics: leftmost
// longest match; tokens with normalized=false are matched in the raw text, those with
// normalized=true in the normalized text; single_word, lstrip and rstrip honoured.
//
// Immutable after construction; safe to use from many threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pipeprune::tok {

struct AddedToken {
  std::string content;
  int64_t id = 0;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

// A stretch of text: either an added token (id >= 0) or plain text (id == -1).
struct TextSegment {
  size_t begin = 0, end = 0;
  int64_t id = -1;
};

class AddedVocabulary {
 public:
  // normalize_content: how normalized=true tokens appear after normalization (the
  // tokenizer's normalizer applied to their content, as Hugging Face does).
  template <typename Normalize>
  AddedVocabulary(std::vector<AddedToken> tokens, Normalize normalize_content)
      : tokens_(std::move(tokens)) {
    for (size_t i = 0; i < tokens_.size(); ++i) {
      const AddedToken& t = tokens_[i];
      by_id_.emplace(t.id, i);
      by_content_.emplace(t.content, i);
      if (t.content.empty()) continue;
      if (t.normalized) {
        normalized_trie_.insert(normalize_content(t.content), i);
      } else {
        raw_trie_.insert(t.content, i);
      }
    }
  }

  // Segments covering text: added tokens matched in raw text (normalized=false ones).
  std::vector<TextSegment> split_raw(std::string_view text) const { return split(text, raw_trie_); }
  // Segments covering already normalized text: the normalized=true tokens.
  std::vector<TextSegment> split_normalized(std::string_view text) const {
    return split(text, normalized_trie_);
  }

  const AddedToken* find(int64_t id) const;
  const AddedToken* find(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // A byte trie of token contents; terminal nodes name a token index.
  class Trie {
   public:
    Trie() : nodes_(1) {}
    void insert(const std::string& key, size_t token);
    // Length and token of the longest key starting at text[pos]; length 0 when none.
    std::pair<size_t, size_t> longest_match(std::string_view text, size_t pos) const;
    bool empty() const { return nodes_.size() == 1; }
    bool may_start(unsigned char c) const { return first_bytes_[c]; }

   private:
    struct Node {
      std::vector<std::pair<unsigned char, int32_t>> children;
      int64_t token = -1;
    };
    std::vector<Node> nodes_;
    bool first_bytes_[256] = {};
  };
  std::vector<TextSegment> split(std::string_view text, const Trie& trie) const;

  std::vector<AddedToken> tokens_;
  std::unordered_map<int64_t, size_t> by_id_;
  std::unordered_map<std::string, size_t> by_content_;
  Trie raw_trie_, normalized_trie_;
};

}  // namespace pipeprune::tok
