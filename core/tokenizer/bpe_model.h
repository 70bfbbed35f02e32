// The BPE `model` of a tokenizer.json: vocabulary, merges by rank, byte_fallback, unk with
// fuse_unk, ignore_merges. Tokenizes one pre-tokenized word at a time exactly as Hugging Face's
// BPE does (merge the lowest-ranked adjacent pair first, leftmost on ties) with a priority
// queue over adjacent pairs, so even a whole file as one word costs O(n log n).
//
// Immutable after construction except for a word cache behind a mutex: tokenize() may be
// called from many threads at once.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/tokenizer/json_fields.h"

namespace pipeprune::tok {

class BpeModel {
 public:
  // j is the "model" value; where names it, e.g. "PATH: model". FormatError for a model type
  // other than BPE, options this implementation does not have, or merges naming unknown tokens.
  BpeModel(const Json& j, const std::string& where);
  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

  // Appends the ids of one word (after normalization and pre-tokenization) to out.
  void tokenize(std::string_view word, std::vector<int64_t>& out) const;

  std::optional<int64_t> token_to_id(std::string_view token) const;
  // The token string of id, or nullptr when the vocabulary has no such id.
  const std::string* id_to_token(int64_t id) const;
  // One past the largest id of the vocabulary.
  int64_t id_limit() const { return static_cast<int64_t>(id_to_token_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  void load_vocab(const Json& vocab, const std::string& where);
  void load_merges(const Json& merges, const std::string& where);
  // The symbols of a word before merging: one per character, byte pieces for characters
  // outside the vocabulary (byte_fallback), else unk (fused when fuse_unk).
  std::vector<int32_t> initial_symbols(std::string_view word) const;
  std::vector<int32_t> merge_all(std::vector<int32_t> symbols) const;

  std::vector<std::string> token_storage_;  // reserved once: the views below stay valid
  std::unordered_map<std::string_view, int32_t> vocab_;
  std::vector<const std::string*> id_to_token_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<int32_t, 256> byte_ids_{};  // "<0xNN>" ids when byte_fallback, else -1
  std::optional<int32_t> unk_id_;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;

  static constexpr size_t kMaxCachedWordBytes = 256;
  static constexpr size_t kMaxCacheEntries = 1 << 16;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace pipeprune::tok
