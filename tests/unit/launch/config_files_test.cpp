// The TOML examples under configs/ hold only options `prune` knows, and a bad config file is a
// clear error.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/run_command.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using testing::run_pipeprune;

TEST(ConfigFiles, EveryShippedConfigParses) {
  int n_configs = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(PIPEPRUNE_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".toml") continue;
    ++n_configs;
    const auto result = run_pipeprune({"prune", "--config", entry.path().string(), "--help"});
    EXPECT_EQ(result.exit_code, 0) << entry.path() << ": " << result.err;
  }
  EXPECT_GE(n_configs, 7);
}

TEST(ConfigFiles, UnknownKey_ErrorNamesFileAndKey) {
  const std::string dir = testing::fresh_temp_dir("config_files");
  std::ofstream(dir + "/bad.toml") << "method = \"wanda\"\nsparsity_typo = 0.5\n";
  const auto result = run_pipeprune({"prune", "--config", dir + "/bad.toml", "--model", "m", "--output", "o"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("bad.toml: unknown option 'sparsity_typo'"), std::string::npos) << result.err;
}

TEST(ConfigFiles, CommandLineWinsOverFile) {
  const std::string dir = testing::fresh_temp_dir("config_wins");
  std::ofstream(dir + "/c.toml") << "method = \"no-such-method\"\n";
  // The file's bad method is overridden on the command line, so the run gets past it (and then
  // stops on the missing model folder).
  const auto result = run_pipeprune({"prune", "--config", dir + "/c.toml", "--method", "magnitude", "--model",
                                     dir + "/missing", "--output", dir + "/o", "--quiet"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(result.err.find("no-such-method"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("missing"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace pipeprune
