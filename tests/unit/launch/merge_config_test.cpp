// `pipeprune merge --config F.toml` with mergekit's per-model [[models]] tables: the same bytes
// as the equivalent command line (ties with per-model weights and densities, linear), the
// command line's --weights wins over the tables', and each malformed table is a one-line error
// naming the file, the table and the key, before anything is written.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/run_command.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using testing::run_pipeprune;

// A random model of the demo's architecture (64 wide, 5 layers); `seed` makes it another "fine-tune".
std::string random_model(const std::string& dir, const std::string& name, int seed) {
  const std::string out = dir + "/" + name;
  const auto r = run_pipeprune({"synth", "--config", testing::kDemoModel, "--output", out, "--dtype", "fp32",
                                "--seed", std::to_string(seed), "--tokenizer-from", testing::kDemoModel, "--quiet"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return out;
}

// One [[models]] table: `model = "PATH"` and the lines of `rest` (keys, a [models.parameters]).
std::string table(const std::string& model, const std::string& rest = "") {
  return "[[models]]\nmodel = \"" + model + "\"\n" + rest;
}

std::string write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every file of folder `a` has the same bytes in `b`, and `b` has no others.
void expect_same_folders(const std::string& a, const std::string& b) {
  size_t n_files = 0;
  for (const auto& entry : fs::directory_iterator(a)) {
    ++n_files;
    const std::string file = entry.path().filename().string();
    EXPECT_EQ(file_bytes(entry.path()), file_bytes(b + "/" + file)) << file;
  }
  EXPECT_GT(n_files, 0u);
  EXPECT_EQ(std::distance(fs::directory_iterator(b), fs::directory_iterator()), static_cast<long>(n_files));
}

void expect_merge(const std::vector<std::string>& args) {
  std::vector<std::string> full{"merge", "--quiet"};
  full.insert(full.end(), args.begin(), args.end());
  const auto r = run_pipeprune(full);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

class MergeConfig : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::fresh_temp_dir("merge_config"));
    base_ = new std::string(random_model(*dir_, "base", 1));
    x_ = new std::string(random_model(*dir_, "x", 2));
    y_ = new std::string(random_model(*dir_, "y", 3));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    for (std::string* s : {dir_, base_, x_, y_}) delete s;
  }
  static std::string* dir_;
  static std::string* base_;
  static std::string* x_;
  static std::string* y_;
};
std::string* MergeConfig::dir_ = nullptr;
std::string* MergeConfig::base_ = nullptr;
std::string* MergeConfig::x_ = nullptr;
std::string* MergeConfig::y_ = nullptr;

// Table 1 gives its parameters in the table, table 2 in mergekit's nested [models.parameters].
TEST_F(MergeConfig, TiesTables_SameBytesAsCommandLine) {
  const std::string toml = write_file(*dir_ + "/ties.toml",
                                      "method = \"ties\"\nbase = \"" + *base_ + "\"\nlambda = 0.9  # a comment\n" +
                                          table(*x_, "weight = 0.6\ndensity = 0.3\n") +
                                          table(*y_, "[models.parameters]\nweight = 0.4\ndensity = 0.7\n"));
  expect_merge({"--config", toml, "--output", *dir_ + "/ties_file"});
  expect_merge({"--method", "ties", "--base", *base_, "--lambda", "0.9", "--models", *x_ + "," + *y_, "--weights",
                "0.6,0.4", "--density", "0.3,0.7", "--output", *dir_ + "/ties_cli"});
  expect_same_folders(*dir_ + "/ties_cli", *dir_ + "/ties_file");
}

// Tables inside the [merge] section ([[merge.models]]) read the same as at the top.
TEST_F(MergeConfig, LinearTablesInMergeSection_SameBytesAsCommandLine) {
  const std::string toml = write_file(*dir_ + "/linear.toml",
                                      "[merge]\nmethod = \"linear\"\n"
                                      "[[merge.models]]\nmodel = \"" + *x_ + "\"\nweight = 2\n"
                                      "[[merge.models]]\nmodel = \"" + *y_ + "\"\nweight = 1\n");
  expect_merge({"--config", toml, "--output", *dir_ + "/linear_file"});
  expect_merge({"--method", "linear", "--models", *x_ + "," + *y_, "--weights", "2,1", "--output",
                *dir_ + "/linear_cli"});
  expect_same_folders(*dir_ + "/linear_cli", *dir_ + "/linear_file");
}

// --weights on the command line wins over the tables' weights, as over any key of the file;
// the tables' densities still apply.
TEST_F(MergeConfig, WeightsOnCommandLine_WinOverTables) {
  const std::string toml = write_file(*dir_ + "/wins.toml", "method = \"ties\"\nbase = \"" + *base_ + "\"\n" +
                                                                table(*x_, "weight = 0.6\ndensity = 0.5\n") +
                                                                table(*y_, "weight = 0.4\ndensity = 0.7\n"));
  expect_merge({"--config", toml, "--weights", "0.1,0.9", "--output", *dir_ + "/wins_file"});
  expect_merge({"--method", "ties", "--base", *base_, "--models", *x_ + "," + *y_, "--weights", "0.1,0.9",
                "--density", "0.5,0.7", "--output", *dir_ + "/wins_cli"});
  expect_same_folders(*dir_ + "/wins_cli", *dir_ + "/wins_file");
}

// Each refusal: one line naming the file (and the table and key), exit code 1, nothing written.
TEST_F(MergeConfig, MalformedTables_FailInOneLineNamingFileTableAndKey) {
  const std::string out = *dir_ + "/refused";
  auto fails_with = [&](const std::string& body, const std::string& message,
                        const std::vector<std::string>& extra = {}) {
    const std::string toml = write_file(*dir_ + "/bad.toml", "method = \"ties\"\nbase = \"" + *base_ + "\"\n" + body);
    std::vector<std::string> args{"merge", "--config", toml, "--output", out};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run_pipeprune(args);
    EXPECT_EQ(r.exit_code, 1) << message;
    EXPECT_NE(r.err.find(toml + ": " + message), std::string::npos) << r.err;
    EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
    EXPECT_FALSE(fs::exists(out)) << message;
  };
  const std::string x = table(*x_);
  const std::string y = table(*y_);
  fails_with(x + y, "[[models]] tables and --models on the command line both name the models; give them in one place",
             {"--models", *x_});
  fails_with("models = \"" + *x_ + "\"\n" + x + y,
             "[[models]] tables and the models key both name the models; give them in one place");
  fails_with(x + "weight = 0.6\n" + y,
             "[[models]] table 2 (" + *y_ + ") has no weight; give weight for every model or for none");
  fails_with(x + y + "[models.parameters]\ndensity = 0.5\n",
             "[[models]] table 1 (" + *x_ + ") has no density; give density for every model or for none");
  fails_with(x + "[[models]]\nweight = 0.4\n", "[[models]] table 2 has no model; give model = \"PATH\"");
  fails_with(x + "wieght = 0.6\n" + y, "[[models]] table 1: unknown key 'wieght'");
  fails_with(x + "[models.parameters]\nepsilon = 0.1\n" + y,
             "[[models]] table 1: unknown key 'epsilon' in [models.parameters]");
  fails_with(x + y + "[models.extras]\nweight = 1\n", "[models.extras] is not a table pipeprune reads");
  fails_with(x + "weight = \"heavy\"\n" + y, "[[models]] table 1: weight = 'heavy' is not a number");
  fails_with(x + "weight = true\n" + y, "[[models]] table 1: weight = 'true' is not a number");
  fails_with(x + y + "density = [0.5, 0.7]\n", "[[models]] table 2: density takes one value, not 2");
  fails_with(x + "weight = 1\n[models.parameters]\nweight = 2\n" + y,
             "[[models]] table 1: weight is given twice (in the table and in [models.parameters])");
  fails_with("weights = \"0.6,0.4\"\n" + x + "weight = 0.6\n" + y + "weight = 0.4\n",
             "weights is given as a key and as weight in the [[models]] tables; give it in one place");
}

// A table's model is an entry of --models as it is: MODEL+ADAPTER reaches the adapter check,
// and a relative path is read from the working directory (as mergekit reads it).
TEST_F(MergeConfig, TableModel_IsReadAsAModelsEntry) {
  const std::string toml = write_file(*dir_ + "/adapter.toml", "method = \"ties\"\nbase = \"" + *base_ + "\"\n" +
                                                                   table(*x_ + "+no-such-adapter"));
  const auto r = run_pipeprune({"merge", "--config", toml, "--output", *dir_ + "/adapter_out"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--models: adapter no-such-adapter (of " + *x_ + "+no-such-adapter) is not a folder"),
            std::string::npos)
      << r.err;
  const std::string relative = write_file(*dir_ + "/relative.toml", "method = \"linear\"\n" + table("x") + table("y"));
  const fs::path cwd = fs::current_path();
  fs::current_path(*dir_);
  const auto from_dir = run_pipeprune({"merge", "--quiet", "--config", relative, "--output", "relative_out"});
  fs::current_path(cwd);
  EXPECT_EQ(from_dir.exit_code, 0) << from_dir.err;
  EXPECT_TRUE(fs::exists(*dir_ + "/relative_out/config.json"));
}

}  // namespace
}  // namespace pipeprune
