#include "core/tokenizer/hf_tokenizer.h"

#include <algorithm>

#include "core/common/error.h"
#include "core/tokenizer/unicode_text.h"

namespace pipeprune::tok {
namespace {

bool has_value(const Json& root, const char* key) {
  const auto it = root.find(key);
  return it != root.end() && !it->is_null();
}

}  // namespace

HfTokenizer::HfTokenizer(const Json& root, const std::string& file) {
  PIPEPRUNE_CHECK(root.is_object(), FormatError, file << ": expected a JSON object at the top level");
  if (has_value(root, "normalizer")) {
    normalizer_ = std::make_unique<Normalizer>(root["normalizer"], file + ": normalizer");
  }
  if (has_value(root, "pre_tokenizer")) {
    pre_tokenizer_ = std::make_unique<PreTokenizer>(root["pre_tokenizer"], file + ": pre_tokenizer");
  }
  PIPEPRUNE_CHECK(has_value(root, "model"), FormatError,
                  file << ": model is missing; not a Hugging Face tokenizer.json");
  model_ = std::make_unique<BpeModel>(root["model"], file + ": model");
  decoder_ = std::make_unique<Decoder>(has_value(root, "decoder") ? root["decoder"] : Json(),
                                       file + ": decoder");
  load_added_tokens(root, file);
  if (has_value(root, "post_processor")) load_template_bos(root["post_processor"], file + ": post_processor");
}

void HfTokenizer::load_added_tokens(const Json& root, const std::string& file) {
  std::vector<AddedToken> tokens;
  if (has_value(root, "added_tokens")) {
    const Json& list = root["added_tokens"];
    PIPEPRUNE_CHECK(list.is_array(), FormatError, file << ": added_tokens must be a list");
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string where = file + ": added_tokens[" + std::to_string(i) + "]";
      AddedToken t;
      t.content = json_string(list[i], "content", where);
      t.id = json_int_or(list[i], "id", -1, where);
      PIPEPRUNE_CHECK(t.id >= 0, FormatError, where << ".id is missing or negative");
      PIPEPRUNE_CHECK(utf8_is_valid(t.content), FormatError, where << ".content is not valid UTF-8");
      t.special = json_bool_or(list[i], "special", false, where);
      t.single_word = json_bool_or(list[i], "single_word", false, where);
      t.lstrip = json_bool_or(list[i], "lstrip", false, where);
      t.rstrip = json_bool_or(list[i], "rstrip", false, where);
      t.normalized = json_bool_or(list[i], "normalized", !t.special, where);
      tokens.push_back(std::move(t));
    }
  }
  added_ = std::make_unique<AddedVocabulary>(std::move(tokens), [this](const std::string& content) {
    return normalizer_ ? normalizer_->apply(content) : content;
  });
}

void HfTokenizer::load_template_bos(const Json& post_processor, const std::string& where) {
  const std::string type = json_type(post_processor, where);
  if (type == "Sequence") {
    const Json& list = json_field(post_processor, "processors", where);
    PIPEPRUNE_CHECK(list.is_array(), FormatError, where << ".processors must be a list");
    for (size_t i = 0; i < list.size(); ++i) {
      load_template_bos(list[i], where + ".processors[" + std::to_string(i) + "]");
    }
    return;
  }
  if (type != "TemplateProcessing") return;  // other processors add no BOS we model
  const Json& single = json_field(post_processor, "single", where);
  PIPEPRUNE_CHECK(single.is_array(), FormatError, where << ".single must be a list");
  if (single.empty() || !single[0].is_object() || !single[0].contains("SpecialToken")) return;
  const std::string name = json_string(single[0]["SpecialToken"], "id", where + ".single[0].SpecialToken");
  const Json& specials = json_field(post_processor, "special_tokens", where);
  const std::string special_where = where + ".special_tokens['" + name + "']";
  const Json& ids = json_field(json_field(specials, name.c_str(), where + ".special_tokens"), "ids", special_where);
  PIPEPRUNE_CHECK(ids.is_array() && !ids.empty() && ids[0].is_number_integer(), FormatError,
                  special_where << ".ids must list at least one integer id");
  template_bos_ = ids[0].get<int64_t>();
}

std::vector<int64_t> HfTokenizer::encode(std::string_view input) const {
  const std::string text = utf8_lossy(input);
  std::vector<int64_t> ids;
  ids.reserve(text.size() / 3 + 1);
  std::vector<PreToken> words;
  for (const TextSegment& raw : added_->split_raw(text)) {
    if (raw.id >= 0) {
      ids.push_back(raw.id);
      continue;
    }
    const std::string_view piece = std::string_view(text).substr(raw.begin, raw.end - raw.begin);
    const std::string normalized = normalizer_ ? normalizer_->apply(piece) : std::string(piece);
    for (const TextSegment& segment : added_->split_normalized(normalized)) {
      if (segment.id >= 0) {
        ids.push_back(segment.id);
        continue;
      }
      words.clear();
      words.push_back({normalized.substr(segment.begin, segment.end - segment.begin),
                       raw.begin == 0 && segment.begin == 0});
      if (pre_tokenizer_) pre_tokenizer_->apply(words);
      for (const PreToken& word : words) model_->tokenize(word.text, ids);
    }
  }
  return ids;
}

std::string HfTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids) {
    if (const AddedToken* added = added_->find(id)) {
      if (!(skip_special && added->special)) tokens.push_back(added->content);
    } else if (const std::string* token = model_->id_to_token(id)) {
      tokens.push_back(*token);
    }
  }
  return decoder_->decode(std::move(tokens));
}

int64_t HfTokenizer::vocab_size() const {
  int64_t limit = model_->id_limit();
  for (const AddedToken& t : added_->tokens()) limit = std::max(limit, t.id + 1);
  return limit;
}

std::optional<int64_t> HfTokenizer::token_to_id(std::string_view token) const {
  if (const AddedToken* added = added_->find(token)) return added->id;
  return model_->token_to_id(token);
}

bool HfTokenizer::is_byte_piece(int64_t id) const {
  if (added_->find(id) != nullptr) return false;
  const std::string* token = model_->id_to_token(id);
  return token != nullptr && decoder_->is_byte_piece(*token);
}

}  // namespace pipeprune::tok
