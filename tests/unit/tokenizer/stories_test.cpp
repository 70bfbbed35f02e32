// The demo model's tokenizer (stories260K, SentencePiece-style BPE with byte fallback):
// reference ids from llama2.c, and agreement with a naive BPE written here on every line of
// the TinyStories text.
#include <chrono>
#include <iostream>
#include <unordered_map>

#include <gtest/gtest.h>

#include "core/tokenizer/tokenizer.h"
#include "unit/tokenizer/tokenizer_test_util.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// llama2.c-style reference: "▁" + text with spaces as "▁", one symbol per character (its
// <0xNN> bytes when the character is not in the vocabulary), then merge the best-ranked
// adjacent pair (leftmost on ties) until none is left. O(n^2), dense tables, no shared code.
class NaiveBpe {
 public:
  explicit NaiveBpe(const json& tokenizer) {
    const json& model = tokenizer.at("model");
    for (const auto& [token, id] : model.at("vocab").items()) vocab_[token] = id.get<int>();
    size_ = static_cast<int>(vocab_.size());
    rank_.assign(static_cast<size_t>(size_ * size_), -1);
    merged_.assign(static_cast<size_t>(size_ * size_), -1);
    const json& merges = model.at("merges");
    for (size_t r = 0; r < merges.size(); ++r) {
      const std::string merge = merges[r].get<std::string>();
      const size_t space = merge.find(' ');
      const std::string a = merge.substr(0, space), b = merge.substr(space + 1);
      const size_t cell = static_cast<size_t>(vocab_.at(a) * size_ + vocab_.at(b));
      rank_[cell] = static_cast<int>(r);
      merged_[cell] = vocab_.at(a + b);
    }
  }

  std::vector<int64_t> encode(const std::string& line) const {
    if (line.empty()) return {};
    std::string text = "\xE2\x96\x81";
    for (char c : line) text += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
    std::vector<int> symbols;
    for (size_t i = 0; i < text.size();) {
      const auto lead = static_cast<unsigned char>(text[i]);
      const size_t n = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
      const auto it = vocab_.find(text.substr(i, n));
      if (it != vocab_.end()) {
        symbols.push_back(it->second);
      } else {
        for (size_t k = 0; k < n; ++k) {
          char name[8];
          std::snprintf(name, sizeof(name), "<0x%02X>", static_cast<unsigned char>(text[i + k]));
          symbols.push_back(vocab_.at(name));
        }
      }
      i += n;
    }
    while (true) {
      int best = -1, best_rank = -1;
      for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        const int r = rank_[static_cast<size_t>(symbols[i] * size_ + symbols[i + 1])];
        if (r >= 0 && (best < 0 || r < best_rank)) best = static_cast<int>(i), best_rank = r;
      }
      if (best < 0) break;
      symbols[best] = merged_[static_cast<size_t>(symbols[best] * size_ + symbols[best + 1])];
      symbols.erase(symbols.begin() + best + 1);
    }
    return {symbols.begin(), symbols.end()};
  }

 private:
  std::unordered_map<std::string, int> vocab_;
  int size_ = 0;
  std::vector<int> rank_, merged_;
};

TEST(Stories260K, ReferenceExamples_IdsWithBos) {
  auto tokenizer = load_tokenizer(test::stories_dir());
  EXPECT_EQ(tokenizer->bos_id(), std::optional<int64_t>(1));
  EXPECT_EQ(tokenizer->eos_ids(), std::vector<int64_t>{2});
  EXPECT_EQ(tokenizer->vocab_size(), 512);
  const json reference = test::parse_file(test::stories_dir() / "reference.json");
  ASSERT_FALSE(reference.at("encode_examples").empty());
  for (const json& example : reference.at("encode_examples")) {
    const std::string text = example.at("text").get<std::string>();
    EXPECT_EQ(tokenizer->encode_with_bos(text), example.at("ids_with_bos").get<std::vector<int64_t>>())
        << "text: '" << text << "'";
  }
  const auto generated = reference.at("expected_token_ids").get<std::vector<int64_t>>();
  EXPECT_EQ(tokenizer->decode(generated), reference.at("expected_text").get<std::string>());
}

TEST(Stories260K, EveryTinyStoriesLine_EqualsNaiveBpe) {
  auto tokenizer = load_tokenizer(test::stories_dir());
  const NaiveBpe naive(test::parse_file(test::stories_dir() / "tokenizer.json"));
  const std::vector<std::string> lines = test::lines_of(test::slurp(test::tinystories_text()));
  ASSERT_GT(lines.size(), 8000u);
  size_t mismatches = 0, non_ascii = 0;
  for (const std::string& line : lines) {
    for (char c : line) {
      if (static_cast<unsigned char>(c) >= 0x80) {
        ++non_ascii;
        break;
      }
    }
    if (tokenizer->encode(line) != naive.encode(line) && ++mismatches <= 5) {
      ADD_FAILURE() << "line: '" << line << "'";
    }
  }
  EXPECT_EQ(mismatches, 0u);
  EXPECT_GT(non_ascii, 50u);  // the byte-fallback path was exercised
}

// The perplexity recipe encodes the whole file as one string: one 800 KB "word" for BPE.
TEST(Stories260K, WholeFile_FastAndRoundTrips) {
  auto tokenizer = load_tokenizer(test::stories_dir());
  const std::string text = test::slurp(test::tinystories_text());
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int64_t> ids = tokenizer->encode_with_bos(text);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[ timing ] encode " << text.size() << " bytes: " << seconds << " s, " << ids.size()
            << " ids\n";
  ASSERT_GT(ids.size(), 64u * 256u);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(tokenizer->decode(ids), text);
  EXPECT_LT(seconds, 10.0);  // generous: about 0.2 s on a 2-core machine
}

}  // namespace
}  // namespace pipeprune
