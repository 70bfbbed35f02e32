#include "core/tokenizer/json_fields.h"

#include "core/common/error.h"

namespace pipeprune::tok {

const Json& json_field(const Json& j, const char* key, const std::string& where) {
  PIPEPRUNE_CHECK(j.is_object(), FormatError, where << ": expected a JSON object, got " << j.type_name());
  const auto it = j.find(key);
  PIPEPRUNE_CHECK(it != j.end(), FormatError, where << "." << key << " is missing");
  return *it;
}

std::string json_string(const Json& j, const char* key, const std::string& where) {
  const Json& value = json_field(j, key, where);
  PIPEPRUNE_CHECK(value.is_string(), FormatError,
                  where << "." << key << " must be a string, got " << value.type_name());
  return value.get<std::string>();
}

namespace {
const Json* optional_field(const Json& j, const char* key, const std::string& where) {
  PIPEPRUNE_CHECK(j.is_object(), FormatError, where << ": expected a JSON object, got " << j.type_name());
  const auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}
}  // namespace

std::string json_string_or(const Json& j, const char* key, const std::string& fallback,
                           const std::string& where) {
  const Json* value = optional_field(j, key, where);
  if (value == nullptr) return fallback;
  PIPEPRUNE_CHECK(value->is_string(), FormatError,
                  where << "." << key << " must be a string, got " << value->type_name());
  return value->get<std::string>();
}

bool json_bool_or(const Json& j, const char* key, bool fallback, const std::string& where) {
  const Json* value = optional_field(j, key, where);
  if (value == nullptr) return fallback;
  PIPEPRUNE_CHECK(value->is_boolean(), FormatError,
                  where << "." << key << " must be true or false, got " << value->type_name());
  return value->get<bool>();
}

int64_t json_int_or(const Json& j, const char* key, int64_t fallback, const std::string& where) {
  const Json* value = optional_field(j, key, where);
  if (value == nullptr) return fallback;
  PIPEPRUNE_CHECK(value->is_number_integer(), FormatError,
                  where << "." << key << " must be an integer, got " << value->type_name());
  return value->get<int64_t>();
}

std::string json_type(const Json& j, const std::string& where) { return json_string(j, "type", where); }

std::string json_pattern(const Json& j, const char* key, bool* is_regex, const std::string& where) {
  const Json& pattern = json_field(j, key, where);
  const std::string field = where + "." + key;
  if (pattern.is_object() && pattern.contains("String")) {
    *is_regex = false;
    return json_string(pattern, "String", field);
  }
  if (pattern.is_object() && pattern.contains("Regex")) {
    *is_regex = true;
    return json_string(pattern, "Regex", field);
  }
  PIPEPRUNE_FAIL(FormatError, field << " must be {\"String\": ...} or {\"Regex\": ...}");
}

}  // namespace pipeprune::tok
