// Reading the text of --calib-data / --data files: plain UTF-8 text (one document, newlines
// kept), or JSON lines (.jsonl / .json: one object per line with a "text" field, C4 style).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace pipeprune {

struct TextSource {
  bool json_lines = false;
  std::vector<std::string> documents;  // one for plain text
};

// IoError when unreadable; FormatError naming the file and line for a bad JSON line or a line
// without a string "text" field.
TextSource read_text_source(const std::filesystem::path& path);

}  // namespace pipeprune
