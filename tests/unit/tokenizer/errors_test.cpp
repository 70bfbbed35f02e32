// Bad inputs: missing files, invalid JSON, unsupported tokenizer.json parts, broken config
// files. Each is one error of the right type whose one-line message names the file and field.
#include <fstream>

#include <gtest/gtest.h>

#include "core/common/error.h"
#include "core/tokenizer/tokenizer.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("pipeprune_tokenizer_errors_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

json minimal_bpe() {
  return {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}, {"<s>", 3}}}, {"merges", {"a b"}}};
}

json minimal_tokenizer() {
  return {{"model", minimal_bpe()}, {"normalizer", nullptr}, {"pre_tokenizer", nullptr}, {"decoder", nullptr}};
}

// Loads DIR/tokenizer.json; expects ErrorType whose message holds every fragment on one line.
template <typename ErrorType>
void expect_load_error(const fs::path& dir, const std::vector<std::string>& fragments) {
  try {
    load_tokenizer(dir);
    ADD_FAILURE() << "loading " << dir << " did not fail";
  } catch (const ErrorType& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    for (const std::string& fragment : fragments) {
      EXPECT_NE(message.find(fragment), std::string::npos) << "'" << fragment << "' not in: " << message;
    }
  }
}

void expect_tokenizer_error(const std::string& name, const json& tokenizer,
                            const std::vector<std::string>& fragments) {
  const fs::path dir = fresh_dir(name);
  write(dir / "tokenizer.json", tokenizer.dump());
  std::vector<std::string> all = fragments;
  all.push_back((dir / "tokenizer.json").string());
  expect_load_error<FormatError>(dir, all);
}

TEST(TokenizerErrors, NoTokenizerFiles_FormatErrorNamingFolder) {
  const fs::path dir = fresh_dir("empty");
  expect_load_error<FormatError>(dir, {dir.string(), "tokenizer.json", "tokenizer.model"});
}

TEST(TokenizerErrors, MissingExplicitFile_IoError) {
  EXPECT_THROW(load_tokenizer_json(fresh_dir("missing") / "tokenizer.json"), IoError);
}

TEST(TokenizerErrors, InvalidJson_FormatErrorNamingFile) {
  const fs::path dir = fresh_dir("invalid_json");
  write(dir / "tokenizer.json", "{\"model\": {\"type\": \"BPE\",");
  expect_load_error<FormatError>(dir, {(dir / "tokenizer.json").string(), "invalid JSON"});
}

TEST(TokenizerErrors, WordPieceOrUnigram_FormatErrorNamingModelType) {
  json wordpiece = minimal_tokenizer();
  wordpiece["model"] = {{"type", "WordPiece"}, {"vocab", {{"a", 0}}}, {"unk_token", "[UNK]"}};
  expect_tokenizer_error("wordpiece", wordpiece, {"model.type", "WordPiece"});
  json unigram = minimal_tokenizer();
  unigram["model"] = {{"type", "Unigram"}, {"vocab", json::array({json::array({"a", -1.0})})}};
  expect_tokenizer_error("unigram", unigram, {"model.type", "Unigram"});
}

TEST(TokenizerErrors, UnsupportedNormalizer_FormatErrorNamingField) {
  json t = minimal_tokenizer();
  t["normalizer"] = {{"type", "Sequence"},
                     {"normalizers", {{{"type", "NFC"}}, {{"type", "BertNormalizer"}}}}};
  expect_tokenizer_error("normalizer", t, {"normalizer.normalizers[1].type", "BertNormalizer"});
}

TEST(TokenizerErrors, UnsupportedPreTokenizer_FormatErrorNamingField) {
  json t = minimal_tokenizer();
  t["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_tokenizer_error("pre_tokenizer", t, {"pre_tokenizer.type", "Whitespace"});
  t["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  expect_tokenizer_error("regex", t, {"pre_tokenizer.pattern.Regex", "does not compile"});
  t["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", "Sideways"}};
  expect_tokenizer_error("behavior", t, {"pre_tokenizer.behavior", "Sideways"});
}

TEST(TokenizerErrors, UnsupportedDecoder_FormatErrorNamingField) {
  json t = minimal_tokenizer();
  t["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}};
  expect_tokenizer_error("decoder", t, {"decoder.type", "WordPiece"});
}

TEST(TokenizerErrors, BrokenModel_FormatErrorNamingField) {
  json t = minimal_tokenizer();
  t["model"]["merges"] = {"a c"};
  expect_tokenizer_error("merge_unknown", t, {"model.merges[0]", "'c'"});
  t = minimal_tokenizer();
  t["model"]["merges"] = {"ab"};
  expect_tokenizer_error("merge_format", t, {"model.merges[0]"});
  t = minimal_tokenizer();
  t["model"]["vocab"]["c"] = "three";
  expect_tokenizer_error("vocab_id", t, {"model.vocab['c']"});
  t = minimal_tokenizer();
  t["model"]["unk_token"] = "<unk>";
  expect_tokenizer_error("unk", t, {"model.unk_token", "<unk>"});
  t = minimal_tokenizer();
  t.erase("model");
  expect_tokenizer_error("no_model", t, {"model is missing"});
  t = minimal_tokenizer();
  t["added_tokens"] = {{{"content", "<x>"}}};
  expect_tokenizer_error("added_id", t, {"added_tokens[0].id"});
}

TEST(TokenizerErrors, BrokenConfigFiles_FormatErrorNamingFileAndField) {
  const fs::path dir = fresh_dir("configs");
  write(dir / "tokenizer.json", minimal_tokenizer().dump());
  write(dir / "generation_config.json", R"({"eos_token_id": "end"})");
  expect_load_error<FormatError>(dir, {(dir / "generation_config.json").string(), "eos_token_id"});
  fs::remove(dir / "generation_config.json");
  write(dir / "tokenizer_config.json", R"({"add_bos_token": true, "bos_token": "<bos>"})");
  expect_load_error<FormatError>(dir, {(dir / "tokenizer_config.json").string(), "bos_token", "<bos>"});
  write(dir / "tokenizer_config.json", R"({"add_bos_token": "yes"})");
  expect_load_error<FormatError>(dir, {(dir / "tokenizer_config.json").string(), "add_bos_token"});
  write(dir / "tokenizer_config.json", "{oops");
  expect_load_error<FormatError>(dir, {(dir / "tokenizer_config.json").string(), "invalid JSON"});
}

}  // namespace
}  // namespace pipeprune
