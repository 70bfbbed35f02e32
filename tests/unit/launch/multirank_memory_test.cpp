// Memory figures of a multi-rank job (run under mpirun from the test): every rank's estimate
// is within 10% of its measured peak, in both --parallel modes, and --log-memory merges one CSV
// with a row per checkpoint per rank and monotone peaks.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/common/sanitizer.h"
#include "support/run_command.h"

namespace pipeprune {
namespace {

const std::string kSource = PIPEPRUNE_SOURCE_DIR;

TEST(MultiRankMemory, EstimatesWithinTenPercentAndMergedMemoryLog) {
  const std::string dir = testing::fresh_temp_dir("multirank_memory");
  for (const std::string parallel : {"pipeline", "samples"}) {
    for (int np : {2, 3}) {
      SCOPED_TRACE("--parallel " + parallel);
      const std::string out = dir + "/out_" + parallel + std::to_string(np);
      const auto result = testing::run_pipeprune_ranks(np, {"prune", "--model", kSource + "/examples/stories260K", "--output", out,
                                         "--method", "sparsegpt", "--calib-data", kSource + "/examples/text/tinystories_val.txt",
                                         "--nsamples", "16", "--seqlen", "256", "--report", out + ".json",
                                         "--parallel", parallel,
                                         "--log-memory", "--log-memory-file", out + ".csv", "--quiet"});
      ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
      std::ifstream report_file(out + ".json");
      const auto report = nlohmann::json::parse(report_file);
      ASSERT_EQ(report["ranks"].size(), static_cast<size_t>(np));
      for (const auto& rank : report["ranks"]) {
        const double ratio = rank["estimated_peak_bytes"].get<double>() / rank["peak_rss_bytes"].get<double>();
        // ASan's shadow memory and quarantine are in the resident set and in no plan.
        if (!kAddressSanitizer) EXPECT_NEAR(ratio, 1.0, 0.10) << "world " << np << " rank " << rank["rank"];
      }
      std::ifstream csv(out + ".csv");
      std::string line;
      std::getline(csv, line);
      std::map<int, std::vector<std::string>> checkpoints;
      std::map<int, double> last_peak;
      while (std::getline(csv, line)) {
        std::stringstream fields(line);
        std::string rank, name, seconds, rss, peak;
        for (std::string* field : {&rank, &name, &seconds, &rss, &peak}) std::getline(fields, *field, ',');
        const int r = std::stoi(rank);
        checkpoints[r].push_back(name);
        EXPECT_GE(std::stod(peak), last_peak[r]) << line;
        last_peak[r] = std::stod(peak);
      }
      ASSERT_EQ(checkpoints.size(), static_cast<size_t>(np));
      for (const auto& [rank, names] : checkpoints) {
        EXPECT_EQ(names.front(), "start");
        EXPECT_EQ(names.back(), "end");
        // One "layer N done" per owned layer: every layer of the model exactly once over all ranks.
        EXPECT_NE(std::find(names.begin(), names.end(), "planned"), names.end());
      }
      int layer_rows = 0;
      for (const auto& [rank, names] : checkpoints) {
        for (const auto& name : names) layer_rows += name.find(" done") != std::string::npos;
      }
      EXPECT_EQ(layer_rows, 5);
    }
  }
}

TEST(MultiRankMemory, OneRankWithTooLittleMemory_SameErrorOnEveryRankBeforeAnyWork) {
  const std::string dir = testing::fresh_temp_dir("multirank_budget");
  const auto result = testing::run_pipeprune_ranks(2, {"prune", "--model", kSource + "/examples/stories260K", "--output", dir + "/out",
                                    "--method", "wanda", "--calib-data", kSource + "/examples/text/tinystories_val.txt",
                                    "--nsamples", "4", "--seqlen", "64", "--max-memory", "cpu=8GiB,1:cpu=40MiB", "--quiet"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("rank 1 (") , std::string::npos) << result.err;
  EXPECT_NE(result.err.find("it needs at least"), std::string::npos) << result.err;
  EXPECT_TRUE(std::filesystem::is_empty(dir)) << "work was done before the budget check";
}

}  // namespace
}  // namespace pipeprune
