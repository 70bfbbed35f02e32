#include "core/common/csv.h"

namespace pipeprune {

std::vector<std::vector<std::string>> split_csv_records(const std::string& text, const std::string& source) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> record;
  std::string field;
  bool quoted = false;
  bool any = false;  // something seen on this record (an empty quoted field counts)
  const auto end_record = [&] {
    if (any || !field.empty()) {
      record.push_back(std::move(field));
      records.push_back(std::move(record));
    }
    field.clear();
    record.clear();
    any = false;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
      any = true;
    } else if (c == ',') {
      record.push_back(std::move(field));
      field.clear();
      any = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      end_record();
    } else {
      field += c;
      any = true;
    }
  }
  PIPEPRUNE_CHECK(!quoted, FormatError, source << ": a quoted field is not closed; the file was cut short");
  end_record();
  return records;
}

}  // namespace pipeprune
