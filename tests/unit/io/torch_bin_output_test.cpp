// The output of a pytorch_model*.bin input: safetensors with the input's grouping of tensors
// into files, every stored name (both tied names), the input's .bin files left behind, and the
// same bytes as the output of the same tensors stored as safetensors.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/common/log.h"
#include "core/io/checkpoint_writer.h"
#include "unit/io/io_test_util.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::fresh_dir;
using testing::read_bytes;
using testing::write_bytes;

const fs::path kData = fs::path(PIPEPRUNE_SOURCE_DIR) / "tests" / "data" / "torch_bin";
constexpr const char* kNotice = "input is pytorch_model.bin; the output is written as safetensors";

// Copies every tensor and the side files of `input` into `target`, as ModelWriter does.
void rewrite(const SafetensorsCheckpoint& input, const fs::path& target) {
  CheckpointWriter writer = CheckpointWriter::create(target, false, plan_layout_of(input, std::nullopt));
  for (const std::string& name : input.names()) writer.copy_tensor(input, name);
  writer.copy_side_files(input.dir());
  writer.commit();
}

std::vector<std::string> info_lines(const std::function<void()>& run) {
  std::vector<std::string> lines;
  const log::Sink previous = log::set_sink([&](log::Level level, const std::string& line) {
    if (level == log::Level::kInfo) lines.push_back(line);
  });
  run();
  log::set_sink(previous);
  return lines;
}

TEST(TorchBinOutput, SingleBin_WritesModelSafetensorsEqualToTheTwinsOutput) {
  const fs::path root = fresh_dir("torch_bin_out_single");
  fs::create_directories(root / "bin");
  fs::create_directories(root / "st");
  fs::copy_file(kData / "state_dict.bin", root / "bin" / "pytorch_model.bin");
  fs::copy_file(kData / "state_dict.safetensors", root / "st" / "model.safetensors");
  for (const char* dir : {"bin", "st"}) write_bytes(root / dir / "config.json", "{}");
  const SafetensorsCheckpoint bin = SafetensorsCheckpoint::open(root / "bin");

  const std::vector<std::string> lines = info_lines([&] {
    const ShardLayout layout = plan_layout_of(bin, std::nullopt);
    ASSERT_EQ(layout.files.size(), 1u);
    EXPECT_EQ(layout.files[0].name, kSafetensorsSingleFile);
    EXPECT_FALSE(layout.write_index);
    // Both tied names are planned, as for a safetensors input that stores both.
    EXPECT_EQ(layout.tensors.count("lm_head.weight"), 1u);
    EXPECT_EQ(layout.tensors.count("model.embed_tokens.weight"), 1u);
  });
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr(kNotice));

  rewrite(bin, root / "bin_out");
  rewrite(SafetensorsCheckpoint::open(root / "st"), root / "st_out");
  EXPECT_FALSE(fs::exists(root / "bin_out" / "pytorch_model.bin"));
  EXPECT_TRUE(fs::exists(root / "bin_out" / "config.json"));
  EXPECT_EQ(read_bytes(root / "bin_out" / kSafetensorsSingleFile), read_bytes(root / "st_out" / kSafetensorsSingleFile));
  const SafetensorsCheckpoint out = SafetensorsCheckpoint::open(root / "bin_out");
  EXPECT_FALSE(out.pytorch_bin());
  EXPECT_EQ(out.names(), bin.names());
  for (const std::string& name : bin.names()) EXPECT_TRUE(at::equal(out.load(name), bin.load(name))) << name;
}

TEST(TorchBinOutput, ShardedBin_SameGroupingUnderSafetensorsNamesWithIndex) {
  const fs::path root = fresh_dir("torch_bin_out_sharded");
  fs::copy(kData / "sharded", root / "in");
  const SafetensorsCheckpoint bin = SafetensorsCheckpoint::open(root / "in");
  const ShardLayout layout = plan_layout_of(bin, std::nullopt);
  ASSERT_EQ(layout.files.size(), 2u);
  EXPECT_EQ(layout.files[0].name, "model-00001-of-00002.safetensors");
  EXPECT_EQ(layout.files[1].name, "model-00002-of-00002.safetensors");
  EXPECT_TRUE(layout.write_index);
  EXPECT_EQ(layout.tensors.at("a").file_index, 0);
  EXPECT_EQ(layout.tensors.at("b").file_index, 1);
  EXPECT_EQ(layout.tensors.at("c").file_index, 1);

  rewrite(bin, root / "out");
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(root / "out")) files.push_back(entry.path().filename().string());
  std::sort(files.begin(), files.end());
  EXPECT_THAT(files, ElementsAre("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                                 "model.safetensors.index.json"));
  const SafetensorsCheckpoint out = SafetensorsCheckpoint::open(root / "out");
  EXPECT_FALSE(out.pytorch_bin());
  EXPECT_EQ(out.weight_map().at("b"), "model-00002-of-00002.safetensors");
  for (const std::string& name : bin.names()) EXPECT_TRUE(at::equal(out.load(name), bin.load(name))) << name;
}

TEST(TorchBinOutput, ReshardedBySize_UsesTheSizePlanner) {
  const SafetensorsCheckpoint bin = SafetensorsCheckpoint::open(kData / "sharded");
  const ShardLayout layout = plan_layout_of(bin, int64_t{1} << 20);
  ASSERT_EQ(layout.files.size(), 1u);
  EXPECT_EQ(layout.files[0].name, kSafetensorsSingleFile);
}

}  // namespace
}  // namespace pipeprune
