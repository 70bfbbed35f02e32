#include "core/io/safetensors_writer.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <random>

#include "core/common/error.h"
#include "core/io/safetensors.h"
#include "unit/io/io_test_util.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::fresh_dir;
using testing::read_bytes;

const fs::path kSourceDir = PIPEPRUNE_SOURCE_DIR;
const fs::path kFp32Dir = kSourceDir / "examples" / "stories260K";
const fs::path kShardedDir = kSourceDir / "tests" / "fixtures" / "stories260K-bf16-sharded";

std::string padded(std::string text) {
  text.append((8 - text.size() % 8) % 8, ' ');
  return testing::le64(text.size()) + text;
}

std::vector<TensorSpec> specs_of(const SafetensorsCheckpoint& ckpt) {
  std::vector<TensorSpec> specs;
  for (const std::string& name : ckpt.names()) {
    const TensorInfo& info = ckpt.info(name);
    specs.push_back(TensorSpec{name, info.dtype, info.shape});
  }
  return specs;
}

// Distinct, recognisable values for every spec (exact in every dtype: small integers).
std::map<std::string, at::Tensor> make_tensors(const std::vector<TensorSpec>& specs) {
  std::map<std::string, at::Tensor> out;
  int64_t start = 1;
  for (const TensorSpec& spec : specs) {
    int64_t numel = 1;
    for (const int64_t d : spec.shape) numel *= d;
    out[spec.name] = at::arange(start, start + numel, at::kFloat).reshape(spec.shape).to(to_scalar_type(spec.dtype));
    start = (start + 37) % 200;
  }
  return out;
}

// Writes every tensor in a shuffled order, as ranks finishing at different times would.
void write_all(const fs::path& dir, const ShardLayout& layout, const std::map<std::string, at::Tensor>& tensors,
               unsigned seed) {
  ShardWriter writer(dir, layout);
  writer.create_files();
  std::vector<std::string> names;
  for (const auto& entry : tensors) names.push_back(entry.first);
  std::shuffle(names.begin(), names.end(), std::mt19937(seed));
  for (const auto& name : names) writer.write(name, tensors.at(name));
  EXPECT_TRUE(writer.missing().empty());
  writer.finish();
}

const std::vector<TensorSpec> kSmall = {
    {"a", DType::kF32, {4}}, {"b", DType::kF32, {2}}, {"c", DType::kBF16, {20}}, {"d", DType::kF32, {1}}};

TEST(PlanLayoutBySize, HandWorkedExample_SplitsLikeTransformers) {
  // a+b fill 24 bytes; c (40 bytes) exceeds the limit and sits alone; d starts a third file.
  const ShardLayout layout = plan_layout_by_size(kSmall, 24);
  ASSERT_EQ(layout.files.size(), 3u);
  EXPECT_TRUE(layout.write_index);
  EXPECT_EQ(layout.files[0].name, "model-00001-of-00003.safetensors");
  EXPECT_EQ(layout.files[2].name, "model-00003-of-00003.safetensors");
  EXPECT_EQ(layout.tensors.at("a").file_index, 0);
  EXPECT_EQ(layout.tensors.at("b").file_index, 0);
  EXPECT_EQ(layout.tensors.at("c").file_index, 1);
  EXPECT_EQ(layout.tensors.at("d").file_index, 2);
  const int64_t header0 = static_cast<int64_t>(layout.files[0].header.size());
  EXPECT_EQ(layout.tensors.at("a").file_offset, header0);
  EXPECT_EQ(layout.tensors.at("b").file_offset, header0 + 16);
  EXPECT_EQ(layout.tensors.at("b").n_bytes, 8);
  EXPECT_EQ(layout.files[0].total_size, header0 + 24);
  EXPECT_EQ(layout.files[1].total_size, static_cast<int64_t>(layout.files[1].header.size()) + 40);
}

TEST(PlanLayoutBySize, EverythingFits_OneModelSafetensorsWithoutIndex) {
  const ShardLayout layout = plan_layout_by_size(kSmall, 1 << 20);
  ASSERT_EQ(layout.files.size(), 1u);
  EXPECT_EQ(layout.files[0].name, "model.safetensors");
  EXPECT_FALSE(layout.write_index);
}

TEST(PlanLayoutBySize, HeaderBytes_MatchTheSafetensorsLibraryByteForByte) {
  const ShardLayout layout = plan_layout_by_size({{"w", DType::kF32, {2, 3}}}, 1 << 20);
  // Written out by hand from the format: metadata first, then dtype/shape/data_offsets.
  EXPECT_EQ(layout.files[0].header,
            padded(R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})"));
  EXPECT_EQ(layout.files[0].header.size() % 8, 0u);
}

TEST(PlanLayoutBySize, MixedDtypes_F32ThenBf16ThenF16ThenByName) {
  const ShardLayout layout = plan_layout_by_size(
      {{"z16", DType::kF16, {1}}, {"ybf", DType::kBF16, {1}}, {"x32", DType::kF32, {1}}, {"a32", DType::kF32, {3}},
       {"abf", DType::kBF16, {1}}},
      1 << 20);
  std::vector<std::pair<int64_t, std::string>> order;
  for (const auto& [name, t] : layout.tensors) order.emplace_back(t.file_offset, name);
  std::sort(order.begin(), order.end());
  std::vector<std::string> names;
  for (const auto& entry : order) names.push_back(entry.second);
  EXPECT_EQ(names, (std::vector<std::string>{"a32", "x32", "abf", "ybf", "z16"}));
}

TEST(PlanLayoutBySize, BadInput_Throws) {
  EXPECT_THROW(plan_layout_by_size(kSmall, 0), ConfigError);
  EXPECT_THROW(plan_layout_by_size({{"a", DType::kF32, {1}}, {"a", DType::kF32, {2}}}, 100), FormatError);
  EXPECT_THROW(plan_layout_by_size({{"a", DType::kF32, {-1}}}, 100), FormatError);
  EXPECT_THROW(plan_layout_by_size({{"a", DType::kF32, {int64_t{1} << 31, int64_t{1} << 31}}}, 100), FormatError);
}

TEST(ShardLayout, IndexJson_HandWorkedExample) {
  const ShardLayout layout = plan_layout_by_size(kSmall, 24);
  EXPECT_EQ(layout.index_json(),
            "{\n"
            "  \"metadata\": {\n"
            "    \"total_size\": 68\n"
            "  },\n"
            "  \"weight_map\": {\n"
            "    \"a\": \"model-00001-of-00003.safetensors\",\n"
            "    \"b\": \"model-00001-of-00003.safetensors\",\n"
            "    \"c\": \"model-00002-of-00003.safetensors\",\n"
            "    \"d\": \"model-00003-of-00003.safetensors\"\n"
            "  }\n"
            "}\n");
}

TEST(PlanLayoutLike, CopiesAssignmentAndRejectsUnknownTensorsOrFiles) {
  const std::map<std::string, std::string> file_of = {
      {"a", "second.safetensors"}, {"b", "first.safetensors"}, {"c", "first.safetensors"}, {"d", "second.safetensors"}};
  const ShardLayout layout = plan_layout_like(kSmall, file_of, {"first.safetensors", "second.safetensors"});
  EXPECT_EQ(layout.files[0].name, "first.safetensors");
  EXPECT_EQ(layout.tensors.at("a").file_index, 1);
  EXPECT_EQ(layout.tensors.at("c").file_index, 0);
  EXPECT_TRUE(layout.write_index);
  EXPECT_THROW(plan_layout_like(kSmall, {{"a", "first.safetensors"}}, {"first.safetensors"}), FormatError);
  EXPECT_THROW(plan_layout_like(kSmall, file_of, {"first.safetensors"}), FormatError);
}

TEST(ShardWriter, SmallLayout_ReadsBackThroughReaderAndIndependentParser) {
  const fs::path dir = fresh_dir("writer_small");
  const ShardLayout layout = plan_layout_by_size(kSmall, 24);
  const auto tensors = make_tensors(kSmall);
  write_all(dir, layout, tensors, 1);
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(dir);
  EXPECT_TRUE(ckpt.sharded());
  EXPECT_EQ(ckpt.file_names().size(), 3u);
  for (const auto& [name, t] : tensors) {
    EXPECT_TRUE(at::equal(ckpt.load(name), t)) << name;
    EXPECT_EQ(ckpt.load(name).scalar_type(), t.scalar_type()) << name;
  }
  for (const PlannedFile& file : layout.files) {
    const auto mini = testing::mini_read(dir / file.name);
    EXPECT_EQ(static_cast<int64_t>(fs::file_size(dir / file.name)), file.total_size);
    for (const auto& [name, m] : mini) {
      const at::Tensor& t = tensors.at(name);
      EXPECT_EQ(m.dtype, safetensors_name(from_scalar_type(t.scalar_type())));
      EXPECT_EQ(m.shape, t.sizes().vec());
      EXPECT_EQ(std::memcmp(m.bytes.data(), t.data_ptr(), m.bytes.size()), 0) << name;
    }
  }
  EXPECT_EQ(read_bytes(dir / "model.safetensors.index.json"), layout.index_json());
}

TEST(ShardWriter, WrittenTwiceInDifferentOrders_ByteIdentical) {
  const ShardLayout layout = plan_layout_by_size(kSmall, 24);
  const auto tensors = make_tensors(kSmall);
  const fs::path one = fresh_dir("writer_twice_1");
  const fs::path two = fresh_dir("writer_twice_2");
  write_all(one, layout, tensors, 1);
  write_all(two, layout, tensors, 2);
  for (const PlannedFile& file : layout.files) EXPECT_EQ(read_bytes(one / file.name), read_bytes(two / file.name));
  EXPECT_EQ(read_bytes(one / "model.safetensors.index.json"), read_bytes(two / "model.safetensors.index.json"));
}

TEST(ShardWriter, TwoWritersLikeTwoRanks_SameBytesAsOne) {
  const ShardLayout layout = plan_layout_by_size(kSmall, 24);
  const auto tensors = make_tensors(kSmall);
  const fs::path single = fresh_dir("writer_rank_single");
  write_all(single, layout, tensors, 3);
  const fs::path dir = fresh_dir("writer_rank_pair");
  ShardWriter first(dir, layout);
  ShardWriter second(dir, layout);
  first.create_files();
  second.write("c", tensors.at("c"));
  first.write("a", tensors.at("a"));
  second.write("d", tensors.at("d"));
  first.write("b", tensors.at("b"));
  EXPECT_EQ(first.missing(), (std::vector<std::string>{"c", "d"}));
  second.sync();
  first.finish();
  for (const PlannedFile& file : layout.files) EXPECT_EQ(read_bytes(dir / file.name), read_bytes(single / file.name));
}

TEST(ShardWriter, NonContiguousInput_WritesLogicalOrder) {
  const fs::path dir = fresh_dir("writer_strided");
  const ShardLayout layout = plan_layout_by_size({{"t", DType::kF32, {3, 2}}}, 1 << 20);
  const at::Tensor base = at::arange(6, at::kFloat).reshape({2, 3});
  ShardWriter writer(dir, layout);
  writer.create_files();
  writer.write("t", base.t());
  writer.finish();
  EXPECT_FALSE(fs::exists(dir / "model.safetensors.index.json"));
  EXPECT_TRUE(at::equal(SafetensorsCheckpoint::open(dir).load("t"), base.t()));
}

TEST(ShardWriter, TensorNotMatchingPlan_FormatErrorNamingFileAndTensor) {
  const fs::path dir = fresh_dir("writer_mismatch");
  ShardWriter writer(dir, plan_layout_by_size(kSmall, 1 << 20));
  writer.create_files();
  try {
    writer.write("a", at::zeros({4}, at::kBFloat16));
    ADD_FAILURE();
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr((dir / "model.safetensors").string() + ": tensor a is BFloat16"));
  }
  try {
    writer.write("a", at::zeros({2, 2}, at::kFloat));
    ADD_FAILURE();
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("tensor a has shape [2, 2] but the planned layout says [4]"));
  }
  EXPECT_THROW(writer.write("nope", at::zeros({4})), FormatError);
  writer.write("a", at::zeros({4}));
  EXPECT_THROW(writer.write("a", at::zeros({4})), Error);
}

TEST(ShardWriter, WriteBeforeCreateFiles_IoError) {
  const fs::path dir = fresh_dir("writer_no_create");
  ShardWriter writer(dir, plan_layout_by_size(kSmall, 1 << 20));
  EXPECT_THROW(writer.write("a", at::zeros({4})), IoError);
}

// RLIMIT_FSIZE stands in for a full disk: writes past the limit fail with EFBIG.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    std::signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &saved_);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() { setrlimit(RLIMIT_FSIZE, &saved_); }

 private:
  rlimit saved_{};
};

TEST(ShardWriter, DiskFull_IoErrorNamingFileAndTensor) {
  const std::vector<TensorSpec> specs = {{"big", DType::kF32, {1 << 18}}, {"late", DType::kF32, {1 << 18}}};
  const ShardLayout layout = plan_layout_by_size(specs, 1 << 30);
  const fs::path dir = fresh_dir("writer_disk_full");
  {
    FileSizeLimit limit(1 << 20);  // the file needs 2 MiB
    ShardWriter writer(dir, layout);
    try {
      writer.create_files();
      ADD_FAILURE();
    } catch (const IoError& e) {
      EXPECT_THAT(e.what(), HasSubstr((dir / "model.safetensors").string()));
    }
  }
  ShardWriter writer(dir, layout);
  writer.create_files();
  FileSizeLimit limit(3 << 19);  // 1.5 MiB: "big" (header + 1 MiB) fits, "late" does not
  writer.write("big", at::ones({1 << 18}));
  try {
    writer.write("late", at::ones({1 << 18}));
    ADD_FAILURE();
  } catch (const IoError& e) {
    EXPECT_THAT(e.what(), HasSubstr((dir / "model.safetensors").string() + ": writing tensor late failed"));
  }
}

// --- Round trips of the bundled models -------------------------------------------------------

// load -> save with the same layout -> the very same bytes, files and index alike.
void expect_round_trip_identical(const fs::path& source, const std::string& test) {
  const SafetensorsCheckpoint in = SafetensorsCheckpoint::open(source);
  const ShardLayout layout = plan_layout_like(specs_of(in), in.weight_map(), in.file_names());
  const fs::path out_dir = fresh_dir(test);
  ShardWriter writer(out_dir, layout);
  writer.create_files();
  for (const std::string& name : in.names()) writer.write(name, in.load(name));
  writer.finish();
  const SafetensorsCheckpoint out = SafetensorsCheckpoint::open(out_dir);
  EXPECT_EQ(out.file_names(), in.file_names());
  for (const std::string& name : in.names()) {
    const at::Tensor a = in.load(name);
    const at::Tensor b = out.load(name);
    ASSERT_EQ(a.scalar_type(), b.scalar_type()) << name;
    ASSERT_EQ(a.sizes(), b.sizes()) << name;
    ASSERT_EQ(std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()), 0) << name;
  }
  for (const std::string& file : in.file_names()) {
    EXPECT_TRUE(read_bytes(source / file) == read_bytes(out_dir / file)) << file << " differs from the original";
  }
  if (in.sharded()) {
    EXPECT_EQ(read_bytes(out_dir / "model.safetensors.index.json"),
              read_bytes(source / "model.safetensors.index.json"));
  }
}

TEST(ShardWriter, RoundTripStories260K_ByteIdenticalToOriginal) {
  expect_round_trip_identical(kFp32Dir, "round_trip_fp32");
}

TEST(ShardWriter, RoundTripShardedBf16_ByteIdenticalToOriginal) {
  expect_round_trip_identical(kShardedDir, "round_trip_bf16");
}

TEST(ShardWriter, ReshardBySize_SameTensorsInMoreFiles) {
  const SafetensorsCheckpoint in = SafetensorsCheckpoint::open(kShardedDir);
  const ShardLayout layout = plan_layout_by_size(specs_of(in), 100000);
  EXPECT_GE(layout.files.size(), 6u);
  const fs::path dir = fresh_dir("reshard");
  ShardWriter writer(dir, layout);
  writer.create_files();
  for (const std::string& name : in.names()) writer.write(name, in.load(name));
  writer.finish();
  const SafetensorsCheckpoint out = SafetensorsCheckpoint::open(dir);
  EXPECT_EQ(out.file_names().size(), layout.files.size());
  EXPECT_EQ(out.total_bytes(), in.total_bytes());
  for (const std::string& name : in.names()) EXPECT_TRUE(at::equal(in.load(name), out.load(name))) << name;
  for (const PlannedFile& file : layout.files) EXPECT_NO_THROW(testing::mini_read(dir / file.name)) << file.name;
}

}  // namespace
}  // namespace pipeprune
