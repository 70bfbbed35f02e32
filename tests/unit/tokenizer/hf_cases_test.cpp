// Every ground-truth case (ids produced by the reference tokenizers) through our tokenizer.json
// backend: encode gives exactly the ids, decode gives back the text.
#include <chrono>
#include <iostream>
#include <thread>

#include <gtest/gtest.h>

#include "core/tokenizer/tokenizer.h"
#include "unit/tokenizer/tokenizer_test_util.h"

namespace pipeprune {
namespace {

using test::Case;
namespace fs = std::filesystem;

std::unique_ptr<Tokenizer> timed_load(const fs::path& json) {
  const auto start = std::chrono::steady_clock::now();
  auto tokenizer = load_tokenizer_json(json);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[ timing ] load " << json << ": " << seconds << " s\n";
  return tokenizer;
}

void expect_cases(const Tokenizer& tokenizer, const std::vector<Case>& cases) {
  ASSERT_FALSE(cases.empty());
  for (const Case& c : cases) {
    const std::vector<int64_t> ids = c.add_bos ? tokenizer.encode_with_bos(c.text) : tokenizer.encode(c.text);
    EXPECT_EQ(ids, c.ids) << "text: '" << c.text << "'";
    EXPECT_EQ(tokenizer.decode(c.ids), c.text) << "ids of text: '" << c.text << "'";
  }
}

TEST(HfCases, Llama2Json_AllCasesExact) {
  auto tokenizer = timed_load(test::repo_fixture("llama2") / "tokenizer.json");
  EXPECT_EQ(tokenizer->bos_id(), std::optional<int64_t>(1));
  EXPECT_EQ(tokenizer->eos_ids(), std::vector<int64_t>{2});
  EXPECT_EQ(tokenizer->vocab_size(), 32000);
  expect_cases(*tokenizer, test::load_cases(test::repo_fixture("llama2") / "cases.json"));
}

TEST(HfCases, Gpt2_AllCasesExact) {
  auto tokenizer = timed_load(test::repo_fixture("gpt2") / "tokenizer.json");
  EXPECT_FALSE(tokenizer->bos_id().has_value());
  EXPECT_EQ(tokenizer->eos_ids(), std::vector<int64_t>{50256});
  EXPECT_EQ(tokenizer->vocab_size(), 50257);
  expect_cases(*tokenizer, test::load_cases(test::repo_fixture("gpt2") / "cases.json"));
}

TEST(HfCases, Llama3_AllCasesExact) {
  const fs::path dir = test::shared_fixture("llama3");
  if (!fs::exists(dir / "tokenizer.json")) GTEST_SKIP() << dir << " is absent (shared fixtures not mounted)";
  auto tokenizer = timed_load(dir / "tokenizer.json");
  EXPECT_EQ(tokenizer->bos_id(), std::optional<int64_t>(128000));
  EXPECT_EQ(tokenizer->eos_ids(), std::vector<int64_t>{128001});
  EXPECT_EQ(tokenizer->vocab_size(), 128256);
  EXPECT_EQ(tokenizer->token_to_id("<|eot_id|>"), std::optional<int64_t>(128009));
  expect_cases(*tokenizer, test::load_cases(dir / "cases.json"));
}

TEST(HfCases, Qwen2_AllCasesExact) {
  const fs::path dir = test::shared_fixture("qwen2");
  if (!fs::exists(dir / "tokenizer.json")) GTEST_SKIP() << dir << " is absent (shared fixtures not mounted)";
  auto tokenizer = timed_load(dir / "tokenizer.json");
  EXPECT_FALSE(tokenizer->bos_id().has_value());
  EXPECT_EQ(tokenizer->eos_ids(), std::vector<int64_t>{151643});
  EXPECT_EQ(tokenizer->vocab_size(), 151646);
  expect_cases(*tokenizer, test::load_cases(dir / "cases.json"));
}

// encode() shares a word cache between threads; results must not depend on interleaving.
TEST(HfCases, ConcurrentEncode_SameIdsAsSerial) {
  auto tokenizer = load_tokenizer_json(test::repo_fixture("gpt2") / "tokenizer.json");
  const auto cases = test::load_cases(test::repo_fixture("gpt2") / "cases.json");
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (size_t t = 0; t < failures.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        for (size_t i = 0; i < cases.size(); ++i) {
          const Case& c = cases[(i + t * 7) % cases.size()];
          failures[t] += tokenizer->encode(c.text) != c.ids;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

// Special tokens written in the text are single ids, matched before any normalization.
TEST(HfCases, SpecialTokensInText_MatchedAsOneId) {
  auto gpt2 = load_tokenizer_json(test::repo_fixture("gpt2") / "tokenizer.json");
  const std::vector<int64_t> hello = gpt2->encode("Hello");
  const std::vector<int64_t> world = gpt2->encode(" world");
  std::vector<int64_t> expected = hello;
  expected.push_back(50256);
  expected.insert(expected.end(), world.begin(), world.end());
  EXPECT_EQ(gpt2->encode("Hello<|endoftext|> world"), expected);
  EXPECT_EQ(gpt2->decode(expected, /*skip_special=*/true), "Hello world");
  EXPECT_EQ(gpt2->decode(expected, /*skip_special=*/false), "Hello<|endoftext|> world");

  auto llama2 = load_tokenizer_json(test::repo_fixture("llama2") / "tokenizer.json");
  // Hugging Face (legacy Llama) normalizes each piece between added tokens on its own, so
  // "world" after "</s>" gets its own "▁".
  std::vector<int64_t> pieces = llama2->encode("Hi");
  pieces.push_back(2);
  const std::vector<int64_t> tail = llama2->encode("world");
  pieces.insert(pieces.end(), tail.begin(), tail.end());
  EXPECT_EQ(llama2->encode("Hi</s>world"), pieces);
  EXPECT_EQ(llama2->decode(pieces, /*skip_special=*/false), "Hi</s> world");
}

}  // namespace
}  // namespace pipeprune
