// pytorch_model*.bin (zip-format torch.save) through SafetensorsFile / SafetensorsCheckpoint.
// The fixtures under tests/data/torch_bin were written by real torch.save
// (tests/data/torch_bin/make_fixtures.py); the malformed archives are written here with
// LibTorch's PyTorchStreamWriter, the writer torch.save itself uses.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "core/common/error.h"
#include "core/io/safetensors.h"
#include "unit/io/io_test_util.h"
#include "unit/io/torch_bin_test_util.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::fresh_dir;
using testing::PickleBuilder;
using testing::read_bytes;
using testing::write_archive;
using testing::write_bytes;

const fs::path kData = fs::path(PIPEPRUNE_SOURCE_DIR) / "tests" / "data" / "torch_bin";

std::string bytes_of(const at::Tensor& t) {
  return std::string(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.numel() * t.element_size()));
}

const TensorInfo& find(const SafetensorsFile& file, const std::string& name) {
  for (const TensorInfo& t : file.tensors()) {
    if (t.name == name) return t;
  }
  throw std::runtime_error("no tensor " + name);
}

// The one-line FormatError that opening `path` as a .bin throws; it names the file.
std::string bin_error(const fs::path& path) {
  try {
    SafetensorsFile::open_pytorch_bin(path);
  } catch (const FormatError& e) {
    const std::string message = e.what();
    EXPECT_THAT(message, HasSubstr(path.string()));
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  }
  ADD_FAILURE() << "no FormatError for " << path;
  return "";
}

std::string floats(const std::vector<float>& values) {
  std::string out(values.size() * 4, '\0');
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// The same archive as torch.save wrote it and repacked with every size and offset in zip64
// fields (as in a shard over 4 GiB).
class TorchBinStateDict : public ::testing::TestWithParam<const char*> {};
INSTANTIATE_TEST_SUITE_P(TorchBin, TorchBinStateDict, ::testing::Values("state_dict.bin", "zip64.bin"));

TEST_P(TorchBinStateDict, EqualsSafetensorsTwinBitForBit) {
  const auto bin = SafetensorsFile::open_pytorch_bin(kData / GetParam());
  const auto twin = SafetensorsFile::open(kData / "state_dict.safetensors");
  EXPECT_TRUE(bin->pytorch_bin());
  EXPECT_TRUE(bin->metadata().empty());
  ASSERT_EQ(bin->tensors().size(), twin->tensors().size());
  for (const TensorInfo& expected : twin->tensors()) {
    SCOPED_TRACE(expected.name);
    const TensorInfo& got = find(*bin, expected.name);
    EXPECT_EQ(got.dtype, expected.dtype);
    EXPECT_EQ(got.shape, expected.shape);
    EXPECT_EQ(got.n_bytes, expected.n_bytes);
    const at::Tensor loaded = bin->load(got);
    EXPECT_EQ(loaded.scalar_type(), to_scalar_type(expected.dtype));
    EXPECT_EQ(bytes_of(loaded), bytes_of(twin->load(expected)));
  }
}

TEST(TorchBin, StateDict_HardCodedValuesShapesAndDtypes) {
  const auto bin = SafetensorsFile::open_pytorch_bin(kData / "state_dict.bin");
  // arange(10, float16)[4:8]: a contiguous view at storage_offset 4.
  const at::Tensor view = bin->load(find(*bin, "view"));
  EXPECT_EQ(view.scalar_type(), at::kHalf);
  EXPECT_TRUE(at::equal(view.to(at::kFloat), at::arange(4, 8, at::kFloat)));
  const TensorInfo& scalar = find(*bin, "scalar");
  EXPECT_TRUE(scalar.shape.empty());
  EXPECT_EQ(scalar.numel, 1);
  EXPECT_EQ(bin->load(scalar).item<float>(), 2.5f);
  const TensorInfo& empty = find(*bin, "empty");
  EXPECT_THAT(empty.shape, ElementsAre(0, 3));
  EXPECT_EQ(empty.n_bytes, 0);
  EXPECT_EQ(bin->load(empty).numel(), 0);
  EXPECT_EQ(find(*bin, "w16").dtype, DType::kF16);
  EXPECT_EQ(find(*bin, "wbf16").dtype, DType::kBF16);
  EXPECT_THAT(find(*bin, "wbf16").shape, ElementsAre(2, 3));
}

TEST(TorchBin, TiedPairAndRepeatedObject_BothNamesListedOverTheSameBytes) {
  const auto bin = SafetensorsFile::open_pytorch_bin(kData / "state_dict.bin");
  const TensorInfo& embed = find(*bin, "model.embed_tokens.weight");
  const TensorInfo& head = find(*bin, "lm_head.weight");
  EXPECT_EQ(embed.file_offset, head.file_offset);
  EXPECT_EQ(embed.n_bytes, head.n_bytes);
  EXPECT_EQ(bytes_of(bin->load(embed)), bytes_of(bin->load(head)));
  EXPECT_EQ(find(*bin, "w32").file_offset, find(*bin, "w32_again").file_offset);
}

TEST(TorchBin, FileOffset_PointsAtTheTensorBytesInTheFile) {
  // Lazy: a tensor is a byte range of the mapped file, read only by load().
  const fs::path path = kData / "state_dict.bin";
  const std::string raw = read_bytes(path);
  const auto bin = SafetensorsFile::open_pytorch_bin(path);
  EXPECT_EQ(bin->file_size(), static_cast<int64_t>(raw.size()));
  int64_t previous = 0;
  for (const TensorInfo& t : bin->tensors()) {
    SCOPED_TRACE(t.name);
    EXPECT_GE(t.file_offset, previous);  // in the order of their data offsets
    previous = t.file_offset;
    ASSERT_LE(t.file_offset + t.n_bytes, static_cast<int64_t>(raw.size()));
    EXPECT_EQ(raw.substr(static_cast<size_t>(t.file_offset), static_cast<size_t>(t.n_bytes)), bytes_of(bin->load(t)));
    EXPECT_EQ(std::memcmp(bin->data(t), raw.data() + t.file_offset, static_cast<size_t>(t.n_bytes)), 0);
  }
  // The view starts 4 halves into its 10-element storage record.
  const TensorInfo& view = find(*bin, "view");
  const std::string four_to_seven = bytes_of(at::arange(4, 8, at::kHalf));
  EXPECT_EQ(raw.substr(static_cast<size_t>(view.file_offset), 8), four_to_seven);
  EXPECT_EQ(raw.substr(static_cast<size_t>(view.file_offset) - 8, 8), bytes_of(at::arange(0, 4, at::kHalf)));
}

TEST(TorchBin, Protocol4Pickle_Reads) {
  const auto bin = SafetensorsFile::open_pytorch_bin(kData / "protocol4.bin");
  const at::Tensor w = bin->load(find(*bin, "w"));
  EXPECT_EQ(w.scalar_type(), at::kBFloat16);
  EXPECT_EQ(w[0].item<float>(), 1.0f);
  EXPECT_EQ(w[1].item<float>(), -2.0f);
}

TEST(TorchBin, NonContiguous_FormatErrorNamingTensor) {
  EXPECT_THAT(bin_error(kData / "noncontiguous.bin"), HasSubstr("tensor t is not contiguous (size [3, 2], stride [1, 3])"));
}

TEST(TorchBin, FuzzFinding_HugeRecordSizeInTheDirectory_FormatErrorBeforeAllocating) {
  // fuzz_torch_bin: a corrupt directory entry claiming 0x32000000000002e7 bytes for data.pkl
  // made PyTorchStreamReader::getRecord try to allocate them. Our own reading of the directory
  // now refuses the entry first.
  EXPECT_THAT(bin_error(kData / "fuzz" / "huge_record_size.bin"), HasSubstr("the file is truncated or corrupt"));
  // The second: a record claiming 0x10000000002 bytes, allocated in PyTorchStreamReader's
  // constructor; the sizes are now checked before it runs.
  EXPECT_THAT(bin_error(kData / "fuzz" / "huge_version_record.bin"),
              HasSubstr("more than the 3174-byte file can hold; the file is corrupt"));
  // The third (UBSan): miniz read 0 bytes of an empty record into a null buffer and the read
  // adapter passed that to memcpy. It is refused cleanly; the fuzz build checks the UB is gone.
  EXPECT_THAT(bin_error(kData / "fuzz" / "empty_record_read.bin"), HasSubstr("empty_record_read.bin"));
  // The fourth: an end record of 0 entries in front of a zip64 end record whose directory gives
  // the version record 2^56 - 2 bytes; miniz reads the zip64 one, and now so does this reader.
  EXPECT_THAT(bin_error(kData / "fuzz" / "zip64_huge_version_record.bin"),
              HasSubstr("more than the 3198-byte file can hold; the file is corrupt"));
}

TEST(TorchBin, Int64_FormatErrorNamingTensorAndDtype) {
  EXPECT_THAT(bin_error(kData / "int64.bin"),
              HasSubstr("tensor ids has dtype int64 (torch.LongStorage); pipeprune reads F32, F16 and BF16"));
}

TEST(TorchBin, LegacyFormat_FormatErrorSayingHowToConvert) {
  const fs::path path = kData / "legacy.bin";
  EXPECT_THAT(bin_error(path), HasSubstr(path.string() + ": not a zip-format torch.save archive (saved by PyTorch < 1.6?); "
                                         "re-save it with a current PyTorch or convert it to safetensors"));
}

TEST(TorchBin, ForeignGlobal_FormatErrorAndNothingRuns) {
  // The fixture's pickle calls os.system("echo ...") when loaded by Python's unpickler.
  EXPECT_THAT(bin_error(kData / "foreign_global.bin"), HasSubstr("refers to posix.system"));
}

TEST(TorchBin, NestedStateDict_FormatErrorSayingSo) {
  EXPECT_THAT(bin_error(kData / "nested.bin"), HasSubstr("entry state_dict is a dict, not a tensor"));
}

TEST(TorchBin, TruncatedOrCorruptFile_FormatError) {
  const std::string raw = read_bytes(kData / "state_dict.bin");
  const fs::path dir = fresh_dir("torch_bin_truncated");
  for (const size_t n : {raw.size() / 2, raw.size() - 10, size_t{3}}) {
    write_bytes(dir / "cut.bin", raw.substr(0, n));
    EXPECT_THAT(bin_error(dir / "cut.bin"), HasSubstr("cut.bin")) << n << " bytes";
  }
  write_bytes(dir / "half.bin", raw.substr(0, raw.size() / 2));
  // Refused by our reading of the zip directory, before LibTorch's reader allocates anything.
  EXPECT_THAT(bin_error(dir / "half.bin"), HasSubstr("no end-of-directory record; the file is truncated or corrupt"));
  write_bytes(dir / "empty.bin", "");
  EXPECT_THAT(bin_error(dir / "empty.bin"), HasSubstr("the file is empty or truncated"));
  // One flipped byte inside data.pkl: the record's CRC no longer matches.
  const size_t pickle_at = raw.find("_rebuild_tensor_v2");
  ASSERT_NE(pickle_at, std::string::npos);
  std::string flipped = raw;
  flipped[pickle_at] ^= 0x20;
  write_bytes(dir / "flipped.bin", flipped);
  EXPECT_THAT(bin_error(dir / "flipped.bin"), HasSubstr("flipped.bin"));
}

TEST(TorchBin, CorruptPickleInValidZip_FormatError) {
  const fs::path dir = fresh_dir("torch_bin_pickle");
  write_archive(dir / "unknown.bin", std::string("\x80\x02}G", 4), {});
  EXPECT_THAT(bin_error(dir / "unknown.bin"), HasSubstr("opcode 0x47"));
  write_archive(dir / "short.bin", std::string("\x80\x02}(", 4), {});
  EXPECT_THAT(bin_error(dir / "short.bin"), HasSubstr("truncated"));
}

TEST(TorchBin, HandWrittenArchive_ReadsValues) {
  PickleBuilder p;
  p.begin_dict();
  p.tensor("a", "FloatStorage", "0", 4, 1, {3}, {1});
  const fs::path path = fresh_dir("torch_bin_ok") / "ok.bin";
  write_archive(path, p.finish(), {{"0", floats({9, 1, 2, 3})}});
  const auto bin = SafetensorsFile::open_pytorch_bin(path);
  EXPECT_EQ(bytes_of(bin->load(find(*bin, "a"))), floats({1, 2, 3}));
}

TEST(TorchBin, StorageBoundsAndRecords_FormatErrorNamingTensor) {
  const fs::path dir = fresh_dir("torch_bin_bounds");
  const auto one = [&](const std::string& file, int64_t numel, int64_t offset, std::vector<int64_t> sizes,
                       const std::map<std::string, std::string>& records, bool compress = false) {
    PickleBuilder p;
    p.begin_dict();
    std::vector<int64_t> strides(sizes.size(), 1);
    for (size_t d = sizes.size(); d-- > 1;) strides[d - 1] = strides[d] * sizes[d];
    p.tensor("w", "FloatStorage", "0", numel, offset, sizes, strides);
    write_archive(dir / file, p.finish(), records, compress);
    return bin_error(dir / file);
  };
  const std::string four = floats({1, 2, 3, 4});
  EXPECT_THAT(one("past_storage.bin", 4, 2, {3}, {{"0", four}}), HasSubstr("tensor w: storage_offset 2 + 3 elements do not fit"));
  EXPECT_THAT(one("negative.bin", 4, -1, {2}, {{"0", four}}), HasSubstr("tensor w: storage_offset -1"));
  EXPECT_THAT(one("negative_dim.bin", 4, 0, {-2}, {{"0", four}}), HasSubstr("tensor w: size [-2]"));
  EXPECT_THAT(one("past_record.bin", 5, 0, {5}, {{"0", four}}), HasSubstr("needs 20 bytes but its record holds 16"));
  EXPECT_THAT(one("no_record.bin", 4, 0, {4}, {}), HasSubstr("no record data/0"));
  EXPECT_THAT(one("overflow.bin", int64_t{1} << 62, 0, {4}, {{"0", four}}), HasSubstr("overflows a 64-bit byte count"));
  EXPECT_THAT(one("compressed.bin", 64, 0, {64}, {{"0", std::string(256, '\0')}}, true), HasSubstr("is compressed"));
}

TEST(TorchBin, OneStorageTwoDescriptions_FormatError) {
  PickleBuilder p;
  p.begin_dict();
  p.tensor("a", "FloatStorage", "0", 4, 0, {4}, {1});
  p.tensor("b", "FloatStorage", "0", 2, 0, {2}, {1});
  const fs::path path = fresh_dir("torch_bin_two") / "two.bin";
  write_archive(path, p.finish(), {{"0", floats({1, 2, 3, 4})}});
  EXPECT_THAT(bin_error(path), HasSubstr("two types or sizes"));
}

// A folder holding `files` (name -> fixture path).
fs::path folder(const std::string& name, const std::map<std::string, fs::path>& files) {
  const fs::path dir = fresh_dir(name);
  for (const auto& [file, source] : files) fs::copy_file(source, dir / file);
  return dir;
}

TEST(TorchBinCheckpoint, SingleBin_OpensAsPytorchBin) {
  const fs::path dir = folder("torch_bin_single", {{"pytorch_model.bin", kData / "state_dict.bin"}});
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(dir);
  EXPECT_TRUE(ckpt.pytorch_bin());
  EXPECT_FALSE(ckpt.sharded());
  EXPECT_THAT(ckpt.file_names(), ElementsAre("pytorch_model.bin"));
  EXPECT_TRUE(ckpt.has("lm_head.weight"));
  EXPECT_TRUE(ckpt.has("model.embed_tokens.weight"));
  EXPECT_TRUE(ckpt.aliases().empty());
  EXPECT_EQ(ckpt.names().size(), 9u);
  EXPECT_TRUE(at::equal(ckpt.load("lm_head.weight"), ckpt.load("model.embed_tokens.weight")));
}

TEST(TorchBinCheckpoint, ShardedBin_LoadsEveryTensorFromItsShard) {
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(kData / "sharded");
  EXPECT_TRUE(ckpt.pytorch_bin());
  EXPECT_TRUE(ckpt.sharded());
  EXPECT_THAT(ckpt.file_names(), ElementsAre("pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"));
  EXPECT_EQ(ckpt.weight_map().at("b"), "pytorch_model-00002-of-00002.bin");
  EXPECT_EQ(ckpt.info("a").file_index, 0);
  EXPECT_EQ(ckpt.info("c").file_index, 1);
  EXPECT_TRUE(at::equal(ckpt.load("a"), at::arange(6, at::kFloat).reshape({2, 3})));
  EXPECT_TRUE(at::equal(ckpt.load("b"), at::arange(4, at::kBFloat16)));
  EXPECT_TRUE(at::equal(ckpt.load("c"), at::full({2}, 3.0, at::kHalf)));
  EXPECT_EQ(ckpt.total_bytes(), 24 + 8 + 4);
}

TEST(TorchBinCheckpoint, IndexDisagreesWithShards_ErrorNamingTheBinIndex) {
  const fs::path shard1 = kData / "sharded" / "pytorch_model-00001-of-00002.bin";
  const fs::path shard2 = kData / "sharded" / "pytorch_model-00002-of-00002.bin";
  const fs::path dir = folder("torch_bin_index", {{"pytorch_model-00001-of-00002.bin", shard1},
                                                  {"pytorch_model-00002-of-00002.bin", shard2}});
  write_bytes(dir / "pytorch_model.bin.index.json",
              R"({"weight_map":{"a":"pytorch_model-00001-of-00002.bin","b":"pytorch_model-00001-of-00002.bin",)"
              R"("c":"pytorch_model-00002-of-00002.bin"}})");
  try {
    SafetensorsCheckpoint::open(dir);
    ADD_FAILURE() << "no error";
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("tensor b is stored here but pytorch_model.bin.index.json assigns it to "
                                    "pytorch_model-00001-of-00002.bin"));
  }
  write_bytes(dir / "pytorch_model.bin.index.json", R"({"weight_map":{"a":"pytorch_model-00003-of-00003.bin"}})");
  EXPECT_THROW(SafetensorsCheckpoint::open(dir), IoError);
}

TEST(TorchBinCheckpoint, SafetensorsAndBin_PrefersSafetensors) {
  // The .bin here cannot be read (int64), so opening it at all would fail.
  const fs::path dir = folder("torch_bin_both", {{"model.safetensors", kData / "state_dict.safetensors"},
                                                 {"pytorch_model.bin", kData / "int64.bin"}});
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(dir);
  EXPECT_FALSE(ckpt.pytorch_bin());
  EXPECT_THAT(ckpt.file_names(), ElementsAre("model.safetensors"));
  // Even a safetensors index wins over a single .bin, as in transformers.
  const fs::path sharded = fresh_dir("torch_bin_both_index");
  fs::copy_file(kData / "state_dict.safetensors", sharded / "model-00001-of-00001.safetensors");
  fs::copy_file(kData / "int64.bin", sharded / "pytorch_model.bin");
  write_bytes(sharded / "model.safetensors.index.json", R"({"weight_map":{"w32":"model-00001-of-00001.safetensors",)"
              R"("w16":"model-00001-of-00001.safetensors","wbf16":"model-00001-of-00001.safetensors",)"
              R"("model.embed_tokens.weight":"model-00001-of-00001.safetensors",)"
              R"("lm_head.weight":"model-00001-of-00001.safetensors","w32_again":"model-00001-of-00001.safetensors",)"
              R"("scalar":"model-00001-of-00001.safetensors","empty":"model-00001-of-00001.safetensors",)"
              R"("view":"model-00001-of-00001.safetensors"}})");
  EXPECT_FALSE(SafetensorsCheckpoint::open(sharded).pytorch_bin());
}

TEST(TorchBinCheckpoint, NoWeights_IoErrorListingAllFourNames) {
  try {
    SafetensorsCheckpoint::open(fresh_dir("torch_bin_none"));
    ADD_FAILURE() << "no error";
  } catch (const IoError& e) {
    EXPECT_THAT(e.what(), HasSubstr("no model.safetensors or model.safetensors.index.json (nor pytorch_model.bin or "
                                    "pytorch_model.bin.index.json)"));
  }
}

}  // namespace
}  // namespace pipeprune
