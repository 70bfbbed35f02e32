#include "core/data/text_source.h"

#include <nlohmann/json.hpp>

#include "core/common/error.h"
#include "core/common/files.h"

namespace pipeprune {
namespace {

bool is_json_lines(const std::filesystem::path& path) {
  const std::string ext = path.extension().string();
  return ext == ".jsonl" || ext == ".json";
}

}  // namespace

TextSource read_text_source(const std::filesystem::path& path) {
  TextSource source;
  std::string bytes = read_file(path);
  if (!is_json_lines(path)) {
    source.documents.push_back(std::move(bytes));
    return source;
  }
  source.json_lines = true;
  size_t line_number = 0;
  size_t begin = 0;
  while (begin < bytes.size()) {
    size_t end = bytes.find('\n', begin);
    if (end == std::string::npos) end = bytes.size();
    ++line_number;
    const std::string_view line(bytes.data() + begin, end - begin);
    begin = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    nlohmann::json object;
    try {
      object = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for numbers like 1e405
      PIPEPRUNE_FAIL(FormatError, path.string() << ":" << line_number << ": invalid JSON line (" << e.what() << ")");
    }
    PIPEPRUNE_CHECK(object.is_object() && object.contains("text") && object["text"].is_string(), FormatError,
                    path.string() << ":" << line_number << ": expected an object with a string \"text\" field");
    source.documents.push_back(object["text"].get<std::string>());
  }
  return source;
}

}  // namespace pipeprune
