#include "core/tokenizer/tokenizer.h"

#include "core/common/error.h"
#include "core/common/files.h"
#include "core/common/log.h"
#include "core/tokenizer/hf_tokenizer.h"
#include "core/tokenizer/sentencepiece_tokenizer.h"
#include "core/tokenizer/special_ids.h"

namespace pipeprune {

std::vector<int64_t> Tokenizer::encode_with_bos(std::string_view text) const {
  std::vector<int64_t> ids;
  if (bos_id_) ids.push_back(*bos_id_);
  std::vector<int64_t> body = encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

namespace {
fs::path folder_of(const fs::path& file, const fs::path& config_dir) {
  if (!config_dir.empty()) return config_dir;
  return file.has_parent_path() ? file.parent_path() : fs::path(".");
}
}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer_json(const fs::path& tokenizer_json, const fs::path& config_dir) {
  const nlohmann::json root = read_json_file(tokenizer_json);
  auto tokenizer = std::make_unique<tok::HfTokenizer>(root, tokenizer_json.string());
  tok::SpecialDefaults defaults;
  defaults.bos = tokenizer->template_bos();
  tok::assign_special_ids(*tokenizer, folder_of(tokenizer_json, config_dir), defaults);
  return tokenizer;
}

std::unique_ptr<Tokenizer> load_sentencepiece_model(const fs::path& model_file, const fs::path& config_dir) {
  auto tokenizer = std::make_unique<tok::SentencePieceTokenizer>(model_file);
  tok::SpecialDefaults defaults;
  defaults.bos = tokenizer->model_bos();  // Llama convention: a bare SentencePiece model adds BOS
  if (const auto eos = tokenizer->model_eos()) defaults.eos = {*eos};
  tok::assign_special_ids(*tokenizer, folder_of(model_file, config_dir), defaults);
  return tokenizer;
}

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& model_dir) {
  const fs::path json_path = model_dir / "tokenizer.json";
  const fs::path model_path = model_dir / "tokenizer.model";
  std::unique_ptr<Tokenizer> tokenizer;
  if (fs::exists(json_path)) {
    tokenizer = load_tokenizer_json(json_path, model_dir);
  } else if (fs::exists(model_path)) {
    tokenizer = load_sentencepiece_model(model_path, model_dir);
  } else {
    PIPEPRUNE_FAIL(FormatError, model_dir.string()
                                    << ": no tokenizer.json or tokenizer.model in the model folder; "
                                       "copy the model's tokenizer files next to config.json");
  }
  log::debug("tokenizer: {} (vocab {}, bos {}, {} eos ids)",
             fs::exists(json_path) ? json_path.string() : model_path.string(), tokenizer->vocab_size(),
             tokenizer->bos_id() ? std::to_string(*tokenizer->bos_id()) : "none",
             tokenizer->eos_ids().size());
  return tokenizer;
}

}  // namespace pipeprune
