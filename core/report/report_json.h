// Tolerant reads of the prune report's fields for the page: a field that is absent, null or of
// another type is "not there" (std::nullopt), never an exception, so an older or partial
// report still renders whatever it has. prune_report_problem() checks the few fields the page
// cannot do without.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace pipeprune::report {

inline std::optional<double> number_at(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return std::nullopt;
  const auto it = object.find(key);
  if (it == object.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

inline std::optional<std::string> string_at(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return std::nullopt;
  const auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

// The value at `key` when it has the given JSON type, else a null json.
inline const nlohmann::json& member(const nlohmann::json& object, const char* key) {
  static const nlohmann::json kNull;
  if (!object.is_object()) return kNull;
  const auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

}  // namespace pipeprune::report
