#include "core/tokenizer/special_ids.h"

#include "core/common/error.h"
#include "core/common/files.h"
#include "core/tokenizer/json_fields.h"

namespace pipeprune::tok {
namespace {

std::optional<Json> read_optional_json(const fs::path& path) {
  if (!fs::exists(path)) return std::nullopt;
  Json j = read_json_file(path);
  PIPEPRUNE_CHECK(j.is_object(), FormatError, path.string() << ": expected a JSON object at the top level");
  return j;
}

const Json* present(const Json& j, const char* key) {
  const auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

// "bos_token": "<s>" or {"content": "<s>", ...}.
std::optional<std::string> token_name(const Json& config, const char* key, const std::string& where) {
  const Json* value = present(config, key);
  if (value == nullptr) return std::nullopt;
  if (value->is_string()) return value->get<std::string>();
  return json_string(*value, "content", where + ": " + key);
}

// "eos_token_id": 2 or [128001, 128009].
std::vector<int64_t> id_list(const Json& value, const std::string& where) {
  std::vector<int64_t> ids;
  if (value.is_number_integer()) {
    ids.push_back(value.get<int64_t>());
  } else if (value.is_array()) {
    for (const Json& id : value) {
      PIPEPRUNE_CHECK(id.is_number_integer(), FormatError, where << " must list integer ids");
      ids.push_back(id.get<int64_t>());
    }
  } else {
    PIPEPRUNE_FAIL(FormatError, where << " must be an integer id or a list of ids, got " << value.type_name());
  }
  for (int64_t id : ids) PIPEPRUNE_CHECK(id >= 0, FormatError, where << " holds a negative id " << id);
  return ids;
}

int64_t resolve(const Tokenizer& tokenizer, const std::string& name, const std::string& where) {
  const auto id = tokenizer.token_to_id(name);
  PIPEPRUNE_CHECK(id.has_value(), FormatError,
                  where << " '" << name << "' is not a token of the tokenizer; fix the config file");
  return *id;
}

}  // namespace

void assign_special_ids(Tokenizer& tokenizer, const fs::path& config_dir,
                        const SpecialDefaults& defaults) {
  const fs::path tokenizer_config_path = config_dir / "tokenizer_config.json";
  const fs::path generation_config_path = config_dir / "generation_config.json";
  const fs::path model_config_path = config_dir / "config.json";
  const std::optional<Json> tokenizer_config = read_optional_json(tokenizer_config_path);
  const std::optional<Json> generation_config = read_optional_json(generation_config_path);
  const std::optional<Json> model_config = read_optional_json(model_config_path);
  const std::string tc_where = tokenizer_config_path.string();

  std::optional<int64_t> bos = defaults.bos;
  if (tokenizer_config && present(*tokenizer_config, "add_bos_token")) {
    if (!json_bool_or(*tokenizer_config, "add_bos_token", false, tc_where)) {
      bos.reset();
    } else {
      if (const auto name = token_name(*tokenizer_config, "bos_token", tc_where)) {
        bos = resolve(tokenizer, *name, tc_where + ": bos_token");
      } else if (!bos && model_config && present(*model_config, "bos_token_id")) {
        const auto ids = id_list((*model_config)["bos_token_id"], model_config_path.string() + ": bos_token_id");
        if (!ids.empty()) bos = ids.front();
      }
      PIPEPRUNE_CHECK(bos.has_value(), FormatError,
                      tc_where << ": add_bos_token is true but no bos_token is named; set bos_token");
    }
  }

  std::vector<int64_t> eos = defaults.eos;
  if (generation_config && present(*generation_config, "eos_token_id")) {
    eos = id_list((*generation_config)["eos_token_id"], generation_config_path.string() + ": eos_token_id");
  } else if (const auto name = tokenizer_config ? token_name(*tokenizer_config, "eos_token", tc_where)
                                                : std::nullopt) {
    eos = {resolve(tokenizer, *name, tc_where + ": eos_token")};
  } else if (model_config && present(*model_config, "eos_token_id")) {
    eos = id_list((*model_config)["eos_token_id"], model_config_path.string() + ": eos_token_id");
  }
  tokenizer.set_special_ids(bos, std::move(eos));
}

}  // namespace pipeprune::tok
