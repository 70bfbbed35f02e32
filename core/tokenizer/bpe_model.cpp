#include "core/tokenizer/bpe_model.h"

#include <cstdio>
#include <functional>
#include <limits>
#include <queue>

#include "core/common/error.h"
#include "core/tokenizer/unicode_text.h"

namespace pipeprune::tok {

BpeModel::BpeModel(const Json& j, const std::string& where) {
  const std::string type = json_string_or(j, "type", "BPE", where);
  PIPEPRUNE_CHECK(type == "BPE", FormatError,
                  where << ".type '" << type
                        << "' is not supported (only BPE tokenizers are); use a BPE model's "
                           "tokenizer.json or a tokenizer.model");
  if (j.contains("dropout") && !j["dropout"].is_null()) {
    PIPEPRUNE_CHECK(j["dropout"].is_number() && j["dropout"].get<double>() == 0.0, FormatError,
                    where << ".dropout is set; BPE dropout is a training option, set it to null");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    PIPEPRUNE_CHECK(json_string_or(j, key, "", where).empty(), FormatError,
                    where << "." << key << " is not supported; only prefix/suffix-free BPE is");
  }
  byte_fallback_ = json_bool_or(j, "byte_fallback", false, where);
  fuse_unk_ = json_bool_or(j, "fuse_unk", false, where);
  ignore_merges_ = json_bool_or(j, "ignore_merges", false, where);
  load_vocab(json_field(j, "vocab", where), where + ".vocab");
  load_merges(json_field(j, "merges", where), where + ".merges");

  const std::string unk = json_string_or(j, "unk_token", "", where);
  if (!unk.empty()) {
    const auto id = token_to_id(unk);
    PIPEPRUNE_CHECK(id.has_value(), FormatError,
                    where << ".unk_token '" << unk << "' is not in " << where << ".vocab");
    unk_id_ = static_cast<int32_t>(*id);
  }
  byte_ids_.fill(-1);
  if (byte_fallback_) {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      if (const auto id = token_to_id(name)) byte_ids_[b] = static_cast<int32_t>(*id);
    }
  }
}

void BpeModel::load_vocab(const Json& vocab, const std::string& where) {
  PIPEPRUNE_CHECK(vocab.is_object(), FormatError,
                  where << " must be an object of token -> id, got " << vocab.type_name());
  token_storage_.reserve(vocab.size());
  vocab_.reserve(vocab.size());
  int64_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const Json& value = it.value();
    PIPEPRUNE_CHECK(value.is_number_integer() && value.get<int64_t>() >= 0 &&
                        value.get<int64_t>() < std::numeric_limits<int32_t>::max(),
                    FormatError, where << "['" << it.key() << "'] must be a non-negative id");
    token_storage_.push_back(it.key());
    const auto id = static_cast<int32_t>(value.get<int64_t>());
    vocab_.emplace(token_storage_.back(), id);
    max_id = std::max<int64_t>(max_id, id);
  }
  id_to_token_.assign(static_cast<size_t>(max_id + 1), nullptr);
  for (const std::string& token : token_storage_) {
    const std::string*& slot = id_to_token_[static_cast<size_t>(vocab_.at(token))];
    if (slot == nullptr) slot = &token;
  }
}

void BpeModel::load_merges(const Json& merges, const std::string& where) {
  PIPEPRUNE_CHECK(merges.is_array(), FormatError, where << " must be a list");
  merges_.reserve(merges.size());
  std::string left, right;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const Json& merge = merges[rank];
    // Two layouts exist: "a b" (older files) and ["a", "b"].
    if (merge.is_string()) {
      const std::string& text = merge.get_ref<const std::string&>();
      const size_t space = text.find(' ');
      PIPEPRUNE_CHECK(space != std::string::npos && space > 0 && space + 1 < text.size(), FormatError,
                      where << "[" << rank << "] '" << text << "' is not two tokens separated by a space");
      left.assign(text, 0, space);
      right.assign(text, space + 1, std::string::npos);
    } else {
      PIPEPRUNE_CHECK(merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
                          merge[1].is_string(),
                      FormatError, where << "[" << rank << "] must be \"a b\" or [\"a\", \"b\"]");
      left = merge[0].get<std::string>();
      right = merge[1].get<std::string>();
    }
    const auto a = token_to_id(left), b = token_to_id(right), merged = token_to_id(left + right);
    PIPEPRUNE_CHECK(a && b && merged, FormatError,
                    where << "[" << rank << "] ('" << left << "', '" << right
                          << "') names a token missing from the vocabulary");
    // Later duplicates win, as in Hugging Face's map of merges.
    merges_[pair_key(static_cast<int32_t>(*a), static_cast<int32_t>(*b))] =
        Merge{static_cast<int32_t>(rank), static_cast<int32_t>(*merged)};
  }
}

std::optional<int64_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int64_t id) const {
  if (id < 0 || id >= id_limit()) return nullptr;
  return id_to_token_[static_cast<size_t>(id)];
}

std::vector<int32_t> BpeModel::initial_symbols(std::string_view word) const {
  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  std::optional<int32_t> pending_unk;
  for (size_t i = 0; i < word.size();) {
    const size_t n = std::min(utf8_char_length(static_cast<unsigned char>(word[i])), word.size() - i);
    const std::string_view piece = word.substr(i, n);
    i += n;
    if (const auto it = vocab_.find(piece); it != vocab_.end()) {
      if (pending_unk) symbols.push_back(*pending_unk), pending_unk.reset();
      symbols.push_back(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all_bytes = true;
      for (char c : piece) all_bytes = all_bytes && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all_bytes) {
        // Like Hugging Face, byte pieces do not flush a pending unk first.
        for (char c : piece) symbols.push_back(byte_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk && !fuse_unk_) symbols.push_back(*pending_unk);
      pending_unk = unk_id_;
    }
  }
  if (pending_unk) symbols.push_back(*pending_unk);
  return symbols;
}

std::vector<int32_t> BpeModel::merge_all(std::vector<int32_t> ids) const {
  const auto n = static_cast<int32_t>(ids.size());
  if (n < 2) return ids;
  std::vector<int32_t> prev(static_cast<size_t>(n)), next(static_cast<size_t>(n));
  std::vector<char> alive(static_cast<size_t>(n), 1);
  for (int32_t i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1 < n ? i + 1 : -1;

  // A queued pair is (rank << 32 | left position): the smallest key is the lowest rank, and
  // on equal rank the leftmost pair, as Hugging Face orders its merges.
  auto key = [](int32_t rank, int32_t pos) {
    return (static_cast<uint64_t>(rank) << 32) | static_cast<uint32_t>(pos);
  };
  std::vector<uint64_t> initial;
  initial.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i + 1 < n; ++i) {
    const auto it = merges_.find(pair_key(ids[i], ids[i + 1]));
    if (it != merges_.end()) initial.push_back(key(it->second.rank, i));
  }
  // Built in one go (linear), not by n pushes: a whole file can be a single word.
  std::priority_queue<uint64_t, std::vector<uint64_t>, std::greater<uint64_t>> queue(
      std::greater<uint64_t>(), std::move(initial));
  auto push_pair = [&](int32_t pos) {
    const int32_t right = next[pos];
    if (right < 0) return;
    const auto it = merges_.find(pair_key(ids[pos], ids[right]));
    if (it != merges_.end()) queue.push(key(it->second.rank, pos));
  };

  while (!queue.empty()) {
    const auto rank = static_cast<int32_t>(queue.top() >> 32);
    const auto pos = static_cast<int32_t>(queue.top() & 0xFFFFFFFFu);
    queue.pop();
    const int32_t right = next[pos];
    if (!alive[pos] || right < 0) continue;
    // An entry is stale when its pair has changed since it was queued.
    const auto it = merges_.find(pair_key(ids[pos], ids[right]));
    if (it == merges_.end() || it->second.rank != rank) continue;
    ids[pos] = it->second.new_id;
    alive[right] = 0;
    next[pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = pos;
    if (prev[pos] >= 0) push_pair(prev[pos]);
    push_pair(pos);
  }
  std::vector<int32_t> merged;
  merged.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    if (alive[i]) merged.push_back(ids[i]);
  }
  return merged;
}

void BpeModel::tokenize(std::string_view word, std::vector<int64_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const auto it = vocab_.find(word); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  std::string key;
  if (cacheable) {
    key.assign(word);
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (const auto it = cache_.find(key); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids = merge_all(initial_symbols(word));
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() < kMaxCacheEntries) cache_.emplace(std::move(key), std::move(ids));
  }
}

}  // namespace pipeprune::tok
