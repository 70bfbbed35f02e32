// The checkpoint writer: a complete output renames into place with its side files; an output
// missing a tensor fails naming it and leaves nothing at the target; two writers of one plan
// (two ranks) complete it together; pieces go front to back; weight files of other formats
// are never copied as side files.
#include "core/io/checkpoint_writer.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>


#include "core/common/error.h"
#include "support/expect_error.h"
#include "unit/io/io_test_util.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::fresh_dir;
using testing::read_bytes;

const fs::path kDemo = fs::path(PIPEPRUNE_SOURCE_DIR) / "examples" / "stories260K";
const fs::path kSharded = fs::path(PIPEPRUNE_SOURCE_DIR) / "tests" / "fixtures" / "stories260K-bf16-sharded";

const std::vector<TensorSpec> kSpecs = {{"a", DType::kF32, {4}}, {"b", DType::kBF16, {2, 3}}, {"c", DType::kF32, {0}}};

TEST(CheckpointWriter, EveryTensorWritten_CommitRenamesWithSideFilesAndIndexLikeTheInput) {
  const SafetensorsCheckpoint input = SafetensorsCheckpoint::open(kSharded);
  const fs::path target = fresh_dir("ckpt_complete") / "out";
  CheckpointWriter writer = CheckpointWriter::create(target, false, plan_layout_of(input, std::nullopt));
  for (const std::string& name : input.names()) writer.copy_tensor(input, name);
  writer.copy_side_files(kSharded);
  EXPECT_FALSE(fs::exists(target)) << "nothing at the target before commit";
  writer.commit();
  for (const std::string& file : input.file_names()) {
    EXPECT_EQ(read_bytes(target / file), read_bytes(kSharded / file)) << file;
  }
  EXPECT_EQ(read_bytes(target / kSafetensorsIndexFile), read_bytes(kSharded / kSafetensorsIndexFile));
  EXPECT_EQ(read_bytes(target / "config.json"), read_bytes(kSharded / "config.json"));
  EXPECT_EQ(read_bytes(target / "tokenizer.json"), read_bytes(kSharded / "tokenizer.json"));
  EXPECT_FALSE(fs::exists(StagedDirectory::staging_path_for(target)));
}

TEST(CheckpointWriter, ATensorNeverWritten_CommitFailsNamingItAndLeavesNothing) {
  const fs::path root = fresh_dir("ckpt_missing");
  const fs::path target = root / "out";
  {
    CheckpointWriter writer = CheckpointWriter::create(target, false, plan_layout_by_size(kSpecs, 1 << 20));
    writer.write("a", at::ones({4}));
    writer.write("c", at::zeros({0}));
    EXPECT_THAT(testing::error_message<Error>([&] { writer.commit(); }),
                HasSubstr("tensor b was never written (1 of 3 planned tensors missing)"));
  }
  EXPECT_FALSE(fs::exists(target));
  EXPECT_TRUE(fs::is_empty(root)) << "the staged folder must be gone";
}

TEST(CheckpointWriter, TwoWritersOfOnePlan_CompleteItTogether) {
  const fs::path target = fresh_dir("ckpt_two") / "out";
  const ShardLayout layout = plan_layout_by_size(kSpecs, 16);
  CheckpointWriter first = CheckpointWriter::create(target, false, layout);
  CheckpointWriter second = CheckpointWriter::join(target, layout);
  EXPECT_EQ(second.staging_path(), first.staging_path());
  first.write("a", at::arange(4, at::kFloat));
  second.write("b", at::full({2, 3}, 2.0, at::kBFloat16));
  second.write("c", at::zeros({0}));
  second.sync();
  EXPECT_THROW(first.commit(), Error) << "b and c were written by the other writer, not reported yet";
  first.commit(second.written());
  const SafetensorsCheckpoint out = SafetensorsCheckpoint::open(target);
  EXPECT_TRUE(at::equal(out.load("a"), at::arange(4, at::kFloat)));
  EXPECT_TRUE(at::equal(out.load("b"), at::full({2, 3}, 2.0, at::kBFloat16)));
  EXPECT_THROW(second.commit(), Error) << "only the creating writer commits";
}

TEST(CheckpointWriter, WriteBytes_PiecesFrontToBackEqualOneWrite) {
  const fs::path root = fresh_dir("ckpt_pieces");
  const std::vector<TensorSpec> specs = {{"t", DType::kF32, {6}}};
  const at::Tensor values = at::arange(6, at::kFloat);
  CheckpointWriter pieces = CheckpointWriter::create(root / "pieces", false, plan_layout_by_size(specs, 1 << 20));
  const auto* data = static_cast<const char*>(values.data_ptr());
  pieces.write_bytes("t", 0, data, 8);
  EXPECT_TRUE(pieces.written().empty()) << "half a tensor is not written";
  EXPECT_THROW(pieces.write_bytes("t", 16, data + 16, 8), Error) << "pieces must come in order";
  pieces.write_bytes("t", 8, data + 8, 16);
  EXPECT_THROW(pieces.write_bytes("t", 24, data, 4), Error) << "past the end";
  EXPECT_EQ(pieces.written(), std::vector<std::string>{"t"});
  pieces.commit();
  CheckpointWriter whole = CheckpointWriter::create(root / "whole", false, plan_layout_by_size(specs, 1 << 20));
  whole.write("t", values);
  whole.commit();
  EXPECT_EQ(read_bytes(root / "pieces" / kSafetensorsSingleFile), read_bytes(root / "whole" / kSafetensorsSingleFile));
}

TEST(CheckpointWriter, SideFiles_OtherWeightFormatsAreNotCopied) {
  const fs::path source = fresh_dir("ckpt_side_source");
  for (const char* name : {"config.json", "tokenizer.json", "generation_config.json", "README.md", "pytorch_model.bin",
                           "pytorch_model.bin.index.json", "model.safetensors", "model.safetensors.index.json"}) {
    testing::write_bytes(source / name, name);
  }
  const fs::path target = fresh_dir("ckpt_side") / "out";
  CheckpointWriter writer = CheckpointWriter::create(target, false, plan_layout_by_size(kSpecs, 1 << 20));
  writer.add_file("config.json", "{\"mine\": true}");
  writer.copy_side_files(source);
  writer.write("a", at::ones({4}));
  writer.write("b", at::ones({2, 3}, at::kBFloat16));
  writer.write("c", at::zeros({0}));
  writer.commit();
  EXPECT_EQ(read_bytes(target / "config.json"), "{\"mine\": true}") << "an added file is not replaced";
  EXPECT_EQ(read_bytes(target / "README.md"), "README.md");
  EXPECT_EQ(read_bytes(target / "generation_config.json"), "generation_config.json");
  EXPECT_FALSE(fs::exists(target / "pytorch_model.bin"));
  EXPECT_FALSE(fs::exists(target / "pytorch_model.bin.index.json"));
  EXPECT_NE(read_bytes(target / "model.safetensors"), "model.safetensors") << "the output's own weights";
}

TEST(IsWeightFile, WeightFormatsAndIndexesOnly) {
  for (const char* name : {"model.safetensors", "model-00001-of-00002.safetensors", "model.safetensors.index.json",
                           "pytorch_model.bin", "pytorch_model-00001-of-00002.bin", "pytorch_model.bin.index.json",
                           "tf_model.h5", "flax_model.msgpack", "consolidated.00.pth", "model.gguf"}) {
    EXPECT_TRUE(is_weight_file(name)) << name;
  }
  for (const char* name : {"config.json", "tokenizer.json", "tokenizer.model", "generation_config.json", "README.md",
                           "special_tokens_map.json", "merges.txt", "vocab.json"}) {
    EXPECT_FALSE(is_weight_file(name)) << name;
  }
}

TEST(CheckpointWriter, ExistingTarget_IoErrorBeforeAnyFileUnlessOverwrite) {
  const fs::path root = fresh_dir("ckpt_exists");
  fs::create_directories(root / "out");
  EXPECT_THROW(CheckpointWriter::create(root / "out", false, plan_layout_by_size(kSpecs, 1 << 20)), IoError);
  EXPECT_FALSE(fs::exists(StagedDirectory::staging_path_for(root / "out")));
}

}  // namespace
}  // namespace pipeprune
