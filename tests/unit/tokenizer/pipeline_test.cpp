// The parts of a tokenizer.json one at a time, on tiny hand-made tokenizers whose results are
// worked out by hand from Hugging Face's documented semantics, plus the newer Metaspace layout
// of the Llama-2 tokenizer checked against the ground-truth cases.
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/unicode_text.h"
#include "unit/tokenizer/tokenizer_test_util.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Ids = std::vector<int64_t>;

const std::string kSpace = "\xE2\x96\x81";  // ▁

// Writes the tokenizer (and optional config files) to a fresh folder and loads it.
std::unique_ptr<Tokenizer> load_json(const json& tokenizer, const std::string& name,
                                     const std::map<std::string, std::string>& configs = {}) {
  const fs::path dir = fs::temp_directory_path() / ("pipeprune_tokenizer_pipeline_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << tokenizer.dump();
  for (const auto& [file, text] : configs) std::ofstream(dir / file) << text;
  return load_tokenizer(dir);
}

// Characters a, b, -, space; merges a+- (rank 0), -+b, a+b, -+-.
json dash_tokenizer() {
  return {{"model",
           {{"type", "BPE"},
            {"vocab", {{"a", 0}, {"b", 1}, {"-", 2}, {" ", 3}, {"a-", 4}, {"-b", 5}, {"ab", 6}, {"--", 7}}},
            {"merges", {"a -", "- b", "a b", "- -"}}}}};
}

json with_split(json t, const std::string& behavior, bool invert = false) {
  t["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}};
  return t;
}

TEST(Pipeline, SplitBehaviors_AsHuggingFaceGroupsDelimiters) {
  EXPECT_EQ(load_json(dash_tokenizer(), "none")->encode("a-b"), (Ids{4, 1}));  // a- first (rank 0)
  EXPECT_EQ(load_json(with_split(dash_tokenizer(), "Isolated"), "iso")->encode("a-b"), (Ids{0, 2, 1}));
  EXPECT_EQ(load_json(with_split(dash_tokenizer(), "Removed"), "rem")->encode("a-b"), (Ids{0, 1}));
  EXPECT_EQ(load_json(with_split(dash_tokenizer(), "MergedWithPrevious"), "prev")->encode("a-b"), (Ids{4, 1}));
  EXPECT_EQ(load_json(with_split(dash_tokenizer(), "MergedWithNext"), "next")->encode("a-b"), (Ids{0, 5}));
  EXPECT_EQ(load_json(with_split(dash_tokenizer(), "Isolated"), "iso2")->encode("a--b"), (Ids{0, 2, 2, 1}));
  EXPECT_EQ(load_json(with_split(dash_tokenizer(), "Contiguous"), "cont")->encode("a--b"), (Ids{0, 7, 1}));
  // Inverted, the text between dashes is the delimiter: Removed keeps only the dashes.
  EXPECT_EQ(load_json(with_split(dash_tokenizer(), "Removed", true), "inv")->encode("a-b-"), (Ids{2, 2}));
}

TEST(Pipeline, AddedTokens_LongestMatchAndStripFlags) {
  json t = dash_tokenizer();
  t["added_tokens"] = {
      {{"id", 10}, {"content", "<x>"}, {"lstrip", true}, {"special", true}, {"normalized", false}},
      {{"id", 11}, {"content", "<y>"}, {"rstrip", true}, {"special", true}, {"normalized", false}},
      {{"id", 12}, {"content", "<x>>"}, {"special", false}, {"normalized", false}},
      {{"id", 13}, {"content", "ab"}, {"single_word", true}, {"normalized", false}},
  };
  auto tokenizer = load_json(t, "added");
  EXPECT_EQ(tokenizer->encode("a <x> b"), (Ids{0, 10, 3, 1}));   // lstrip eats the space before
  EXPECT_EQ(tokenizer->encode("a <y> b"), (Ids{0, 3, 11, 1}));   // rstrip eats the space after
  EXPECT_EQ(tokenizer->encode("a<x>>b"), (Ids{0, 12, 1}));       // the longest token wins
  EXPECT_EQ(tokenizer->encode("ab ab"), (Ids{13, 3, 13}));       // whole words
  EXPECT_EQ(tokenizer->encode("aab"), (Ids{0, 6}));              // inside a word: not the token
  // No decoder: Hugging Face joins the tokens with spaces; the special <x> is skipped.
  EXPECT_EQ(tokenizer->decode({0, 10, 12, 1}), "a <x>> b");
  EXPECT_EQ(tokenizer->decode({0, 10, 12, 1}, /*skip_special=*/false), "a <x> <x>> b");
}

TEST(Pipeline, NormalizedAddedToken_MatchedAfterNormalization) {
  json t = dash_tokenizer();
  t["normalizer"] = {{"type", "Replace"}, {"pattern", {{"String", "-"}}}, {"content", "b"}};
  t["added_tokens"] = {{{"id", 20}, {"content", "--"}, {"normalized", true}},
                       {{"id", 21}, {"content", "a-"}, {"normalized", false}}};
  auto tokenizer = load_json(t, "normalized_added");
  // "a-" is found in the raw text; "--" only as its normalized form "bb".
  EXPECT_EQ(tokenizer->encode("a-b--"), (Ids{21, 20, 1}));
  EXPECT_EQ(tokenizer->encode("bb"), (Ids{20}));
}

TEST(Pipeline, UnknownCharacters_UnkFusedOrNot) {
  json t = {{"model", {{"type", "BPE"}, {"vocab", {{"<unk>", 0}, {"a", 1}, {"b", 2}}}, {"merges", json::array()},
                       {"unk_token", "<unk>"}, {"fuse_unk", true}}}};
  EXPECT_EQ(load_json(t, "fuse")->encode("axyb"), (Ids{1, 0, 2}));
  t["model"]["fuse_unk"] = false;
  EXPECT_EQ(load_json(t, "nofuse")->encode("ax\xC3\xA9" "b"), (Ids{1, 0, 0, 2}));
  t["model"].erase("unk_token");
  EXPECT_EQ(load_json(t, "nounk")->encode("axb"), (Ids{1, 2}));  // dropped, as HF does
}

TEST(Pipeline, IgnoreMerges_WholeWordInVocabIsOneToken) {
  json t = {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", json::array()}}}};
  EXPECT_EQ(load_json(t, "merges")->encode("ab"), (Ids{0, 1}));
  t["model"]["ignore_merges"] = true;
  EXPECT_EQ(load_json(t, "ignore")->encode("ab"), (Ids{2}));
}

TEST(Pipeline, MergesAsPairs_SameAsStrings) {
  json t = dash_tokenizer();
  t["model"]["merges"] = json::array({json::array({"a", "-"}), json::array({"-", "b"}),
                                      json::array({"a", "b"}), json::array({"-", "-"})});
  EXPECT_EQ(load_json(t, "pairs")->encode("a-b"), (Ids{4, 1}));
}

TEST(Pipeline, NfcNormalizer_ComposesBeforeLookup) {
  json t = {{"normalizer", {{"type", "NFC"}}},
            {"model", {{"type", "BPE"}, {"vocab", {{"\xC3\xA9", 0}, {"e", 1}}}, {"merges", json::array()}}}};
  EXPECT_EQ(load_json(t, "nfc")->encode("e\xCC\x81"), (Ids{0}));  // e + U+0301 -> é
}

TEST(Pipeline, ByteLevelPrefixSpace_AddsLeadingSpace) {
  json gpt2 = test::parse_file(test::repo_fixture("gpt2") / "tokenizer.json");
  auto plain = load_json(gpt2, "gpt2");
  gpt2["pre_tokenizer"]["add_prefix_space"] = true;
  auto prefixed = load_json(gpt2, "gpt2_prefix");
  EXPECT_EQ(prefixed->encode("Hello world"), plain->encode(" Hello world"));
  EXPECT_EQ(prefixed->encode(" Hello"), plain->encode(" Hello"));  // already has one
}

TEST(Pipeline, InvalidUtf8Input_ReadAsReplacementCharacter) {
  auto gpt2 = load_tokenizer_json(test::repo_fixture("gpt2") / "tokenizer.json");
  EXPECT_EQ(gpt2->encode("a\xFF" "b"), gpt2->encode("a\xEF\xBF\xBD" "b"));
}

// The newer Llama/Mistral layout: no normalizer, Metaspace(prepend_scheme "first", split false).
json llama2_metaspace(const std::string& scheme, bool split) {
  json t = test::parse_file(test::repo_fixture("llama2") / "tokenizer.json");
  t["normalizer"] = nullptr;
  t["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", kSpace}, {"prepend_scheme", scheme}, {"split", split}};
  return t;
}

// Same ids as the legacy layout, except that a text starting with a space gets no extra "▁"
// (Metaspace replaces the space first, then sees the text already starts with "▁").
TEST(Pipeline, MetaspaceFirstLayout_Llama2CasesExact) {
  auto tokenizer = load_json(llama2_metaspace("first", false), "metaspace_first",
                             {{"tokenizer_config.json", R"({"add_bos_token": true, "bos_token": "<s>"})"}});
  auto legacy = load_tokenizer_json(test::repo_fixture("llama2") / "tokenizer.json");
  size_t leading_space = 0;
  for (const test::Case& c : test::load_cases(test::repo_fixture("llama2") / "cases.json")) {
    const Ids ids = c.add_bos ? tokenizer->encode_with_bos(c.text) : tokenizer->encode(c.text);
    if (!c.text.empty() && c.text[0] == ' ') {
      ++leading_space;
      // " " alone becomes "▁"; the legacy normalizer prepends nothing to an empty text.
      EXPECT_EQ(ids, c.text == " " ? Ids{29871} : legacy->encode(c.text.substr(1))) << c.text;
    } else {
      EXPECT_EQ(ids, c.ids) << c.text;
    }
  }
  EXPECT_GT(leading_space, 5u);
}

TEST(Pipeline, MetaspacePrependSchemes_DifferAfterAddedToken) {
  auto first = load_json(llama2_metaspace("first", false), "scheme_first");
  auto always = load_json(llama2_metaspace("always", false), "scheme_always");
  const auto world = first->token_to_id("world"), space_world = first->token_to_id(kSpace + "world");
  ASSERT_TRUE(world && space_world);
  const Ids hi = first->encode("Hi");
  Ids expected_first = hi, expected_always = hi;
  expected_first.insert(expected_first.end(), {2, *world});
  expected_always.insert(expected_always.end(), {2, *space_world});
  EXPECT_EQ(first->encode("Hi</s>world"), expected_first);
  EXPECT_EQ(always->encode("Hi</s>world"), expected_always);
}

TEST(Pipeline, MetaspaceSplit_WordsTokenizedApart) {
  auto split = load_json(llama2_metaspace("always", true), "metaspace_split");
  const auto a = split->token_to_id(kSpace + "a"), b = split->token_to_id(kSpace + "b"),
             space = split->token_to_id(kSpace);
  ASSERT_TRUE(a && b && space);
  // "▁a", "▁", "▁", "▁", "▁b" are separate words, so no token can span two of them.
  EXPECT_EQ(split->encode("a    b"), (Ids{*a, *space, *space, *space, *b}));
  // Without the split the whole "▁a▁▁▁▁b" is one word, as in the legacy layout.
  auto joined = load_json(llama2_metaspace("always", false), "metaspace_nosplit");
  auto legacy = load_tokenizer_json(test::repo_fixture("llama2") / "tokenizer.json");
  EXPECT_EQ(joined->encode("a    b"), legacy->encode("a    b"));
  EXPECT_LT(joined->encode("a    b").size(), 5u);
}

TEST(Pipeline, MetaspaceDecoder_DropsReplacementsOfFirstToken) {
  json t = test::parse_file(test::repo_fixture("llama2") / "tokenizer.json");
  t["decoder"] = {{"type", "Metaspace"}, {"replacement", kSpace}, {"prepend_scheme", "always"}};
  auto tokenizer = load_json(t, "metaspace_decoder");
  const auto two = tokenizer->token_to_id(kSpace + kSpace);
  ASSERT_TRUE(two);
  EXPECT_EQ(tokenizer->decode({15043, 3186}), "Hello world");
  EXPECT_EQ(tokenizer->decode({*two, 15043}), " Hello");    // every ▁ of the first token goes
  EXPECT_EQ(tokenizer->decode({15043, *two}), "Hello  ");
}

TEST(Pipeline, SpecialIds_FromConfigFiles) {
  json t = dash_tokenizer();
  t["added_tokens"] = {{{"id", 30}, {"content", "<s>"}, {"special", true}},
                       {{"id", 31}, {"content", "</s>"}, {"special", true}},
                       {{"id", 32}, {"content", "<eot>"}, {"special", true}}};
  t["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                     {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                         {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {30}}, {"tokens", {"<s>"}}}}}}};
  // The template's BOS, no EOS anywhere.
  auto bare = load_json(t, "ids_bare");
  EXPECT_EQ(bare->bos_id(), std::optional<int64_t>(30));
  EXPECT_TRUE(bare->eos_ids().empty());
  EXPECT_EQ(bare->encode_with_bos("ab"), (Ids{30, 6}));
  // tokenizer_config.json decides BOS; generation_config.json lists EOS ids over the others.
  auto configured = load_json(t, "ids_configured",
                              {{"tokenizer_config.json", R"({"add_bos_token": false, "eos_token": {"content": "</s>"}})"},
                               {"generation_config.json", R"({"eos_token_id": [31, 32]})"},
                               {"config.json", R"({"eos_token_id": 99})"}});
  EXPECT_FALSE(configured->bos_id().has_value());
  EXPECT_EQ(configured->eos_ids(), (Ids{31, 32}));
  EXPECT_EQ(configured->encode_with_bos("ab"), (Ids{6}));
  auto by_name = load_json(t, "ids_by_name", {{"tokenizer_config.json", R"({"eos_token": "<eot>"})"},
                                             {"config.json", R"({"eos_token_id": 31})"}});
  EXPECT_EQ(by_name->eos_ids(), (Ids{32}));
  auto from_model_config = load_json(t, "ids_model_config", {{"config.json", R"({"eos_token_id": [31]})"}});
  EXPECT_EQ(from_model_config->eos_ids(), (Ids{31}));
}

TEST(Unicode, Utf8Lossy_OneReplacementPerMaximalSubpart) {
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(tok::utf8_lossy("abc"), "abc");
  EXPECT_EQ(tok::utf8_lossy("\xE4\xB8"), fffd);                      // truncated 3-byte char
  EXPECT_EQ(tok::utf8_lossy("\xE4" "A"), fffd + "A");
  EXPECT_EQ(tok::utf8_lossy("\xF0\x9F\x98"), fffd);                  // truncated 4-byte char
  EXPECT_EQ(tok::utf8_lossy("\xC0\xAF"), fffd + fffd);               // overlong: two bad bytes
  EXPECT_EQ(tok::utf8_lossy("\xED\xA0\x80"), fffd + fffd + fffd);    // surrogate
  EXPECT_EQ(tok::utf8_lossy("\xF4\x90\x80\x80"), fffd + fffd + fffd + fffd);  // above U+10FFFF
}

TEST(Unicode, ByteLevelMap_Gpt2Characters) {
  const auto& chars = tok::byte_level_chars();
  EXPECT_EQ(chars[' '], "\xC4\xA0");   // Ġ U+0120
  EXPECT_EQ(chars['\n'], "\xC4\x8A");  // Ċ U+010A
  EXPECT_EQ(chars['a'], "a");
  EXPECT_EQ(chars[0xAD], "\xC5\x83");  // Ń U+0143: the 68th shifted byte
  EXPECT_EQ(chars[0xE9], "\xC3\xA9");  // é stands for itself
  for (int b = 0; b < 256; ++b) {
    size_t i = 0;
    EXPECT_EQ(tok::byte_level_byte(tok::utf8_next(chars[b], i)), b);
  }
  EXPECT_EQ(tok::byte_level_byte(U'\u4E2D'), -1);
}

}  // namespace
}  // namespace pipeprune
