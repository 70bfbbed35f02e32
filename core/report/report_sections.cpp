#include "core/report/report_sections.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <set>

#include "core/report/html_text.h"
#include "core/report/report_json.h"
#include "core/report/svg_chart.h"

namespace pipeprune::report {
namespace {

using nlohmann::json;

// Top-level keys that are sections of their own, not settings.
const std::set<std::string> kSectionKeys = {"layers",       "ranks",        "perplexity",      "overall_sparsity",
                                            "seconds_total", "memory_log",  "sparsity_profile", "settings"};

// The parts of a layer's time, in the order they happen, and how the chart names them.
constexpr std::array<std::pair<const char*, const char*>, 4> kTimeParts = {{{"seconds_stats", "statistics"},
                                                                            {"seconds_prune", "prune"},
                                                                            {"seconds_output", "output"},
                                                                            {"seconds_reduce", "reduce"}}};

std::string setting_text(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return "\xE2\x80\x94";  // an em dash
  if (value.is_number_float()) return html::exact_number(value.get<double>());
  return value.dump();
}

// Wide enough for about 7 px per bar, within what a screen shows without scrolling much.
svg::Frame frame_for(size_t n_bars, double height) {
  svg::Frame frame;
  frame.width = std::clamp(88.0 + 7.0 * static_cast<double>(n_bars), 960.0, 1400.0);
  frame.height = height;
  return frame;
}

std::string layer_label(const json& layer, size_t index) {
  const auto number = number_at(layer, "layer");
  return number ? html::format_number(*number) : std::to_string(index);
}

std::vector<svg::LegendEntry> series_legend(const std::vector<std::string>& series) {
  std::vector<svg::LegendEntry> entries;
  for (size_t i = 0; i < series.size(); ++i) entries.push_back(svg::box_entry(series[i], svg::series_colour(i)));
  return entries;
}

// Each layer's numbers under the chart, folded away: exact values without hovering.
std::string sparsity_table(const json& layers, const std::vector<std::string>& names, bool any_target) {
  std::string out = "<details><summary>per-layer numbers</summary><table class=\"numbers\"><tr><th>layer</th>";
  for (const std::string& name : names) out += "<th>" + html::escape(name) + "</th>";
  if (any_target) out += "<th>target</th>";
  out += "</tr>\n";
  for (size_t i = 0; i < layers.size(); ++i) {
    const json& linears = member(layers[i], "linears");
    out += "<tr><td>" + html::escape(layer_label(layers[i], i)) + "</td>";
    for (const std::string& name : names) {
      const auto sparsity = number_at(member(linears, name.c_str()), "sparsity");
      out += "<td>" + (sparsity ? html::format_percent(*sparsity, 2) : std::string()) + "</td>";
    }
    if (any_target) {
      const auto target = number_at(layers[i], "target_sparsity");
      out += "<td>" + (target ? html::format_percent(*target, 2) : std::string()) + "</td>";
    }
    out += "</tr>\n";
  }
  return out + "</table></details>\n";
}

// The profile the per-layer targets came from: its kind and parameters, then per model layer
// the target sparsity and (OWL) the layer's outlier percentage.
std::string profile_table(const json& profile) {
  std::string out = "<h3>Sparsity profile</h3>\n<p class=\"profile-kind\">kind: <b>" +
                    html::escape(string_at(profile, "kind").value_or("?")) + "</b>";
  if (const auto lambda = number_at(profile, "owl_lambda")) out += " &middot; OWL &lambda; = " + html::format_number(*lambda);
  if (const auto m = number_at(profile, "owl_m")) out += " &middot; OWL M = " + html::format_number(*m);
  if (const auto seconds = number_at(profile, "seconds_outlier_pass")) {
    out += " &middot; outlier pass " + html::format_number(*seconds, 3) + " s";
  }
  const json& applied = member(profile, "applied");
  if (applied.is_boolean() && !applied.get<bool>()) {
    out += " &middot; OWL's ratios reported, not applied (an N:M pattern prunes every layer alike)";
  }
  // Any other single value the profile carries, as it is.
  for (const auto& [key, value] : profile.items()) {
    if (value.is_structured() || key == "kind" || key == "owl_lambda" || key == "owl_m" ||
        key == "seconds_outlier_pass" || key == "applied") {
      continue;
    }
    out += " &middot; " + html::escape(key) + " = " + html::escape(setting_text(value));
  }
  out += "</p>\n";
  const json& targets = member(profile, "layer_sparsity");
  const json& outliers = member(profile, "outlier_percent");
  if (!targets.is_array()) return out;
  // Layers as columns: two short rows read better than a tall table of near-equal numbers.
  const bool with_outliers = outliers.is_array();
  std::string header = "<tr><th>layer</th>", target_row = "<tr><th>target sparsity</th>",
              outlier_row = "<tr><th>outlier %</th>";
  for (size_t i = 0; i < targets.size(); ++i) {
    header += fmt::format("<th>{}</th>", i);
    const bool known = targets[i].is_number();
    target_row += fmt::format("<td data-layer=\"{}\" data-target=\"{}\">{}</td>", i,
                              known ? html::exact_number(targets[i].get<double>()) : "",
                              known ? html::format_percent(targets[i].get<double>(), 1) : "");
    if (with_outliers && i < outliers.size() && outliers[i].is_number()) {
      const double outlier = outliers[i].get<double>();
      outlier_row += fmt::format("<td data-layer=\"{}\" data-outlier=\"{}\">{}</td>", i, html::exact_number(outlier),
                                 html::format_number(outlier, 3));
    } else {
      outlier_row += "<td></td>";
    }
  }
  out += "<div class=\"scroll\"><table class=\"profile\">" + header + "</tr>\n" + target_row + "</tr>\n";
  if (with_outliers) out += outlier_row + "</tr>\n";
  out += "</table></div>\n";
  return out;
}

}  // namespace

std::vector<std::string> linear_names(const json& report) {
  // prune writes the short names (q, gate, ...); the _proj forms are the checkpoints' own.
  static const std::vector<std::string> kUsualOrder = {
      "q",    "q_proj",    "k",  "k_proj",  "v",       "v_proj",       "qkv",  "qkv_proj", "o",
      "o_proj", "gate",    "gate_proj", "up", "up_proj", "gate_up", "gate_up_proj", "down", "down_proj"};
  std::set<std::string> seen;
  for (const json& layer : member(report, "layers")) {
    for (const auto& [name, linear] : member(layer, "linears").items()) seen.insert(name);
  }
  std::vector<std::string> names;
  for (const std::string& name : kUsualOrder) {
    if (seen.erase(name)) names.push_back(name);
  }
  names.insert(names.end(), seen.begin(), seen.end());
  return names;
}

std::string settings_section(const json& report) {
  const json& nested = member(report, "settings");
  std::string out = "<section id=\"settings\"><h2>Settings</h2>\n<table class=\"settings\">\n";
  for (const auto& [key, value] : (nested.is_object() ? nested : report).items()) {
    // prune writes the profile's kind as a setting, replaced by the profile object when there is one.
    if (!nested.is_object() && kSectionKeys.count(key) && !(key == "sparsity_profile" && value.is_string())) continue;
    out += fmt::format("<tr data-setting=\"{0}\"><th>{0}</th><td>{1}</td></tr>\n", html::escape(key),
                       html::escape(setting_text(value)));
  }
  return out + "</table></section>\n";
}

std::string sparsity_section(const json& report) {
  const json& layers = member(report, "layers");
  const std::vector<std::string> names = linear_names(report);
  svg::BarChart chart;
  chart.frame = frame_for(layers.size() * names.size(), 320);
  chart.css_class = "sparsity-chart";
  chart.x_label = "decoder layer";
  chart.y_unit = svg::percent_axis("sparsity");
  chart.y_max = 1.0;  // the whole range: 50% reads as half the height
  chart.series = names;
  bool any_target = false;
  for (size_t i = 0; i < layers.size(); ++i) {
    const json& layer = layers[i];
    svg::BarGroup group;
    group.label = layer_label(layer, i);
    const json& linears = member(layer, "linears");
    for (const std::string& name : names) {
      const auto sparsity = number_at(member(linears, name.c_str()), "sparsity");
      if (!sparsity) continue;
      std::string title = fmt::format("layer {} {}: {}", group.label, name, html::format_percent(*sparsity, 2));
      const auto zeros = number_at(member(linears, name.c_str()), "zeros");
      const auto numel = number_at(member(linears, name.c_str()), "numel");
      if (zeros && numel) title += fmt::format(" ({:.0f} of {:.0f} weights zero)", *zeros, *numel);
      group.bars.push_back({name, *sparsity, title,
                            {{"layer", group.label}, {"linear", name}, {"value", html::exact_number(*sparsity)}}});
    }
    if (const auto target = number_at(layer, "target_sparsity")) {
      any_target = true;
      group.markers.push_back({*target, fmt::format("layer {} target: {}", group.label, html::format_percent(*target, 2)),
                               {{"layer", group.label}, {"value", html::exact_number(*target)}},
                               "target-sparsity",
                               "target " + html::format_percent(*target)});
    }
    chart.groups.push_back(std::move(group));
  }
  std::vector<svg::LegendEntry> legend = series_legend(names);
  if (any_target) legend.push_back(svg::line_entry("target sparsity of the layer", "#222"));
  std::string out = "<section id=\"sparsity\"><h2>Sparsity per layer</h2>\n";
  out += svg::legend_html(legend) + svg::bar_chart(chart) + sparsity_table(layers, names, any_target);
  const json& profile = member(report, "sparsity_profile");
  if (profile.is_object()) out += profile_table(profile);
  return out + "</section>\n";
}

std::string time_section(const json& report) {
  const json& layers = member(report, "layers");
  // seconds_reduce is zero unless samples are split across ranks: a bar part only when used.
  bool with_reduce = false;
  for (const json& layer : layers) with_reduce = with_reduce || number_at(layer, "seconds_reduce").value_or(0) > 0;
  svg::StackedBarChart chart;
  chart.frame = frame_for(layers.size() * 4, 300);
  chart.css_class = "time-chart";
  chart.x_label = "decoder layer";
  chart.y_unit = svg::seconds_axis("time");
  for (const auto& [key, name] : kTimeParts) {
    if (std::string(key) != "seconds_reduce" || with_reduce) chart.series.push_back(name);
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    svg::StackedBar bar;
    bar.label = layer_label(layers[i], i);
    for (const auto& [key, name] : kTimeParts) {
      if (std::string(key) == "seconds_reduce" && !with_reduce) continue;
      const double seconds = number_at(layers[i], key).value_or(0);
      bar.segments.push_back({name, seconds, fmt::format("layer {} {}: {}", bar.label, name, html::format_seconds(seconds)),
                              {{"layer", bar.label}, {"part", key}, {"value", html::exact_number(seconds)}}});
    }
    chart.bars.push_back(std::move(bar));
  }
  std::string out = "<section id=\"time\"><h2>Time per layer</h2>\n";
  out += "<p class=\"note\">Seconds each layer spent collecting calibration statistics, computing and applying its "
         "masks, and running the pruned layer forward for the next one; the number above a bar is its total.</p>\n";
  return out + svg::legend_html(series_legend(chart.series)) + svg::stacked_bar_chart(chart) + "</section>\n";
}

std::string perplexity_section(const json& report) {
  const json& perplexity = member(report, "perplexity");
  const auto dense = number_at(perplexity, "dense");
  const auto pruned = number_at(perplexity, "pruned");
  std::string out = "<section id=\"perplexity\"><h2>Perplexity</h2>\n";
  if (!dense && !pruned) return out + "<p class=\"note\">Not measured (run prune with --eval-data).</p></section>\n";
  out += "<table class=\"perplexity\">\n";
  for (const auto& [kind, value] : {std::pair{"dense", dense}, std::pair{"pruned", pruned}}) {
    if (value) {
      out += fmt::format("<tr><th>{0}</th><td data-perplexity=\"{0}\" data-value=\"{1}\">{2}</td></tr>\n", kind,
                         html::exact_number(*value), html::format_number(*value, 5));
    } else {
      out += fmt::format("<tr><th>{}</th><td>not measured</td></tr>\n", kind);
    }
  }
  out += "</table>\n";
  if (dense && pruned) {
    out += fmt::format("<p>Pruning changed the perplexity by {:+.1f}% ({:.2f}&times; the dense model's).</p>\n",
                       (*pruned / *dense - 1) * 100, *pruned / *dense);
    svg::BarChart chart;
    chart.frame.width = 300;
    chart.frame.height = 220;
    chart.frame.top = 24;  // room for the value above the taller bar
    chart.css_class = "perplexity-chart";
    chart.x_label = "model";
    chart.y_unit = svg::AxisUnit{"perplexity", 1};
    chart.value_labels = true;
    chart.series = {"dense", "pruned"};
    for (const auto& [kind, value] : {std::pair{"dense", *dense}, std::pair{"pruned", *pruned}}) {
      chart.groups.push_back({kind,
                              {{kind, value, fmt::format("{}: {}", kind, html::format_number(value, 6)),
                                {{"kind", kind}, {"value", html::exact_number(value)}}}},
                              {}});
    }
    out += svg::bar_chart(chart);
  }
  return out + "</section>\n";
}

}  // namespace pipeprune::report
