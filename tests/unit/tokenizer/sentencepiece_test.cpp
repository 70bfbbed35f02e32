// The tokenizer.model backend (Debian's libsentencepiece): the Llama-2 ground-truth cases, and
// agreement with the equivalent tokenizer.json on every line of the TinyStories text.
#include <chrono>
#include <iostream>

#include <gtest/gtest.h>

#include "core/common/error.h"
#include "core/common/sanitizer.h"
#include "core/tokenizer/tokenizer.h"
#include "unit/tokenizer/tokenizer_test_util.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;

// An ASan build cannot load libsentencepiece (core/common/sanitizer.h): these cases skip there,
// and the last test checks the refusal instead.
class SentencePieceModel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (kAddressSanitizer) GTEST_SKIP() << "AddressSanitizer build: libsentencepiece cannot be loaded";
  }
};

std::unique_ptr<Tokenizer> llama2_model() {
  const auto start = std::chrono::steady_clock::now();
  auto tokenizer = load_sentencepiece_model(test::repo_fixture("llama2") / "tokenizer.model");
  std::cout << "[ timing ] load tokenizer.model: "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() << " s\n";
  return tokenizer;
}

TEST_F(SentencePieceModel, Llama2Cases_AllExact) {
  auto tokenizer = llama2_model();
  const auto cases = test::load_cases(test::repo_fixture("llama2") / "cases.json");
  ASSERT_EQ(cases.size(), 51u);
  for (const test::Case& c : cases) {
    const auto ids = c.add_bos ? tokenizer->encode_with_bos(c.text) : tokenizer->encode(c.text);
    EXPECT_EQ(ids, c.ids) << "text: '" << c.text << "'";
    EXPECT_EQ(tokenizer->decode(c.ids), c.text) << "ids of text: '" << c.text << "'";
  }
}

TEST_F(SentencePieceModel, SpecialIds_FromConfigAndModel) {
  auto tokenizer = llama2_model();
  EXPECT_EQ(tokenizer->vocab_size(), 32000);
  EXPECT_EQ(tokenizer->bos_id(), std::optional<int64_t>(1));
  EXPECT_EQ(tokenizer->eos_ids(), std::vector<int64_t>{2});
  EXPECT_EQ(tokenizer->token_to_id("</s>"), std::optional<int64_t>(2));
  EXPECT_EQ(tokenizer->token_to_id("\xE2\x96\x81the"), std::optional<int64_t>(278));
  EXPECT_FALSE(tokenizer->token_to_id("no such piece").has_value());
  EXPECT_TRUE(tokenizer->is_byte_piece(3 + 0x0A));  // <0x0A>
  EXPECT_FALSE(tokenizer->is_byte_piece(278));
}

// A bare tokenizer.model (no config files beside it) adds SentencePiece's own BOS.
TEST_F(SentencePieceModel, BareModel_UsesModelBosEos) {
  const fs::path dir = fs::temp_directory_path() / "pipeprune_tokenizer_bare_model";
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(test::repo_fixture("llama2") / "tokenizer.model", dir / "tokenizer.model");
  auto tokenizer = load_tokenizer(dir);
  EXPECT_EQ(tokenizer->bos_id(), std::optional<int64_t>(1));
  EXPECT_EQ(tokenizer->eos_ids(), std::vector<int64_t>{2});
  EXPECT_EQ(tokenizer->encode_with_bos("Hello"), (std::vector<int64_t>{1, 15043}));
  fs::remove_all(dir);
}

TEST_F(SentencePieceModel, DecodeKeepingSpecials_ShowsControlPieces) {
  auto tokenizer = llama2_model();
  const std::vector<int64_t> ids = {1, 15043, 2, 15043};  // <s> ▁Hello </s> ▁Hello
  EXPECT_EQ(tokenizer->decode(ids), "Hello Hello");
  EXPECT_EQ(tokenizer->decode(ids, /*skip_special=*/false), "<s>Hello</s> Hello");
  // Ids outside the vocabulary are skipped rather than failing.
  EXPECT_EQ(tokenizer->decode({15043, 99999, -1}), "Hello");
}

// Two independent implementations (libsentencepiece and our tokenizer.json BPE) agree line
// by line on the TinyStories text, including the lines that need byte fallback.
TEST_F(SentencePieceModel, TinyStoriesLines_EqualTokenizerJson) {
  auto model = llama2_model();
  auto json = load_tokenizer_json(test::repo_fixture("llama2") / "tokenizer.json");
  const std::vector<std::string> lines = test::lines_of(test::slurp(test::tinystories_text()));
  ASSERT_GT(lines.size(), 8000u);
  size_t mismatches = 0;
  for (const std::string& line : lines) {
    const auto expected = model->encode(line);
    if (json->encode(line) != expected && ++mismatches <= 5) {
      ADD_FAILURE() << "line: '" << line << "'";
    }
  }
  EXPECT_EQ(mismatches, 0u);
}

TEST_F(SentencePieceModel, NotAModel_FormatErrorNamingFile) {
  const fs::path bogus = fs::temp_directory_path() / "pipeprune_bogus_tokenizer.model";
  {
    std::ofstream out(bogus);
    out << "this is not a protobuf";
  }
  try {
    load_sentencepiece_model(bogus);
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(bogus.string()), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_sentencepiece_model(bogus.string() + ".missing"), IoError);
  fs::remove(bogus);
}

TEST(SentencePieceModelUnderAsan, Load_OneLineIoErrorNamingFileAndWhatToDo) {
  if (!kAddressSanitizer) GTEST_SKIP() << "only an AddressSanitizer build refuses tokenizer.model";
  const fs::path model = test::repo_fixture("llama2") / "tokenizer.model";
  try {
    load_sentencepiece_model(model);
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(model.string()), std::string::npos) << what;
    EXPECT_NE(what.find("AddressSanitizer"), std::string::npos) << what;
    EXPECT_NE(what.find("tokenizer.json"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace pipeprune
