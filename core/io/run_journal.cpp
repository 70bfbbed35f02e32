#include "core/io/run_journal.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/common/error.h"
#include "core/common/files.h"

namespace pipeprune {
namespace {

constexpr const char* kRunFile = "run.json";
constexpr const char* kMarkerPrefix = "layer-";
constexpr const char* kMarkerSuffix = ".done";

std::filesystem::path folder_of(const std::filesystem::path& staged) { return staged / run_journal::kFolder; }

}  // namespace

std::string fnv1a_hex(const void* data, size_t n_bytes) {
  uint64_t hash = 14695981039346656037ULL;
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n_bytes; ++i) {
    hash ^= bytes[i];
    hash *= 1099511628211ULL;
  }
  return fmt::format("{:016x}", hash);
}

std::string fnv1a_hex(const std::string& bytes) { return fnv1a_hex(bytes.data(), bytes.size()); }

std::string fingerprint_difference(const RunFingerprint& saved, const RunFingerprint& now,
                                   const RunFingerprint& implied_when_unrecorded) {
  for (const auto& [field, value] : now) {
    const auto it = saved.find(field);
    if (it == saved.end()) {
      const auto implied = implied_when_unrecorded.find(field);
      if (implied != implied_when_unrecorded.end() && implied->second == value) continue;
      return fmt::format("{} was not recorded, now {}", field, value);
    }
    if (it->second != value) return fmt::format("{} was {}, now {}", field, it->second, value);
  }
  for (const auto& [field, value] : saved) {
    if (now.count(field) == 0) return fmt::format("{} was {}, now not set", field, value);
  }
  return "";
}

namespace run_journal {

bool exists(const std::filesystem::path& staged) { return std::filesystem::exists(folder_of(staged) / kRunFile); }

void write_fingerprint(const std::filesystem::path& staged, const RunFingerprint& fingerprint) {
  std::error_code ec;
  std::filesystem::create_directories(folder_of(staged), ec);
  PIPEPRUNE_CHECK(!ec, IoError, folder_of(staged).string() << ": cannot create the resume journal (" << ec.message() << ")");
  write_file_durable(folder_of(staged) / kRunFile, nlohmann::json(fingerprint).dump(2) + "\n");
}

std::optional<RunFingerprint> read_fingerprint(const std::filesystem::path& staged) {
  if (!run_journal::exists(staged)) return std::nullopt;
  const std::filesystem::path file = folder_of(staged) / kRunFile;
  const nlohmann::json json = read_json_file(file);
  PIPEPRUNE_CHECK(json.is_object(), FormatError, file.string() << ": the resume journal is not a JSON object");
  RunFingerprint fingerprint;
  for (const auto& [field, value] : json.items()) {
    PIPEPRUNE_CHECK(value.is_string(), FormatError, file.string() << ": field " << field << " is not a string");
    fingerprint[field] = value.get<std::string>();
  }
  return fingerprint;
}

void mark_layer_done(const std::filesystem::path& staged, int64_t layer) {
  write_file_durable(folder_of(staged) / fmt::format("{}{:05d}{}", kMarkerPrefix, layer, kMarkerSuffix), "done\n");
}

std::set<int64_t> done_layers(const std::filesystem::path& staged) {
  std::set<int64_t> layers;
  std::error_code ec;
  if (!std::filesystem::is_directory(folder_of(staged), ec)) return layers;
  const std::string prefix = kMarkerPrefix;
  const std::string suffix = kMarkerSuffix;
  for (const auto& entry : std::filesystem::directory_iterator(folder_of(staged), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) != 0 ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;  // a ".tmp" left by a crash mid-write, or anything else
    }
    const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    layers.insert(std::stoll(digits));
  }
  return layers;
}

void remove(const std::filesystem::path& staged) {
  std::error_code ec;
  std::filesystem::remove_all(folder_of(staged), ec);
  PIPEPRUNE_CHECK(!ec, IoError, folder_of(staged).string() << ": cannot remove the resume journal (" << ec.message() << ")");
}

}  // namespace run_journal
}  // namespace pipeprune
