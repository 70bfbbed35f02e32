#include "core/report/html_report.h"

#include <gtest/gtest.h>

#include <regex>

#include "core/common/error.h"
#include "core/common/files.h"
#include "support/expect_error.h"

namespace pipeprune {
namespace {

using nlohmann::json;

// A small report as prune --report writes it (settings flat at the top), two layers on two ranks.
json hand_made_report() {
  json layers = json::array();
  for (int layer = 0; layer < 2; ++layer) {
    layers.push_back({{"layer", layer},
                      {"rank", layer},
                      {"seconds_stats", 0.25 + layer},
                      {"seconds_prune", 0.125},
                      {"seconds_output", 0.0625},
                      {"seconds_reduce", 0.0},
                      {"linears",
                       {{"q_proj", {{"numel", 64}, {"zeros", 32}, {"sparsity", 0.5}}},
                        {"down_proj", {{"numel", 100}, {"zeros", 37 + layer}, {"sparsity", 0.37 + layer / 100.0}}}}}});
  }
  json ranks = json::array();
  for (int rank = 0; rank < 2; ++rank) {
    ranks.push_back({{"rank", rank},
                     {"layers", {rank, rank + 1}},
                     {"peak_rss_bytes", 200000000 + rank},
                     {"estimated_peak_bytes", 180000000},
                     {"budget_bytes", rank == 0 ? json(50000000000LL) : json(nullptr)}});
  }
  return {{"model", "/models/Tiny & \"Small\" <b>x"},
          {"method", "wanda"},
          {"pattern", "unstructured"},
          {"sparsity", 0.5},
          {"nsamples", 32},
          {"layers", layers},
          {"ranks", ranks},
          {"overall_sparsity", 0.4321},
          {"perplexity", {{"dense", 10.5}, {"pruned", 12.75}}},
          {"seconds_total", 3.5}};
}

int count(const std::string& text, const std::string& pattern) {
  const std::regex re(pattern);
  return static_cast<int>(std::distance(std::sregex_iterator(text.begin(), text.end(), re), std::sregex_iterator()));
}

bool has(const std::string& page, const std::string& text) { return page.find(text) != std::string::npos; }

TEST(RenderHtmlReport, ShowsTheJsonsNumbers) {
  const std::string page = render_html_report(hand_made_report(), "");
  EXPECT_EQ(count(page, "<rect class=\"bar\"[^>]*data-layer=\"[01]\" data-linear="), 4);
  EXPECT_TRUE(has(page, "data-layer=\"0\" data-linear=\"q_proj\" data-value=\"0.5\""));
  EXPECT_TRUE(has(page, "data-layer=\"1\" data-linear=\"down_proj\" data-value=\"0.38\""));
  // The usual projection order, not the JSON's alphabetical one: q_proj's bar comes first.
  EXPECT_LT(page.find("data-linear=\"q_proj\""), page.find("data-linear=\"down_proj\""));
  EXPECT_TRUE(has(page, "data-layer=\"1\" data-part=\"seconds_stats\" data-value=\"1.25\""));
  EXPECT_FALSE(has(page, "data-part=\"seconds_reduce\"")) << "all zero: no reduce part";
  EXPECT_TRUE(has(page, "data-perplexity=\"dense\" data-value=\"10.5\""));
  EXPECT_TRUE(has(page, "data-perplexity=\"pruned\" data-value=\"12.75\""));
  EXPECT_TRUE(has(page, "data-summary=\"seconds_total\" data-value=\"3.5\""));
  EXPECT_TRUE(has(page, "data-summary=\"overall_sparsity\" data-value=\"0.4321\""));
  EXPECT_TRUE(has(page, "<tr data-setting=\"nsamples\"><th>nsamples</th><td>32</td></tr>"));
  // Without a memory log: peak and estimate bars per rank, rank 0's budget far above them.
  EXPECT_TRUE(has(page, "data-rank=\"1\" data-kind=\"peak_rss\" data-value=\"200000001\""));
  EXPECT_TRUE(has(page, "data-rank=\"0\" data-kind=\"estimate\" data-value=\"180000000\""));
  EXPECT_TRUE(has(page, "class=\"marker budget off-scale\" data-rank=\"0\" data-kind=\"budget\" data-value=\"50000000000\""));
  EXPECT_FALSE(has(page, "data-rank=\"1\" data-kind=\"budget\"")) << "a null budget is none";
}

TEST(RenderHtmlReport, StringsFromTheJson_AreEscaped) {
  const std::string page = render_html_report(hand_made_report(), "");
  EXPECT_FALSE(has(page, "<b>x"));
  EXPECT_TRUE(has(page, "<h1>pipeprune report: Tiny &amp; &quot;Small&quot; &lt;b&gt;x \xE2\x80\x94 wanda 50% unstructured</h1>"));
  EXPECT_TRUE(has(page, "<td>/models/Tiny &amp; &quot;Small&quot; &lt;b&gt;x</td>"));
}

TEST(RenderHtmlReport, OlderReport_OmitsTargetsAndProfile) {
  const std::string page = render_html_report(hand_made_report(), "");
  EXPECT_FALSE(has(page, "target-sparsity"));
  EXPECT_FALSE(has(page, "Sparsity profile"));
  EXPECT_FALSE(has(page, "missing-log"));
}

TEST(RenderHtmlReport, TargetsAndOwlProfile_Shown) {
  json report = hand_made_report();
  report["layers"][0]["target_sparsity"] = 0.45;
  report["layers"][1]["target_sparsity"] = 0.55;
  report["sparsity_profile"] = {{"kind", "owl"},
                                {"owl_lambda", 0.08},
                                {"owl_m", 5},
                                {"outlier_percent", {1.5, 0.25}},
                                {"layer_sparsity", {0.45, 0.55}}};
  const std::string page = render_html_report(report, "");
  EXPECT_EQ(count(page, "<line class=\"marker target-sparsity\""), 2);
  EXPECT_TRUE(has(page, "data-layer=\"1\" data-value=\"0.55\""));
  EXPECT_TRUE(has(page, "<td data-layer=\"0\" data-target=\"0.45\">45.0%</td>"));
  EXPECT_TRUE(has(page, "<td data-layer=\"1\" data-target=\"0.55\">55.0%</td>"));
  EXPECT_TRUE(has(page, "<td data-layer=\"0\" data-outlier=\"1.5\">1.5</td>"));
  EXPECT_TRUE(has(page, "<td data-layer=\"1\" data-outlier=\"0.25\">0.25</td>"));
  EXPECT_TRUE(has(page, "kind: <b>owl</b>"));
  EXPECT_FALSE(has(page, "data-setting=\"sparsity_profile\"")) << "the profile object is a section, not a setting";
}

TEST(RenderHtmlReport, UniformProfileWithNullOutliers_HasNoOutlierColumn) {
  json report = hand_made_report();
  report["sparsity_profile"] = {{"kind", "uniform"}, {"outlier_percent", nullptr}, {"layer_sparsity", {0.5, 0.5}}};
  const std::string page = render_html_report(report, "");
  EXPECT_TRUE(has(page, "<td data-layer=\"1\" data-target=\"0.5\">"));
  EXPECT_FALSE(has(page, "data-outlier"));
}

TEST(RenderHtmlReport, MemoryLog_LinePerRankAgainstEstimateAndBudget) {
  json report = hand_made_report();
  report["memory_log"] = "/runs/memory.csv";
  const std::string csv =
      "rank,checkpoint,seconds,host_rss_bytes,host_peak_bytes,device_allocated_bytes,device_reserved_bytes,"
      "device_peak_bytes,device_free_bytes\n"
      "0,start,0.000000,100000000,100000000,,,,\n0,\"layer 0, done\",1.250000,150000000,160000000,,,,\n"
      "1,start,0.000000,90000000,90000000,,,,\n1,end,2.000000,170000000,170000000,,,,\n";
  const std::string page = render_html_report(report, csv);
  EXPECT_EQ(count(page, "<polyline class=\"line\""), 2);
  EXPECT_EQ(count(page, "<circle class=\"point\""), 4);
  EXPECT_TRUE(has(page, "data-rank=\"0\" data-checkpoint=\"layer 0, done\" data-seconds=\"1.25\" data-bytes=\"150000000\""));
  EXPECT_TRUE(has(page, "<line class=\"reference\"") && has(page, "data-rank=\"1\" data-kind=\"estimate\" data-value=\"180000000\""));
  EXPECT_TRUE(has(page, "class=\"reference off-scale\" data-rank=\"0\" data-kind=\"budget\""));
  EXPECT_FALSE(has(page, "memory-peaks-chart")) << "the log replaces the peak bars";
}

TEST(RenderHtmlReport, MemoryLogMissingOrBroken_IsANoteNotAnError) {
  json report = hand_made_report();
  report["memory_log"] = "/runs/<gone>.csv";
  std::string page = render_html_report(report, "");
  EXPECT_TRUE(has(page, "The memory log /runs/&lt;gone&gt;.csv was not found"));
  EXPECT_TRUE(has(page, "memory-peaks-chart"));
  page = render_html_report(report, "rank,seconds\n0,1\n");
  EXPECT_TRUE(has(page, "The memory log could not be read: /runs/&lt;gone&gt;.csv: no column"));
}

TEST(RenderHtmlReport, NotAPruneReport_IsFormatError) {
  EXPECT_THROW(render_html_report(json{{"layers", 3}}, ""), FormatError);
  EXPECT_EQ(prune_report_problem(json::array()), "the top level is not an object");
  EXPECT_EQ(prune_report_problem(json{{"layers", json::array()}}), "no \"ranks\" array");
  EXPECT_EQ(prune_report_problem(json{{"layers", {{{"layer", 0}}}}, {"ranks", json::array()}}),
            "layers[0] has no \"linears\" object");
  EXPECT_EQ(prune_report_problem(hand_made_report()), std::nullopt);
}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("pipeprune_html_report_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(WriteHtmlReport, BadFiles_OneLineErrorNamingTheFile) {
  const fs::path dir = fresh_dir("errors");
  const fs::path missing = dir / "missing.json";
  std::string message = testing::error_message<IoError>([&] { write_html_report(missing, dir / "a.html"); });
  EXPECT_NE(message.find(missing.string() + ": no such file"), std::string::npos) << message;
  write_file_atomic(dir / "text.json", "not json {");
  message = testing::error_message<FormatError>([&] { write_html_report(dir / "text.json", dir / "a.html"); });
  EXPECT_NE(message.find((dir / "text.json").string() + ": invalid JSON"), std::string::npos) << message;
  write_file_atomic(dir / "other.json", "{\"layers\": []}");
  message = testing::error_message<FormatError>([&] { write_html_report(dir / "other.json", dir / "a.html"); });
  EXPECT_NE(message.find((dir / "other.json").string() + ": not a prune report (no \"ranks\" array)"), std::string::npos)
      << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "a.html"));
}

TEST(WriteHtmlReport, RelativeMemoryLog_ReadFromTheJsonsFolder) {
  const fs::path dir = fresh_dir("relative");
  json report = hand_made_report();
  report["memory_log"] = "logs/m.csv";
  fs::create_directories(dir / "logs");
  write_file_atomic(dir / "logs" / "m.csv",
                    "rank,checkpoint,seconds,host_rss_bytes,host_peak_bytes\n0,start,0.5,1000,1000\n");
  write_file_atomic(dir / "run.json", report.dump());
  write_html_report(dir / "run.json", default_html_path(dir / "run.json"));
  const std::string page = read_file(dir / "run.html");
  EXPECT_TRUE(has(page, "data-seconds=\"0.5\" data-bytes=\"1000\"")) << "read from " << (dir / "logs" / "m.csv");
}

TEST(DefaultHtmlPath, ReplacesJsonExtension) {
  EXPECT_EQ(default_html_path("/a/run.json"), fs::path("/a/run.html"));
  EXPECT_EQ(default_html_path("/a/run.report"), fs::path("/a/run.report.html"));
}

}  // namespace
}  // namespace pipeprune
