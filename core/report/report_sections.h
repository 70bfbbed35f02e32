// The sections of the report page, each an HTML fragment (a <section> with its heading, tables,
// inline SVG charts and legends) from a report that passed prune_report_problem(). Each section
// leaves out what the report does not have (per-layer targets, the sparsity profile, a memory
// log, perplexities), so older reports render too. Pure functions.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace pipeprune::report {

// The run's settings as a table: the "settings" object when there is one, else every
// top-level field that is not one of the report's own sections (prune writes them flat).
std::string settings_section(const nlohmann::json& report);
// Bars of each layer's measured sparsity per linear, the layer's target as a marker, and the
// sparsity profile (kind, per-layer targets, outlier percentages) when the report has one.
std::string sparsity_section(const nlohmann::json& report);
// Stacked bars of each layer's statistics, prune and output seconds (and reduce when non-zero).
std::string time_section(const nlohmann::json& report);
// Each rank's host memory against its estimate and budget: over time from the memory log's
// CSV text when the report names one (a note when the text is empty or unreadable), as peak
// bars otherwise.
std::string memory_section(const nlohmann::json& report, const std::string& memory_csv_text);
// Dense and pruned perplexity as numbers, and two bars when both are there.
std::string perplexity_section(const nlohmann::json& report);

// The linear names of the report's layers: the usual projection order first (q, k, v, o, gate,
// up, down, fused qkv and gate_up, with or without "_proj"), any other name after, alphabetically. The JSON itself sorts
// object keys, so "the order they come in" would be alphabetical.
std::vector<std::string> linear_names(const nlohmann::json& report);

}  // namespace pipeprune::report
