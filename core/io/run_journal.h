// The journal of a staged output folder, so a killed or failed prune can be resumed
// (prune --resume): which run wrote the folder, and which decoder layers reached it durably.
//
// It lives inside the staged folder, in ".pipeprune-journal/": run.json holds the run's
// fingerprint (everything that determines the result, as named fields), and one
// "layer-NNNNN.done" marker per finished layer, written by the rank that wrote the layer after
// its tensors were fsync'd. Every file is written durably (core/common/files.h): after a crash
// a marker exists only for a layer whose bytes are on disk. Markers are separate files, so
// ranks writing different layers never touch the same file, and a resume at another world size
// reads the same set. The journal is removed just before the folder is renamed into place.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>

namespace pipeprune {

// Field name -> value, e.g. {"method": "sparsegpt", "calibration_tokens": "fnv1a:..."}.
using RunFingerprint = std::map<std::string, std::string>;

// FNV-1a (64-bit) of the bytes, as 16 hex digits: a fingerprint field for data too large to keep.
std::string fnv1a_hex(const void* data, size_t n_bytes);
std::string fnv1a_hex(const std::string& bytes);

// The first field that differs between a saved and a current fingerprint, as
// "FIELD was A, now B" ("" when equal; a field only one side has counts as differing).
// `implied_when_unrecorded`: fields a journal written by an older build lacks, with the value
// that build always ran with; such a journal matches where the current value is that one, so a
// prune started before an option existed still resumes under the new build.
std::string fingerprint_difference(const RunFingerprint& saved, const RunFingerprint& now,
                                   const RunFingerprint& implied_when_unrecorded = {});

namespace run_journal {

inline constexpr const char* kFolder = ".pipeprune-journal";

bool exists(const std::filesystem::path& staged);
void write_fingerprint(const std::filesystem::path& staged, const RunFingerprint& fingerprint);
// nullopt without a journal; FormatError naming the file when it does not parse.
std::optional<RunFingerprint> read_fingerprint(const std::filesystem::path& staged);
void mark_layer_done(const std::filesystem::path& staged, int64_t layer);
std::set<int64_t> done_layers(const std::filesystem::path& staged);
// Removes the journal (before the commit's rename).
void remove(const std::filesystem::path& staged);

}  // namespace run_journal
}  // namespace pipeprune
