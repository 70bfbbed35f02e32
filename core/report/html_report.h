// `pipeprune report`: the JSON of `prune --report` as one self-contained HTML page (inline CSS
// and SVG, no scripts, nothing fetched): the run's settings, per-layer sparsity against the
// per-layer targets, the time split per layer, memory per rank against its estimate and budget
// (over time when the report names a --log-memory CSV), and the perplexity before and after.
// docs/report.md describes the page. Pure rendering plus one file read and one atomic write;
// any thread may call these, one rank suffices (the report is already gathered).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace pipeprune {

// What makes `report` not a prune report ("no \"layers\" array", ...); nullopt when it is one.
// Only the shape the page needs is checked; optional fields (targets, profile, memory log,
// perplexity) may be absent, as in reports of older versions.
std::optional<std::string> prune_report_problem(const nlohmann::json& report);

// The page. `memory_csv_text` is the content of the CSV the report's "memory_log" names, or
// empty when there is none or it could not be read (the page then says so in one line and
// shows the per-rank peaks instead). FormatError when prune_report_problem finds one.
std::string render_html_report(const nlohmann::json& report, const std::string& memory_csv_text);

// RUN.json -> RUN.html beside it (any other name gets ".html" appended).
std::filesystem::path default_html_path(const std::filesystem::path& json_path);

// Reads json_path and the memory log it names (a relative path is taken from json_path's
// folder; a missing log is a note on the page, not an error), renders, and writes html_path
// atomically. IoError or FormatError naming json_path: missing, not JSON, not a prune report.
void write_html_report(const std::filesystem::path& json_path, const std::filesystem::path& html_path);

}  // namespace pipeprune
