// Small inline-SVG charts for the HTML report of `pipeprune report`: grouped bars, stacked bars
// and a line plot, each with axes, nice ticks and units. Pure functions from a description to a
// string; nothing is read or written, so any thread may call them.
//
// Every shape carries the exact value it shows in data- attributes (given by the caller, written
// with the shortest round-trip number text) and a <title> (the browser's tooltip), so a test can
// read the page back and compare with the JSON it came from. Colours come from one fixed palette
// in the order of each chart's `series`; the legend is HTML (legend_html) placed beside the SVG,
// so long names never overlap the plot.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pipeprune::svg {

// Written as data-NAME="VALUE" on a shape (both escaped).
using DataAttributes = std::vector<std::pair<std::string, std::string>>;

// How an axis shows values: ticks are chosen and labelled in the display unit (value / divisor),
// which the axis title names ("sparsity (%)", "time (s)", "host RSS (MiB)").
struct AxisUnit {
  std::string label;
  double divisor = 1;
};
// These append the unit to `name`: percent_axis("sparsity") is "sparsity (%)" over fractions.
AxisUnit percent_axis(const std::string& name);
AxisUnit seconds_axis(const std::string& name);
AxisUnit bytes_axis(const std::string& name, double max_bytes);  // MiB, or GiB from 2 GiB up

// A linear map from a value domain to a pixel range (the range may run downwards, as y does).
struct LinearScale {
  double domain_min = 0, domain_max = 1;
  double range_min = 0, range_max = 1;
  double operator()(double value) const;
};

// Ticks at 1, 2 or 5 x 10^k steps covering [min, max] with about `target_count` intervals; the
// first tick is <= min and the last >= max. A degenerate range covers [min, min + 1].
std::vector<double> nice_ticks(double min, double max, int target_count);

// The SVG canvas and the margins around its plot area (pixels).
struct Frame {
  double width = 760, height = 300;
  double left = 72, right = 16, top = 16, bottom = 52;
  double plot_left() const { return left; }
  double plot_right() const { return width - right; }
  double plot_top() const { return top; }
  double plot_bottom() const { return height - bottom; }
};

struct Rect {
  double x = 0, y = 0, width = 0, height = 0;
};

// Bar `bar` of `n_bars` in group `group` of `n_groups` across the plot: each group gets an equal
// band, 10% of it left empty on each side, its bars side by side in the rest; the bar rises from
// y(0) to y(value).
Rect bar_rect(const Frame& frame, const LinearScale& y, size_t n_groups, size_t group, size_t n_bars, size_t bar,
              double value);

struct Bar {
  std::string series;  // picks the colour: its index in the chart's series
  double value = 0;
  std::string title;
  DataAttributes data;
};
// A value drawn as a short dark line across a bar group (e.g. the layer's target sparsity).
struct Marker {
  double value = 0;
  std::string title;
  DataAttributes data;
  std::string css_class;  // added to "marker"
  std::string label;      // written beside an up arrow when the marker is off scale
};
struct BarGroup {
  std::string label;
  std::vector<Bar> bars;
  std::vector<Marker> markers;
};
struct BarChart {
  Frame frame;
  std::string css_class;  // added to "chart" on the <svg>
  std::string x_label;
  AxisUnit y_unit;
  std::optional<double> y_max;       // default: from the bars (and the markers that stay on scale)
  bool value_labels = false;         // each bar's value written above it (for charts of few bars)
  std::vector<std::string> series;   // colour order
  std::vector<BarGroup> groups;
};
std::string bar_chart(const BarChart& chart);

struct Segment {
  std::string series;
  double value = 0;
  std::string title;
  DataAttributes data;
};
struct StackedBar {
  std::string label;
  std::vector<Segment> segments;  // stacked from 0 upwards in this order
};
struct StackedBarChart {
  Frame frame;
  std::string css_class;
  std::string x_label;
  AxisUnit y_unit;
  std::vector<std::string> series;
  std::vector<StackedBar> bars;
};
std::string stacked_bar_chart(const StackedBarChart& chart);

struct Point {
  double x = 0, y = 0;
  std::string title;
  DataAttributes data;
};
struct Line {
  std::string series;
  std::vector<Point> points;  // drawn in this order
  DataAttributes data;
};
// A horizontal line across the plot at `value`, in its series' colour, dashed ("6 4") or dotted
// ("2 3"). A reference far above the data (more than kOffScaleFactor times the largest point)
// would flatten the lines to the axis, so it is not drawn to scale: an up arrow and `label` are
// written at the top of the plot instead (class "off-scale"). Bar markers do the same.
struct ReferenceLine {
  std::string series;
  double value = 0;
  std::string dash;
  std::string title;
  std::string label;
  DataAttributes data;
};
inline constexpr double kOffScaleFactor = 3.0;
struct LinePlot {
  Frame frame;
  std::string css_class;
  AxisUnit x_unit, y_unit;
  // false: the y axis starts at a nice tick below the smallest value when that is above half the
  // largest (memory that moves between 150 and 180 MiB would otherwise be a flat line).
  bool y_from_zero = true;
  std::vector<std::string> series;
  std::vector<Line> lines;
  std::vector<ReferenceLine> references;
};
std::string line_plot(const LinePlot& plot);

// The palette colour for series `index` (10 colours, distinct on white, then repeating).
const std::string& series_colour(size_t index);

// An HTML legend: a swatch (filled box, or a line with the given dash, "" for solid) per entry.
struct LegendEntry {
  std::string label;
  std::string colour;
  bool line = false;
  std::string dash;
};
LegendEntry box_entry(const std::string& label, const std::string& colour);
LegendEntry line_entry(const std::string& label, const std::string& colour, const std::string& dash = "");
std::string legend_html(const std::vector<LegendEntry>& entries);

// A pixel coordinate as SVG text: two decimals at most, trailing zeros dropped ("200", "95.5").
std::string coordinate(double value);

}  // namespace pipeprune::svg
