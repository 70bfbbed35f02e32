// StreamingDecoder: the pieces it prints add up to decode(all ids), each piece is whole UTF-8,
// and the SentencePiece leading-space strip happens once, at the start.
#include <map>
#include <random>

#include <gtest/gtest.h>

#include "core/common/sanitizer.h"
#include "core/tokenizer/tokenizer.h"
#include "unit/tokenizer/tokenizer_test_util.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

// Streams ids through a fresh decoder; checks every piece and returns their concatenation.
std::string stream(const Tokenizer& tokenizer, const std::vector<int64_t>& ids) {
  StreamingDecoder decoder(tokenizer);
  std::string text;
  for (int64_t id : ids) {
    const std::string piece = decoder.push(id);
    EXPECT_TRUE(valid_utf8(piece)) << "piece splits a character after id " << id;
    text += piece;
  }
  const std::string rest = decoder.flush();
  EXPECT_TRUE(valid_utf8(rest));
  return text + rest;
}

struct Family {
  std::string name;
  fs::path tokenizer_file;
  fs::path cases;
};

std::vector<Family> families() {
  std::vector<Family> out = {
      {"llama2-json", test::repo_fixture("llama2") / "tokenizer.json", test::repo_fixture("llama2") / "cases.json"},
      {"gpt2", test::repo_fixture("gpt2") / "tokenizer.json", test::repo_fixture("gpt2") / "cases.json"},
  };
  // An ASan build cannot load libsentencepiece (core/common/sanitizer.h).
  if (!kAddressSanitizer) {
    out.insert(out.begin() + 1, {"llama2-model", test::repo_fixture("llama2") / "tokenizer.model", test::repo_fixture("llama2") / "cases.json"});
  }
  for (const char* name : {"llama3", "qwen2"}) {
    const fs::path dir = test::shared_fixture(name);
    if (fs::exists(dir / "tokenizer.json")) out.push_back({name, dir / "tokenizer.json", dir / "cases.json"});
  }
  return out;
}

// Loaded once per file: the large vocabularies take a second each.
const Tokenizer& load(const fs::path& file) {
  static std::map<fs::path, std::unique_ptr<Tokenizer>> loaded;
  auto& slot = loaded[file];
  if (!slot) slot = file.extension() == ".model" ? load_sentencepiece_model(file) : load_tokenizer_json(file);
  return *slot;
}

TEST(StreamingDecoder, EveryCase_EqualsDecode) {
  for (const Family& family : families()) {
    const Tokenizer& tokenizer = load(family.tokenizer_file);
    for (const test::Case& c : test::load_cases(family.cases)) {
      EXPECT_EQ(stream(tokenizer, c.ids), tokenizer.decode(c.ids)) << family.name << ": '" << c.text << "'";
      EXPECT_EQ(stream(tokenizer, c.ids), c.text) << family.name << ": '" << c.text << "'";
    }
  }
}

TEST(StreamingDecoder, GeneratedStory_EqualsReferenceText) {
  auto tokenizer = load_tokenizer(test::stories_dir());
  const nlohmann::json reference = test::parse_file(test::stories_dir() / "reference.json");
  const auto ids = reference.at("expected_token_ids").get<std::vector<int64_t>>();
  EXPECT_EQ(stream(*tokenizer, ids), reference.at("expected_text").get<std::string>());
}

// Arbitrary id sequences, special tokens, byte pieces that do not form valid UTF-8, partial
// byte-level characters: the pieces still add up to decode().
TEST(StreamingDecoder, RandomIds_EqualsDecode) {
  std::mt19937 rng(1234);
  for (const Family& family : families()) {
    const Tokenizer& tokenizer = load(family.tokenizer_file);
    std::uniform_int_distribution<int64_t> any_id(0, tokenizer.vocab_size() - 1);
    std::uniform_int_distribution<int64_t> low_id(0, 300);  // specials and byte pieces
    std::uniform_int_distribution<int> length(1, 40);
    for (int trial = 0; trial < 200; ++trial) {
      std::vector<int64_t> ids(static_cast<size_t>(length(rng)));
      for (int64_t& id : ids) id = (rng() % 3 == 0) ? low_id(rng) : any_id(rng);
      EXPECT_EQ(stream(tokenizer, ids), tokenizer.decode(ids)) << family.name << " trial " << trial;
    }
  }
}

TEST(StreamingDecoder, Llama2Pieces_LeadingSpaceOnlyStrippedAtStart) {
  auto tokenizer = load_tokenizer_json(test::repo_fixture("llama2") / "tokenizer.json");
  StreamingDecoder decoder(*tokenizer);
  EXPECT_EQ(decoder.push(1), "");  // <s>
  EXPECT_EQ(decoder.push(15043), "Hello");
  EXPECT_EQ(decoder.push(3186), " world");
  EXPECT_EQ(decoder.push(2), "");  // </s>
  EXPECT_EQ(decoder.push(15043), " Hello");
  EXPECT_EQ(decoder.flush(), "");
  // After flush the decoder starts a new text.
  EXPECT_EQ(decoder.push(15043), "Hello");
  EXPECT_EQ(decoder.flush(), "");
}

// A generation prompt fed as context: its text is not returned, and the first generated piece
// keeps the space a whole decode gives it (generate used to print "Hello worldHello").
TEST(StreamingDecoder, PushContext_ContinuationKeepsItsLeadingSpace) {
  auto tokenizer = load_tokenizer_json(test::repo_fixture("llama2") / "tokenizer.json");
  StreamingDecoder decoder(*tokenizer);
  decoder.push_context({1, 15043, 3186});  // <s> Hello world
  EXPECT_EQ(decoder.push(15043), " Hello");
  EXPECT_EQ(decoder.push(3186), " world");
  EXPECT_EQ(decoder.flush(), "");
  EXPECT_EQ(tokenizer->decode({1, 15043, 3186, 15043, 3186}), "Hello world Hello world");
}

TEST(StreamingDecoder, ByteFallbackRun_HeldUntilComplete) {
  auto tokenizer = load_tokenizer_json(test::repo_fixture("llama2") / "tokenizer.json");
  // "▁", the four byte pieces of U+1F999 (🦙), then ".".
  const auto ids = tokenizer->encode("\xF0\x9F\xA6\x99.");
  ASSERT_EQ(ids, (std::vector<int64_t>{29871, 243, 162, 169, 156, 29889}));
  StreamingDecoder decoder(*tokenizer);
  EXPECT_EQ(decoder.push(29871), "");  // a lone "▁" at the start is stripped
  for (int64_t byte_piece : {243, 162, 169, 156}) EXPECT_EQ(decoder.push(byte_piece), "");
  EXPECT_EQ(decoder.push(29889), "\xF0\x9F\xA6\x99.");
  EXPECT_EQ(decoder.push(29871), " ");  // later a "▁" is a space, printed at once
  EXPECT_EQ(decoder.push(29889), ".");
  EXPECT_EQ(decoder.flush(), "");
}

TEST(StreamingDecoder, ByteLevelPartialCharacter_HeldThenPrinted) {
  auto tokenizer = load_tokenizer_json(test::repo_fixture("gpt2") / "tokenizer.json");
  const auto ids = tokenizer->encode("\xF0\x9F\xA6\x99");  // 🦙: several byte-level tokens
  ASSERT_GT(ids.size(), 1u);
  StreamingDecoder decoder(*tokenizer);
  std::string text;
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    EXPECT_EQ(decoder.push(ids[i]), "") << "printed part of a character";
  }
  EXPECT_EQ(decoder.push(ids.back()), "\xF0\x9F\xA6\x99");
  // An unfinished character at the very end comes out of flush as U+FFFD, as decode() says.
  EXPECT_EQ(decoder.push(ids.front()), "");
  EXPECT_EQ(decoder.flush(), tokenizer->decode({ids.front()}));
}

}  // namespace
}  // namespace pipeprune
