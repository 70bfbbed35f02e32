#include "core/report/svg_chart.h"

#include <gtest/gtest.h>

#include <regex>

namespace pipeprune::svg {
namespace {

// 300 x 150 pixels of plot: x from 50 to 350, y from 170 (zero) up to 20.
Frame test_frame() {
  Frame frame;
  frame.width = 400;
  frame.height = 200;
  frame.left = 50;
  frame.right = 50;
  frame.top = 20;
  frame.bottom = 30;
  return frame;
}

int count(const std::string& text, const std::string& pattern) {
  const std::regex re(pattern);
  return static_cast<int>(std::distance(std::sregex_iterator(text.begin(), text.end(), re), std::sregex_iterator()));
}

TEST(LinearScale, MapsDomainOntoRange_EvenDownwards) {
  const LinearScale y{0, 1, 170, 20};
  EXPECT_DOUBLE_EQ(y(0), 170);
  EXPECT_DOUBLE_EQ(y(0.5), 95);
  EXPECT_DOUBLE_EQ(y(1), 20);
}

TEST(NiceTicks, StepsOfOneTwoOrFive_CoverTheRange) {
  EXPECT_EQ(nice_ticks(0, 50, 5), (std::vector<double>{0, 10, 20, 30, 40, 50}));
  EXPECT_EQ(nice_ticks(0, 7, 5), (std::vector<double>{0, 2, 4, 6, 8}));
  EXPECT_EQ(nice_ticks(0, 150, 5), (std::vector<double>{0, 50, 100, 150}));
  const std::vector<double> small = nice_ticks(0, 0.3, 5);  // step 0.1: 0.3 stays the last tick
  ASSERT_EQ(small.size(), 4u);
  EXPECT_DOUBLE_EQ(small.back(), 0.3);
}

TEST(NiceTicks, EmptyRange_CoversOneUnit) {
  const std::vector<double> ticks = nice_ticks(0, 0, 5);
  EXPECT_DOUBLE_EQ(ticks.front(), 0);
  EXPECT_DOUBLE_EQ(ticks.back(), 1);
}

TEST(BarRect, SecondBarOfMiddleGroup_HandWorked) {
  // Band 300/3 = 100; 10 px padding; two bars of (100 - 20) / 2 = 40 px; x = 50 + 100 + 10 + 40.
  const Rect r = bar_rect(test_frame(), LinearScale{0, 1, 170, 20}, 3, 1, 2, 1, 0.5);
  EXPECT_DOUBLE_EQ(r.x, 200);
  EXPECT_DOUBLE_EQ(r.width, 40);
  EXPECT_DOUBLE_EQ(r.y, 95);  // 170 - 0.5 * 150
  EXPECT_DOUBLE_EQ(r.height, 75);
}

BarChart three_groups() {
  BarChart chart;
  chart.frame = test_frame();
  chart.y_unit = AxisUnit{"sparsity", 1};
  chart.y_max = 1.0;
  chart.series = {"q_proj", "k_proj"};
  for (int g = 0; g < 3; ++g) {
    chart.groups.push_back({std::to_string(g),
                            {{"q_proj", 0.25, "", {{"layer", std::to_string(g)}}},
                             {"k_proj", 0.5, "", {{"layer", std::to_string(g)}}}},
                            {}});
  }
  return chart;
}

TEST(BarChart, BarsAtHandWorkedPositions_ColouredBySeries) {
  const std::string svg = bar_chart(three_groups());
  EXPECT_EQ(count(svg, "<rect class=\"bar\""), 6);
  // Group 1, bar 1 (k_proj, the second colour): as in BarRect above.
  EXPECT_NE(svg.find("<rect class=\"bar\" x=\"200\" y=\"95\" width=\"40\" height=\"75\" fill=\"" + series_colour(1) +
                     "\" data-layer=\"1\">"),
            std::string::npos)
      << svg;
  // Group 0, bar 0: x = 50 + 10, height 0.25 * 150.
  EXPECT_NE(svg.find("x=\"60\" y=\"132.5\" width=\"40\" height=\"37.5\" fill=\"" + series_colour(0) + "\""),
            std::string::npos);
  EXPECT_EQ(count(svg, "<text x=\"44\""), 6) << "ticks 0, 0.2, ..., 1 left of the plot";
}

TEST(BarChart, Marker_SpansTheGroupAtItsValue) {
  BarChart chart = three_groups();
  chart.groups[0].markers.push_back({0.25, "target", {{"layer", "0"}}, "target-sparsity", "t"});
  const std::string svg = bar_chart(chart);
  // The group spans x 60..140; the marker overhangs it by 2 px each side, at y(0.25) = 132.5.
  EXPECT_NE(svg.find("<line class=\"marker target-sparsity\" x1=\"58\" x2=\"142\" y1=\"132.5\" y2=\"132.5\""),
            std::string::npos)
      << svg;
}

TEST(BarChart, MarkerFarAboveTheBars_IsAnArrowNotAScaleChange) {
  BarChart chart = three_groups();
  chart.y_max.reset();
  chart.groups[1].markers.push_back({100.0, "budget", {{"kind", "budget"}}, "budget", "budget 100"});
  const std::string svg = bar_chart(chart);
  EXPECT_NE(svg.find("class=\"marker budget off-scale\" data-kind=\"budget\""), std::string::npos) << svg;
  EXPECT_NE(svg.find("\xE2\x86\x91 budget 100"), std::string::npos);
  // The scale still comes from the bars: 0.5 at the top tick, so k_proj reaches the top.
  EXPECT_NE(svg.find("y=\"20\" width=\"40\" height=\"150\""), std::string::npos);
}

TEST(StackedBarChart, SegmentsStackFromZero_HandWorked) {
  StackedBarChart chart;
  chart.frame = test_frame();
  chart.y_unit = AxisUnit{"time (s)", 1};
  chart.series = {"a", "b"};
  chart.bars = {{"0", {{"a", 1, "", {}}, {"b", 2, "", {}}}}, {"1", {{"a", 0.5, "", {}}, {"b", 0.5, "", {}}}}};
  const std::string svg = stacked_bar_chart(chart);
  // Band 150, bar 70% = 105 px at 50 + 22.5; scale 0..3 (ticks 0, 1, 2, 3) over 150 px.
  EXPECT_NE(svg.find("x=\"72.5\" y=\"120\" width=\"105\" height=\"50\""), std::string::npos) << svg;
  EXPECT_NE(svg.find("x=\"72.5\" y=\"20\" width=\"105\" height=\"100\""), std::string::npos);
  EXPECT_NE(svg.find("x=\"222.5\" y=\"145\" width=\"105\" height=\"25\""), std::string::npos);
  EXPECT_EQ(count(svg, "class=\"total\""), 2);
}

TEST(LinePlot, PointsAndReferences_HandWorked) {
  LinePlot plot;
  plot.frame = test_frame();
  plot.x_unit = AxisUnit{"s", 1};
  plot.y_unit = AxisUnit{"bytes", 1};
  plot.series = {"rank 0"};
  plot.lines = {{"rank 0", {{0, 0, "", {}}, {10, 100, "", {}}}, {{"rank", "0"}}}};
  plot.references = {{"rank 0", 150, "6 4", "estimate", "est", {{"kind", "estimate"}}},
                     {"rank 0", 1000, "2 3", "budget", "budget 1000", {{"kind", "budget"}}}};
  const std::string svg = line_plot(plot);
  // x: 0..10 over 300 px; y: 0..150 (the estimate is on scale, the budget is not) over 150 px.
  EXPECT_NE(svg.find("points=\"50,170 350,70\""), std::string::npos) << svg;
  EXPECT_NE(svg.find("<line class=\"reference\" x1=\"50\" x2=\"350\" y1=\"20\" y2=\"20\""), std::string::npos);
  EXPECT_NE(svg.find("class=\"reference off-scale\" data-kind=\"budget\""), std::string::npos);
  EXPECT_EQ(count(svg, "<circle class=\"point\""), 2);
  EXPECT_EQ(count(svg, "<polyline class=\"line\"[^>]* data-rank=\"0\""), 1);
}

TEST(LinePlot, NotFromZero_AxisStartsBelowTheSmallestValue) {
  LinePlot plot;
  plot.frame = test_frame();
  plot.x_unit = AxisUnit{"s", 1};
  plot.y_unit = AxisUnit{"bytes", 1};
  plot.y_from_zero = false;
  plot.series = {"rank 0"};
  plot.lines = {{"rank 0", {{0, 150, "", {}}, {5, 165, "", {}}, {10, 180, "", {}}}, {}}};
  // Ticks 150, 160, 170, 180 over the 150 px: 165 is half way up.
  EXPECT_NE(line_plot(plot).find("points=\"50,170 200,95 350,20\""), std::string::npos) << line_plot(plot);
  plot.lines[0].points[0].y = 80;  // below half the largest: from zero again (ticks 0..200)
  EXPECT_NE(line_plot(plot).find("points=\"50,110 200,46.25 350,35\""), std::string::npos) << line_plot(plot);
}

TEST(Charts, TextFromData_IsEscaped) {
  BarChart chart = three_groups();
  chart.groups[0].label = "<b>&";
  chart.groups[0].bars[0].title = "a \"quoted\" <title>";
  chart.groups[0].bars[0].data = {{"linear", "x\"><script>"}};
  const std::string svg = bar_chart(chart);
  EXPECT_EQ(svg.find("<script>"), std::string::npos);
  EXPECT_EQ(svg.find("<b>"), std::string::npos);
  EXPECT_NE(svg.find("data-linear=\"x&quot;&gt;&lt;script&gt;\""), std::string::npos);
  EXPECT_NE(svg.find("<title>a &quot;quoted&quot; &lt;title&gt;</title>"), std::string::npos);
  EXPECT_NE(svg.find("&lt;b&gt;&amp;"), std::string::npos);
}

TEST(BarChart, ManyGroups_LabelsThinnedSoTheyDoNotTouch) {
  BarChart chart = three_groups();
  chart.groups.resize(100, chart.groups[0]);
  // Bands of 3 px: every 9th label (26 px apart at least), 12 of 100.
  const std::string svg = bar_chart(chart);
  const size_t start = svg.find("<g class=\"categories\">");
  ASSERT_NE(start, std::string::npos);
  EXPECT_EQ(count(svg.substr(start), "<text "), 12);
}

TEST(Coordinate, TwoDecimalsAtMost_NoTrailingZeros) {
  EXPECT_EQ(coordinate(200), "200");
  EXPECT_EQ(coordinate(95.5), "95.5");
  EXPECT_EQ(coordinate(1.0 / 3), "0.33");
  EXPECT_EQ(coordinate(-0.001), "0");
}

TEST(Legend, BoxesAndDashedLines) {
  const std::string html = legend_html({box_entry("q_proj", "#123456"), line_entry("budget <x>", "#222", "2 3")});
  EXPECT_NE(html.find("background:#123456"), std::string::npos);
  EXPECT_NE(html.find("stroke-dasharray=\"2 3\""), std::string::npos);
  EXPECT_NE(html.find("budget &lt;x&gt;"), std::string::npos);
}

}  // namespace
}  // namespace pipeprune::svg
