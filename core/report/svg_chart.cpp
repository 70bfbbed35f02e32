#include "core/report/svg_chart.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "core/report/html_text.h"

namespace pipeprune::svg {
namespace {

constexpr double kGroupPadding = 0.1;    // of a bar group's band, on each side
constexpr double kStackedWidth = 0.7;    // of a stacked bar's band
constexpr int kTargetTicks = 5;
constexpr double kMinLabelSpacing = 26;  // pixels between category labels before some are skipped

std::string attributes(const DataAttributes& data) {
  std::string out;
  for (const auto& [name, value] : data) out += fmt::format(" data-{}=\"{}\"", html::escape(name), html::escape(value));
  return out;
}

std::string title_element(const std::string& title) {
  return title.empty() ? "" : "<title>" + html::escape(title) + "</title>";
}

size_t series_index(const std::vector<std::string>& series, const std::string& name) {
  const auto it = std::find(series.begin(), series.end(), name);
  return it == series.end() ? series.size() : static_cast<size_t>(it - series.begin());
}

std::string open_svg(const Frame& frame, const std::string& css_class, const std::string& label) {
  return fmt::format(
      "<svg class=\"chart {}\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" "
      "role=\"img\" aria-label=\"{}\">\n",
      html::escape(css_class), coordinate(frame.width), coordinate(frame.height), coordinate(frame.width),
      coordinate(frame.height), html::escape(label));
}

// A y scale over [0, top of the nice ticks covering max_value], and those ticks in display units.
struct YAxis {
  LinearScale scale;
  std::vector<double> ticks;
};
YAxis y_axis_for(const Frame& frame, const AxisUnit& unit, double max_value, double min_value = 0) {
  YAxis axis;
  axis.ticks = nice_ticks(min_value / unit.divisor, max_value / unit.divisor, kTargetTicks);
  axis.scale = LinearScale{axis.ticks.front() * unit.divisor, axis.ticks.back() * unit.divisor, frame.plot_bottom(),
                           frame.plot_top()};
  return axis;
}

// Grid lines and labelled ticks on the left, the axis title turned along it.
void draw_y_axis(std::string& out, const Frame& frame, const YAxis& axis, const AxisUnit& unit) {
  out += "<g class=\"axis y-axis\">\n";
  for (double tick : axis.ticks) {
    const std::string y = coordinate(axis.scale(tick * unit.divisor));
    out += fmt::format("<line class=\"grid\" x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#e3e3e3\"/>", coordinate(frame.plot_left()),
                       coordinate(frame.plot_right()), y, y);
    out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\" dominant-baseline=\"middle\" font-size=\"11\">{}</text>\n",
                       coordinate(frame.plot_left() - 6), y, html::format_number(tick));
  }
  const double middle = (frame.plot_top() + frame.plot_bottom()) / 2;
  out += fmt::format("<text class=\"axis-title\" x=\"14\" y=\"{0}\" transform=\"rotate(-90 14 {0})\" text-anchor=\"middle\" "
                     "font-size=\"12\">{1}</text>\n",
                     coordinate(middle), html::escape(unit.label));
  out += "</g>\n";
}

void draw_x_baseline(std::string& out, const Frame& frame, const std::string& title) {
  out += fmt::format("<line class=\"baseline\" x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#555\"/>\n",
                     coordinate(frame.plot_left()), coordinate(frame.plot_right()), coordinate(frame.plot_bottom()),
                     coordinate(frame.plot_bottom()));
  out += fmt::format("<text class=\"axis-title\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\">{}</text>\n",
                     coordinate((frame.plot_left() + frame.plot_right()) / 2), coordinate(frame.height - 8),
                     html::escape(title));
}

// One label under the middle of each band; every k-th only when they would touch.
void draw_category_labels(std::string& out, const Frame& frame, const std::vector<std::string>& labels) {
  if (labels.empty()) return;
  const double band = (frame.plot_right() - frame.plot_left()) / static_cast<double>(labels.size());
  const size_t step = std::max<size_t>(1, static_cast<size_t>(std::ceil(kMinLabelSpacing / band)));
  out += "<g class=\"categories\">\n";
  for (size_t i = 0; i < labels.size(); i += step) {
    const double x = frame.plot_left() + (static_cast<double>(i) + 0.5) * band;
    out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\">{}</text>\n", coordinate(x),
                       coordinate(frame.plot_bottom() + 15), html::escape(labels[i]));
  }
  out += "</g>\n";
}

// An up arrow and a label at the top of the plot for a value above it; `slot` stacks several.
std::string off_scale_note(const Frame& frame, double x, const std::string& anchor, int slot, const std::string& colour,
                           const std::string& css_class, const std::string& label, const std::string& title,
                           const DataAttributes& data) {
  return fmt::format("<g class=\"{} off-scale\"{}><text x=\"{}\" y=\"{}\" text-anchor=\"{}\" font-size=\"11\" fill=\"{}\">"
                     "\xE2\x86\x91 {}</text>{}</g>\n",
                     css_class, attributes(data), coordinate(x), coordinate(frame.plot_top() + 11 + 14 * slot), anchor,
                     colour, html::escape(label), title_element(title));
}

}  // namespace

AxisUnit percent_axis(const std::string& name) { return AxisUnit{name + " (%)", 0.01}; }
AxisUnit seconds_axis(const std::string& name) { return AxisUnit{name + " (s)", 1}; }
AxisUnit bytes_axis(const std::string& name, double max_bytes) {
  constexpr double kMiB = 1024.0 * 1024.0, kGiB = kMiB * 1024.0;
  if (max_bytes >= 2 * kGiB) return AxisUnit{name + " (GiB)", kGiB};
  return AxisUnit{name + " (MiB)", kMiB};
}

double LinearScale::operator()(double value) const {
  const double span = domain_max - domain_min;
  if (span == 0) return range_min;
  return range_min + (value - domain_min) / span * (range_max - range_min);
}

std::vector<double> nice_ticks(double min, double max, int target_count) {
  if (!(max > min)) max = min + 1;
  const double raw = (max - min) / std::max(1, target_count);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double normalised = raw / magnitude;
  const double step = (normalised <= 1 ? 1 : normalised <= 2 ? 2 : normalised <= 5 ? 5 : 10) * magnitude;
  // Ticks as integer multiples of the step (not accumulated sums), so 0.1 * 3 stays one rounding.
  // The small slack keeps a max that is a multiple of the step (0.3 / 0.1 = 2.9999...) its own tick.
  const auto first = static_cast<long long>(std::floor(min / step + 1e-9));
  const auto last = static_cast<long long>(std::ceil(max / step - 1e-9));
  std::vector<double> ticks;
  for (long long k = first; k <= last; ++k) ticks.push_back(static_cast<double>(k) * step);
  return ticks;
}

Rect bar_rect(const Frame& frame, const LinearScale& y, size_t n_groups, size_t group, size_t n_bars, size_t bar,
              double value) {
  const double band = (frame.plot_right() - frame.plot_left()) / static_cast<double>(std::max<size_t>(1, n_groups));
  const double width = band * (1 - 2 * kGroupPadding) / static_cast<double>(std::max<size_t>(1, n_bars));
  const double x = frame.plot_left() + static_cast<double>(group) * band + band * kGroupPadding +
                   static_cast<double>(bar) * width;
  const double zero = y(0), top = y(value);
  return Rect{x, std::min(zero, top), width, std::fabs(zero - top)};
}

std::string bar_chart(const BarChart& chart) {
  const Frame& frame = chart.frame;
  double max_bar = 0;
  for (const BarGroup& group : chart.groups) {
    for (const Bar& bar : group.bars) max_bar = std::max(max_bar, bar.value);
  }
  double max_value = max_bar;
  for (const BarGroup& group : chart.groups) {
    for (const Marker& marker : group.markers) {
      if (max_bar == 0 || marker.value <= kOffScaleFactor * max_bar) max_value = std::max(max_value, marker.value);
    }
  }
  const YAxis axis = y_axis_for(frame, chart.y_unit, chart.y_max.value_or(max_value));
  const double top_value = axis.scale.domain_max;
  std::string out = open_svg(frame, chart.css_class, chart.y_unit.label);
  draw_y_axis(out, frame, axis, chart.y_unit);
  std::vector<std::string> labels;
  const size_t n_groups = chart.groups.size();
  for (size_t g = 0; g < n_groups; ++g) {
    const BarGroup& group = chart.groups[g];
    labels.push_back(group.label);
    out += fmt::format("<g class=\"group\" data-group=\"{}\">\n", html::escape(group.label));
    for (size_t b = 0; b < group.bars.size(); ++b) {
      const Bar& bar = group.bars[b];
      const Rect r = bar_rect(frame, axis.scale, n_groups, g, group.bars.size(), b, std::min(bar.value, top_value));
      out += fmt::format("<rect class=\"bar\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"{}>{}</rect>\n",
                         coordinate(r.x), coordinate(r.y), coordinate(r.width), coordinate(r.height),
                         series_colour(series_index(chart.series, bar.series)), attributes(bar.data),
                         title_element(bar.title));
      if (chart.value_labels) {
        out += fmt::format("<text class=\"value\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\">{}</text>\n",
                           coordinate(r.x + r.width / 2), coordinate(r.y - 4),
                           html::format_number(bar.value / chart.y_unit.divisor));
      }
    }
    const Rect whole = bar_rect(frame, axis.scale, n_groups, g, 1, 0, 0);
    int slot = 0;
    for (const Marker& marker : group.markers) {
      const std::string css = "marker " + html::escape(marker.css_class);
      if (marker.value > top_value) {
        out += off_scale_note(frame, whole.x + whole.width / 2, "middle", slot++, "#222", css, marker.label,
                              marker.title, marker.data);
        continue;
      }
      const std::string y = coordinate(axis.scale(marker.value));
      out += fmt::format("<line class=\"{}\" x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#222\" stroke-width=\"2.5\"{}>{}</line>\n",
                         css, coordinate(whole.x - 2), coordinate(whole.x + whole.width + 2), y, y,
                         attributes(marker.data), title_element(marker.title));
    }
    out += "</g>\n";
  }
  draw_x_baseline(out, frame, chart.x_label);
  draw_category_labels(out, frame, labels);
  return out + "</svg>\n";
}

std::string stacked_bar_chart(const StackedBarChart& chart) {
  const Frame& frame = chart.frame;
  double max_total = 0;
  for (const StackedBar& bar : chart.bars) {
    double total = 0;
    for (const Segment& segment : bar.segments) total += std::max(0.0, segment.value);
    max_total = std::max(max_total, total);
  }
  const YAxis axis = y_axis_for(frame, chart.y_unit, max_total);
  std::string out = open_svg(frame, chart.css_class, chart.y_unit.label);
  draw_y_axis(out, frame, axis, chart.y_unit);
  const double band = (frame.plot_right() - frame.plot_left()) / static_cast<double>(std::max<size_t>(1, chart.bars.size()));
  const bool totals = band >= 22;  // room for a total above each bar
  std::vector<std::string> labels;
  for (size_t i = 0; i < chart.bars.size(); ++i) {
    const StackedBar& bar = chart.bars[i];
    labels.push_back(bar.label);
    const double x = frame.plot_left() + static_cast<double>(i) * band + band * (1 - kStackedWidth) / 2;
    const double width = band * kStackedWidth;
    out += fmt::format("<g class=\"stack\" data-group=\"{}\">\n", html::escape(bar.label));
    double base = 0;
    for (const Segment& segment : bar.segments) {
      const double value = std::max(0.0, segment.value);
      const double y0 = axis.scale(base), y1 = axis.scale(base + value);
      out += fmt::format("<rect class=\"segment\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"{}>{}</rect>\n",
                         coordinate(x), coordinate(y1), coordinate(width), coordinate(y0 - y1),
                         series_colour(series_index(chart.series, segment.series)), attributes(segment.data),
                         title_element(segment.title));
      base += value;
    }
    if (totals) {
      out += fmt::format("<text class=\"total\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\">{}</text>\n",
                         coordinate(x + width / 2), coordinate(axis.scale(base) - 4),
                         html::format_number(base / chart.y_unit.divisor, 3));
    }
    out += "</g>\n";
  }
  draw_x_baseline(out, frame, chart.x_label);
  draw_category_labels(out, frame, labels);
  return out + "</svg>\n";
}

std::string line_plot(const LinePlot& plot) {
  const Frame& frame = plot.frame;
  double max_x = 0, max_y = 0;
  for (const Line& line : plot.lines) {
    for (const Point& point : line.points) {
      max_x = std::max(max_x, point.x);
      max_y = std::max(max_y, point.y);
    }
  }
  double max_value = max_y;
  double min_value = max_y;
  for (const Line& line : plot.lines) {
    for (const Point& point : line.points) min_value = std::min(min_value, point.y);
  }
  for (const ReferenceLine& reference : plot.references) {
    if (max_y == 0 || reference.value <= kOffScaleFactor * max_y) {
      max_value = std::max(max_value, reference.value);
      min_value = std::min(min_value, reference.value);
    }
  }
  if (plot.y_from_zero || min_value <= max_value / 2) min_value = 0;
  const YAxis y_axis = y_axis_for(frame, plot.y_unit, max_value, min_value);
  const std::vector<double> x_ticks = nice_ticks(0, max_x / plot.x_unit.divisor, kTargetTicks + 3);
  const LinearScale x{0, x_ticks.back() * plot.x_unit.divisor, frame.plot_left(), frame.plot_right()};
  std::string out = open_svg(frame, plot.css_class, plot.y_unit.label);
  draw_y_axis(out, frame, y_axis, plot.y_unit);
  draw_x_baseline(out, frame, plot.x_unit.label);
  out += "<g class=\"axis x-axis\">\n";
  for (double tick : x_ticks) {
    const std::string px = coordinate(x(tick * plot.x_unit.divisor));
    out += fmt::format("<line x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#555\"/>", px,
                       coordinate(frame.plot_bottom()), coordinate(frame.plot_bottom() + 4));
    out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\">{}</text>\n", px,
                       coordinate(frame.plot_bottom() + 16), html::format_number(tick));
  }
  out += "</g>\n";
  int slot = 0;
  for (const ReferenceLine& reference : plot.references) {
    const std::string& colour = series_colour(series_index(plot.series, reference.series));
    if (reference.value > y_axis.scale.domain_max) {
      out += off_scale_note(frame, frame.plot_right() - 4, "end", slot++, colour, "reference", reference.label,
                            reference.title, reference.data);
      continue;
    }
    const std::string y = coordinate(y_axis.scale(reference.value));
    out += fmt::format("<line class=\"reference\" x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"1.5\" "
                       "stroke-dasharray=\"{}\"{}>{}</line>\n",
                       coordinate(frame.plot_left()), coordinate(frame.plot_right()), y, y, colour,
                       html::escape(reference.dash), attributes(reference.data), title_element(reference.title));
  }
  for (const Line& line : plot.lines) {
    const std::string& colour = series_colour(series_index(plot.series, line.series));
    std::string points;
    for (const Point& point : line.points) {
      points += (points.empty() ? "" : " ") + coordinate(x(point.x)) + "," + coordinate(y_axis.scale(point.y));
    }
    out += fmt::format("<g class=\"series\"><polyline class=\"line\" points=\"{}\" fill=\"none\" stroke=\"{}\" "
                       "stroke-width=\"2\" stroke-opacity=\"0.85\"{}/>\n",
                       points, colour, attributes(line.data));
    for (const Point& point : line.points) {
      out += fmt::format("<circle class=\"point\" cx=\"{}\" cy=\"{}\" r=\"2.5\" fill=\"{}\"{}>{}</circle>\n",
                         coordinate(x(point.x)), coordinate(y_axis.scale(point.y)), colour, attributes(point.data),
                         title_element(point.title));
    }
    out += "</g>\n";
  }
  return out + "</svg>\n";
}

const std::string& series_colour(size_t index) {
  // Tableau 10: distinct hues of similar weight, all readable on white.
  static const std::array<std::string, 10> kPalette = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                                       "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
  return kPalette[index % kPalette.size()];
}

LegendEntry box_entry(const std::string& label, const std::string& colour) { return LegendEntry{label, colour, false, ""}; }
LegendEntry line_entry(const std::string& label, const std::string& colour, const std::string& dash) {
  return LegendEntry{label, colour, true, dash};
}

std::string legend_html(const std::vector<LegendEntry>& entries) {
  std::string out = "<ul class=\"legend\">";
  for (const LegendEntry& entry : entries) {
    const std::string colour = html::escape(entry.colour);
    const std::string swatch =
        entry.line ? fmt::format("<svg width=\"26\" height=\"10\"><line x1=\"1\" x2=\"25\" y1=\"5\" y2=\"5\" stroke=\"{}\" "
                                 "stroke-width=\"2.5\" stroke-dasharray=\"{}\"/></svg>",
                                 colour, html::escape(entry.dash))
                   : fmt::format("<span class=\"swatch\" style=\"background:{}\"></span>", colour);
    out += fmt::format("<li>{}{}</li>", swatch, html::escape(entry.label));
  }
  return out + "</ul>\n";
}

std::string coordinate(double value) {
  std::string text = fmt::format("{:.2f}", value);
  while (text.back() == '0') text.pop_back();
  if (text.back() == '.') text.pop_back();
  return text == "-0" ? "0" : text;
}

}  // namespace pipeprune::svg
