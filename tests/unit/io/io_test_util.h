// Helpers for the io tests: temporary folders, raw byte files, and a deliberately naive
// safetensors parser written independently of core/io, used to cross-check what we read and write.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace pipeprune::testing {

namespace fs = std::filesystem;

inline fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("pipeprune_io_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

inline void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out.good()) throw std::runtime_error("cannot write " + path.string());
}

inline std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) throw std::runtime_error("cannot read " + path.string());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline std::string le64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return out;
}

// A safetensors file from a raw header text and raw data bytes (no validation, no padding).
inline std::string safetensors_bytes(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

struct MiniTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

// The naive reference: whole file in memory, nlohmann JSON, sizes checked by plain loops.
// Stricter than the product on purpose: it also requires the data area to be covered exactly
// (as the Hugging Face safetensors library does) and the header padded with spaces to 8 bytes.
inline std::map<std::string, MiniTensor> mini_read(const fs::path& path) {
  const std::string file = read_bytes(path);
  if (file.size() < 8) throw std::runtime_error("mini: too short");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(file[i]);
  if (n > file.size() - 8) throw std::runtime_error("mini: header past end");
  if (n % 8 != 0) throw std::runtime_error("mini: header length not a multiple of 8");
  const std::string header = file.substr(8, n);
  const size_t last = header.find_last_not_of(' ');
  if (last == std::string::npos || header[last] != '}') throw std::runtime_error("mini: bad padding");
  const nlohmann::json j = nlohmann::json::parse(header);
  const std::string data = file.substr(8 + n);
  std::map<std::string, MiniTensor> out;
  std::map<uint64_t, uint64_t> ranges;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    MiniTensor t;
    t.dtype = it.value().at("dtype").get<std::string>();
    uint64_t size = t.dtype == "F32" ? 4 : (t.dtype == "F16" || t.dtype == "BF16") ? 2 : 0;
    if (size == 0) throw std::runtime_error("mini: dtype " + t.dtype);
    for (const auto& d : it.value().at("shape")) {
      t.shape.push_back(d.get<int64_t>());
      size *= d.get<uint64_t>();
    }
    const uint64_t begin = it.value().at("data_offsets").at(0).get<uint64_t>();
    const uint64_t end = it.value().at("data_offsets").at(1).get<uint64_t>();
    if (end < begin || end > data.size() || end - begin != size) throw std::runtime_error("mini: offsets");
    t.bytes = data.substr(begin, end - begin);
    ranges[begin] = end;
    out[it.key()] = t;
  }
  uint64_t expect = 0;
  for (const auto& [begin, end] : ranges) {
    if (begin != expect) throw std::runtime_error("mini: gap or overlap at " + std::to_string(begin));
    expect = end;
  }
  if (expect != data.size()) throw std::runtime_error("mini: trailing bytes after the last tensor");
  return out;
}

}  // namespace pipeprune::testing
