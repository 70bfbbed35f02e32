// Checked access to tokenizer JSON fields (internal to core/tokenizer).
//
// `where` names the file and the field path, e.g. "/m/tokenizer.json: pre_tokenizer.pretokenizers[0]";
// every failure is a one-line FormatError that says which field is missing or of which wrong type.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace pipeprune::tok {

using Json = nlohmann::json;

// The member `key` of object j; FormatError when j is not an object or lacks it.
const Json& json_field(const Json& j, const char* key, const std::string& where);
std::string json_string(const Json& j, const char* key, const std::string& where);
// Optional members: the fallback when absent or null, FormatError on a wrong type.
std::string json_string_or(const Json& j, const char* key, const std::string& fallback,
                           const std::string& where);
bool json_bool_or(const Json& j, const char* key, bool fallback, const std::string& where);
int64_t json_int_or(const Json& j, const char* key, int64_t fallback, const std::string& where);
// The "type" member of a normalizer/pre-tokenizer/decoder object.
std::string json_type(const Json& j, const std::string& where);
// A Hugging Face pattern object {"String": s} or {"Regex": r}; is_regex tells which.
std::string json_pattern(const Json& j, const char* key, bool* is_regex, const std::string& where);

}  // namespace pipeprune::tok
