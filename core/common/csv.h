// Reading RFC 4180 CSV, as the memory log writes it (core/memory/memory_log.h) and `pipeprune
// report` reads it back (core/report/memory_csv.h): records of fields, and one field as a number.
#pragma once

#include <charconv>
#include <string>
#include <system_error>
#include <vector>

#include "core/common/error.h"

namespace pipeprune {

// Fields split at commas; a quoted field may hold commas, "" (one quote) and line breaks; CRLF
// or LF ends a record; blank lines are skipped. FormatError naming `source` when a quoted field
// is not closed (the text was cut short).
std::vector<std::vector<std::string>> split_csv_records(const std::string& text, const std::string& source);

// One field as an integer or a double, all of it. FormatError naming `source`, the line and the
// column otherwise.
template <typename T>
T parse_csv_number(const std::string& field, const std::string& source, size_t line, const std::string& column) {
  T value{};
  const char* end = field.data() + field.size();
  const auto [ptr, ec] = std::from_chars(field.data(), end, value);
  PIPEPRUNE_CHECK(!field.empty() && ec == std::errc() && ptr == end, FormatError,
                  source << " line " << line << ": " << column << " '" << field << "' is not a number");
  return value;
}

}  // namespace pipeprune
