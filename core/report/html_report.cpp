#include "core/report/html_report.h"

#include <fmt/format.h>

#include "core/common/error.h"
#include "core/common/files.h"
#include "core/report/html_text.h"
#include "core/report/report_json.h"
#include "core/report/report_sections.h"

namespace pipeprune {
namespace {

using nlohmann::json;

// Inline, so the page is one file that opens anywhere (no network, no scripts).
constexpr const char* kStyle = R"css(
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #222;
       margin: 24px auto; max-width: 1440px; padding: 0 24px; line-height: 1.4; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
p.summary { margin-top: 0; color: #444; }
p.note { color: #555; font-size: 13px; }
p.profile-kind { font-size: 14px; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
td { font-variant-numeric: tabular-nums; }
table.settings th { background: #f6f6f6; font-weight: 600; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 4px 0 8px; }
svg.chart text { font-family: inherit; fill: #333; }
ul.legend { list-style: none; padding: 0; margin: 6px 0; display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 13px; }
ul.legend li { display: flex; align-items: center; gap: 6px; }
ul.legend .swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; }
div.scroll { overflow-x: auto; max-width: 100%; }
table.profile td, table.profile th { text-align: right; }
details summary { cursor: pointer; font-size: 13px; color: #444; }
)css";

std::string model_name(const json& report) {
  const json& settings = report::member(report, "settings").is_object() ? report["settings"] : report;
  const std::string model = report::string_at(settings, "model").value_or("model");
  fs::path path(model);
  if (path.filename().empty()) path = path.parent_path();  // "dir/" names the folder
  return path.filename().empty() ? model : path.filename().string();
}

std::string title_text(const json& report) {
  const json& settings = report::member(report, "settings").is_object() ? report["settings"] : report;
  std::string title = model_name(report);
  if (const auto method = report::string_at(settings, "method")) title += " \xE2\x80\x94 " + *method;
  if (const auto sparsity = report::number_at(settings, "sparsity")) title += " " + html::format_percent(*sparsity, 0);
  if (const auto pattern = report::string_at(settings, "pattern")) title += " " + *pattern;
  // A per-layer profile changes what the sparsity means: the layers' mean, not each one's.
  const auto profile = report::string_at(report::member(report, "sparsity_profile"), "kind");
  if (profile && *profile != "uniform") title += ", " + *profile + " per-layer profile";
  return title;
}

std::string summary(const json& report) {
  std::string out = "<p class=\"summary\">";
  if (const auto seconds = report::number_at(report, "seconds_total")) {
    out += fmt::format("total time <b data-summary=\"seconds_total\" data-value=\"{}\">{}</b>", html::exact_number(*seconds),
                       html::format_seconds(*seconds));
  }
  if (const auto sparsity = report::number_at(report, "overall_sparsity")) {
    out += fmt::format(" &middot; overall sparsity <b data-summary=\"overall_sparsity\" data-value=\"{}\">{}</b>",
                       html::exact_number(*sparsity), html::format_percent(*sparsity, 2));
  }
  out += fmt::format(" &middot; {} layers &middot; {} rank(s)", report["layers"].size(), report["ranks"].size());
  return out + "</p>\n";
}

}  // namespace

std::optional<std::string> prune_report_problem(const json& report) {
  if (!report.is_object()) return std::string("the top level is not an object");
  if (!report.contains("layers") || !report["layers"].is_array()) return std::string("no \"layers\" array");
  if (!report.contains("ranks") || !report["ranks"].is_array()) return std::string("no \"ranks\" array");
  for (size_t i = 0; i < report["layers"].size(); ++i) {
    const json& layer = report["layers"][i];
    if (!layer.is_object() || !layer.contains("linears") || !layer["linears"].is_object()) {
      return fmt::format("layers[{}] has no \"linears\" object", i);
    }
  }
  return std::nullopt;
}

std::string render_html_report(const json& report, const std::string& memory_csv_text) {
  const auto problem = prune_report_problem(report);
  PIPEPRUNE_CHECK(!problem, FormatError,
                  "not a prune report: " << *problem << "; give the JSON that pipeprune prune --report writes");
  const std::string title = html::escape(title_text(report));
  std::string page = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n";
  page += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  page += "<title>pipeprune report: " + title + "</title>\n<style>" + kStyle + "</style></head>\n<body>\n";
  page += "<h1>pipeprune report: " + title + "</h1>\n" + summary(report);
  page += report::sparsity_section(report);
  page += report::time_section(report);
  page += report::memory_section(report, memory_csv_text);
  page += report::perplexity_section(report);
  page += report::settings_section(report);
  return page + "</body></html>\n";
}

fs::path default_html_path(const fs::path& json_path) {
  fs::path html = json_path;
  if (html.extension() == ".json") return html.replace_extension(".html");
  return html.string() + ".html";
}

void write_html_report(const fs::path& json_path, const fs::path& html_path) {
  PIPEPRUNE_CHECK(fs::is_regular_file(json_path), IoError,
                  json_path.string() << ": no such file; give the JSON written by pipeprune prune --report");
  const json report = read_json_file(json_path);
  const auto problem = prune_report_problem(report);
  PIPEPRUNE_CHECK(!problem, FormatError,
                  json_path.string() << ": not a prune report (" << *problem
                                     << "); give the JSON written by pipeprune prune --report");
  // The log is read here, not in render, so that rendering stays a pure function of its inputs.
  std::string memory_csv;
  if (const auto log = report::string_at(report, "memory_log")) {
    fs::path log_path(*log);
    if (log_path.is_relative()) log_path = json_path.parent_path() / log_path;
    if (fs::is_regular_file(log_path)) memory_csv = read_file(log_path);
  }
  write_file_atomic(html_path, render_html_report(report, memory_csv));
}

}  // namespace pipeprune
