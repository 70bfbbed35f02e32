// Shared helpers of the tokenizer tests: fixture paths and the ground-truth cases files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace pipeprune::test {

namespace fs = std::filesystem;

inline fs::path repo_fixture(const std::string& name) {
  return fs::path(PIPEPRUNE_SOURCE_DIR) / "tests/fixtures/tokenizers" / name;
}
inline fs::path shared_fixture(const std::string& name) {
  return fs::path(PIPEPRUNE_SHARED_FIXTURES) / "tokenizers" / name;
}
inline fs::path stories_dir() { return fs::path(PIPEPRUNE_SOURCE_DIR) / "examples/stories260K"; }
inline fs::path tinystories_text() {
  return fs::path(PIPEPRUNE_SOURCE_DIR) / "examples/text/tinystories_val.txt";
}

inline std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline nlohmann::json parse_file(const fs::path& path) { return nlohmann::json::parse(slurp(path)); }

struct Case {
  std::string text;
  std::vector<int64_t> ids;
  bool add_bos = false;
};

// cases.json is either {"cases": [...]} or a bare list of {text, ids, add_bos}.
inline std::vector<Case> load_cases(const fs::path& path) {
  const nlohmann::json root = parse_file(path);
  const nlohmann::json& list = root.is_object() ? root.at("cases") : root;
  std::vector<Case> cases;
  for (const auto& c : list) {
    cases.push_back({c.at("text").get<std::string>(), c.at("ids").get<std::vector<int64_t>>(),
                     c.value("add_bos", false)});
  }
  return cases;
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace pipeprune::test
