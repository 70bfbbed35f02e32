// The memory section of the report page (declared in report_sections.h).
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>

#include "core/common/byte_size.h"
#include "core/common/error.h"
#include "core/report/html_text.h"
#include "core/report/memory_csv.h"
#include "core/report/report_json.h"
#include "core/report/report_sections.h"
#include "core/report/svg_chart.h"

namespace pipeprune::report {
namespace {

// The JSON's and the CSV's byte counts as the rest of pipeprune prints them.
std::string bytes_text(double bytes) { return format_bytes(static_cast<int64_t>(bytes)); }

using nlohmann::json;

constexpr const char* kEstimateDash = "6 4";
constexpr const char* kBudgetDash = "2 3";

// A rank's host-memory figures. On a GPU rank "estimated_peak_bytes" and "budget_bytes" are the
// device's, and the host's own are the *_host_* fields (dist/prune_report.cpp): the page's
// host-RSS chart compares like with like.
struct RankMemory {
  int rank = 0;
  std::optional<double> peak_rss;
  std::optional<double> estimate;
  std::optional<double> budget;  // nullopt: none (null or 0 in the report)
  std::string layers;            // "0-2", from the [first, end) pair
};

RankMemory rank_memory(const json& entry, size_t index) {
  RankMemory memory;
  memory.rank = static_cast<int>(number_at(entry, "rank").value_or(static_cast<double>(index)));
  memory.peak_rss = number_at(entry, "peak_rss_bytes");
  const bool gpu = number_at(entry, "estimated_host_peak_bytes").has_value();
  memory.estimate = number_at(entry, gpu ? "estimated_host_peak_bytes" : "estimated_peak_bytes");
  memory.budget = number_at(entry, gpu ? "host_budget_bytes" : "budget_bytes");
  if (memory.budget && *memory.budget <= 0) memory.budget.reset();
  const json& layers = member(entry, "layers");
  if (layers.is_array() && layers.size() == 2 && layers[0].is_number() && layers[1].is_number()) {
    const int64_t first = layers[0].get<int64_t>(), end = layers[1].get<int64_t>();
    memory.layers = end > first ? fmt::format("{}\xE2\x80\x93{}", first, end - 1) : "none";
  }
  return memory;
}

std::string bytes_or_dash(const std::optional<double>& bytes) {
  return bytes ? bytes_text(*bytes) : "\xE2\x80\x94";
}

std::string ranks_table(const std::vector<RankMemory>& ranks) {
  std::string out = "<table class=\"ranks\"><tr><th>rank</th><th>layers</th><th>measured peak RSS</th>"
                    "<th>estimated peak</th><th>measured / estimate</th><th>budget</th></tr>\n";
  for (const RankMemory& r : ranks) {
    const std::string ratio =
        r.peak_rss && r.estimate && *r.estimate > 0 ? html::format_percent(*r.peak_rss / *r.estimate, 0) : "";
    out += fmt::format("<tr data-rank=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                       r.rank, r.rank, html::escape(r.layers), bytes_or_dash(r.peak_rss), bytes_or_dash(r.estimate),
                       ratio, r.budget ? bytes_text(*r.budget) : "none");
  }
  return out + "</table>\n";
}

double largest(const std::vector<RankMemory>& ranks) {
  double max_bytes = 0;
  for (const RankMemory& r : ranks) max_bytes = std::max({max_bytes, r.peak_rss.value_or(0), r.estimate.value_or(0)});
  return max_bytes;
}

// Host RSS at every checkpoint of the log, a line per rank, against the rank's estimate
// (dashed) and budget (dotted) in the rank's colour.
std::string memory_over_time(const std::vector<RankMemory>& ranks, const std::vector<MemorySample>& samples) {
  std::map<int, std::vector<const MemorySample*>> by_rank;
  double max_rss = 0;
  for (const MemorySample& sample : samples) {
    by_rank[sample.rank].push_back(&sample);
    max_rss = std::max(max_rss, static_cast<double>(sample.host_rss_bytes));
  }
  svg::LinePlot plot;
  plot.frame.width = 960;
  plot.frame.height = 320;
  plot.css_class = "memory-chart";
  plot.y_from_zero = false;
  plot.x_unit = svg::seconds_axis("time since start");
  plot.y_unit = svg::bytes_axis("host RSS", std::max(max_rss, largest(ranks)));
  for (const RankMemory& r : ranks) plot.series.push_back(fmt::format("rank {}", r.rank));
  std::vector<svg::LegendEntry> legend;
  for (const auto& [rank, rows] : by_rank) {
    const std::string series = fmt::format("rank {}", rank);
    if (std::find(plot.series.begin(), plot.series.end(), series) == plot.series.end()) plot.series.push_back(series);
    svg::Line line{series, {}, {{"rank", std::to_string(rank)}, {"points", std::to_string(rows.size())}}};
    for (const MemorySample* s : rows) {
      const double rss = static_cast<double>(s->host_rss_bytes);
      line.points.push_back({s->seconds, rss,
                             fmt::format("rank {} {}: {} at {}", rank, s->checkpoint, bytes_text(rss),
                                         html::format_seconds(s->seconds)),
                             {{"rank", std::to_string(rank)},
                              {"checkpoint", s->checkpoint},
                              {"seconds", html::exact_number(s->seconds)},
                              {"bytes", html::exact_number(rss)}}});
    }
    plot.lines.push_back(std::move(line));
  }
  for (const RankMemory& r : ranks) {
    const std::string series = fmt::format("rank {}", r.rank);
    const auto index = static_cast<size_t>(std::find(plot.series.begin(), plot.series.end(), series) - plot.series.begin());
    const std::string& colour = svg::series_colour(index);
    if (by_rank.count(r.rank)) legend.push_back(svg::line_entry(series + " host RSS", colour));
    for (const auto& [kind, value, dash] : {std::tuple{"estimate", r.estimate, kEstimateDash},
                                            std::tuple{"budget", r.budget, kBudgetDash}}) {
      if (!value) continue;
      const std::string what = std::string(kind) == "estimate" ? "estimated peak" : "budget";
      const std::string text = fmt::format("{} {} {}", series, what, bytes_text(*value));
      plot.references.push_back({series, *value, dash, text, text,
                                 {{"rank", std::to_string(r.rank)}, {"kind", kind}, {"value", html::exact_number(*value)}}});
      legend.push_back(svg::line_entry(text, colour, dash));
    }
  }
  return svg::legend_html(legend) + svg::line_plot(plot);
}

// Without a log: each rank's measured peak and estimate as bars, its budget as a marker.
std::string memory_peaks(const std::vector<RankMemory>& ranks) {
  svg::BarChart chart;
  chart.frame.width = std::max(420.0, 160.0 * static_cast<double>(ranks.size()));
  chart.frame.top = 36;  // room for an off-scale budget's arrow
  chart.css_class = "memory-peaks-chart";
  chart.x_label = "rank";
  chart.y_unit = svg::bytes_axis("host memory", largest(ranks));
  chart.series = {"measured peak RSS", "estimated peak"};
  for (const RankMemory& r : ranks) {
    svg::BarGroup group{std::to_string(r.rank), {}, {}};
    const std::string rank = std::to_string(r.rank);
    if (r.peak_rss) {
      group.bars.push_back({chart.series[0], *r.peak_rss, fmt::format("rank {} measured peak RSS: {}", rank, bytes_text(*r.peak_rss)),
                            {{"rank", rank}, {"kind", "peak_rss"}, {"value", html::exact_number(*r.peak_rss)}}});
    }
    if (r.estimate) {
      group.bars.push_back({chart.series[1], *r.estimate, fmt::format("rank {} estimated peak: {}", rank, bytes_text(*r.estimate)),
                            {{"rank", rank}, {"kind", "estimate"}, {"value", html::exact_number(*r.estimate)}}});
    }
    if (r.budget) {
      group.markers.push_back({*r.budget, fmt::format("rank {} budget: {}", rank, bytes_text(*r.budget)),
                               {{"rank", rank}, {"kind", "budget"}, {"value", html::exact_number(*r.budget)}},
                               "budget",
                               "budget " + bytes_text(*r.budget)});
    }
    chart.groups.push_back(std::move(group));
  }
  std::vector<svg::LegendEntry> legend = {svg::box_entry(chart.series[0], svg::series_colour(0)),
                                            svg::box_entry(chart.series[1], svg::series_colour(1))};
  legend.push_back(svg::line_entry("budget (an arrow when far above the bars)", "#222"));
  return svg::legend_html(legend) + svg::bar_chart(chart);
}

}  // namespace

std::string memory_section(const json& report, const std::string& memory_csv_text) {
  std::vector<RankMemory> ranks;
  const json& entries = member(report, "ranks");
  for (size_t i = 0; i < entries.size(); ++i) ranks.push_back(rank_memory(entries[i], i));
  std::string out = "<section id=\"memory\"><h2>Memory per rank</h2>\n" + ranks_table(ranks);
  const auto log_path = string_at(report, "memory_log");
  if (log_path && !memory_csv_text.empty()) {
    try {
      const std::vector<MemorySample> samples = parse_memory_csv(memory_csv_text, *log_path);
      return out + memory_over_time(ranks, samples) + "</section>\n";
    } catch (const FormatError& e) {
      out += "<p class=\"note missing-log\">The memory log could not be read: " + html::escape(e.what()) + "</p>\n";
    }
  } else if (log_path) {
    out += "<p class=\"note missing-log\">The memory log " + html::escape(*log_path) +
           " was not found (or is empty); the peaks per rank are shown instead.</p>\n";
  }
  return out + memory_peaks(ranks) + "</section>\n";
}

}  // namespace pipeprune::report
