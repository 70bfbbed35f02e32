#include "core/io/safetensors.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "core/common/error.h"
#include "unit/io/io_test_util.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::fresh_dir;
using testing::safetensors_bytes;
using testing::write_bytes;

const fs::path kSourceDir = PIPEPRUNE_SOURCE_DIR;
const fs::path kFp32Dir = kSourceDir / "examples" / "stories260K";
const fs::path kShardedDir = kSourceDir / "tests" / "fixtures" / "stories260K-bf16-sharded";

std::string floats(const std::vector<float>& values) {
  std::string out(values.size() * 4, '\0');
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// Writes one file from a header text and data, and returns the message open() throws.
template <typename ErrorType>
std::string open_error(const std::string& test, const std::string& header, const std::string& data) {
  const fs::path path = fresh_dir(test) / "bad.safetensors";
  write_bytes(path, safetensors_bytes(header, data));
  try {
    SafetensorsFile::open(path);
  } catch (const ErrorType& e) {
    const std::string message = e.what();
    EXPECT_THAT(message, HasSubstr(path.string()));
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  }
  ADD_FAILURE() << "no error for header " << header;
  return "";
}

std::string format_error(const std::string& test, const std::string& header, size_t data_bytes) {
  return open_error<FormatError>(test, header, std::string(data_bytes, '\0'));
}

TEST(SafetensorsFile, ValidFile_ReadsShapesOffsetsValuesAndMetadata) {
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("a":{"dtype":"F32","shape":[1,3],"data_offsets":[8,20]}})";
  const fs::path path = fresh_dir("valid") / "ok.safetensors";
  write_bytes(path, safetensors_bytes(header, floats({1.5f, -2.0f, 3.0f, 4.0f, 5.25f})));
  const auto file = SafetensorsFile::open(path);
  ASSERT_EQ(file->tensors().size(), 2u);
  EXPECT_EQ(file->tensors()[0].name, "b");  // ordered by data offset, not by name
  const TensorInfo& a = file->tensors()[1];
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(a.numel, 3);
  EXPECT_EQ(a.n_bytes, 12);
  EXPECT_EQ(a.file_offset, static_cast<int64_t>(8 + header.size() + 8));
  EXPECT_EQ(file->metadata().at("format"), "pt");
  const at::Tensor t = file->load(a);
  EXPECT_EQ(t.scalar_type(), at::kFloat);
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(t[0][0].item<float>(), 3.0f);
  EXPECT_EQ(t[0][2].item<float>(), 5.25f);
}

TEST(SafetensorsFile, EmptyTensor_LoadsWithZeroElements) {
  const fs::path path = fresh_dir("empty_tensor") / "ok.safetensors";
  write_bytes(path, safetensors_bytes(
                        R"({"e":{"dtype":"BF16","shape":[0,4],"data_offsets":[0,0]},)"
                        R"("x":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})",
                        std::string(4, '\0')));
  const auto file = SafetensorsFile::open(path);
  ASSERT_EQ(file->tensors().size(), 2u);
  EXPECT_EQ(file->load(file->tensors()[0]).numel(), 0);
}

TEST(SafetensorsFile, EmptyAndTruncatedFiles_FormatError) {
  const fs::path dir = fresh_dir("short");
  for (const std::string& bytes : {std::string(), std::string("\x10\x00\x00", 3), std::string(7, '\0')}) {
    write_bytes(dir / "short.safetensors", bytes);
    try {
      SafetensorsFile::open(dir / "short.safetensors");
      ADD_FAILURE() << "no error for " << bytes.size() << " bytes";
    } catch (const FormatError& e) {
      EXPECT_THAT(e.what(), HasSubstr((dir / "short.safetensors").string()));
      EXPECT_THAT(e.what(), HasSubstr("too short"));
    }
  }
}

TEST(SafetensorsFile, MissingFile_IoError) {
  EXPECT_THROW(SafetensorsFile::open(fresh_dir("missing") / "nope.safetensors"), IoError);
  EXPECT_THROW(SafetensorsFile::open(fresh_dir("a_folder")), IoError);
}

TEST(SafetensorsFile, HeaderLengthPastEnd_FormatError) {
  const fs::path path = fresh_dir("past_end") / "bad.safetensors";
  write_bytes(path, testing::le64(1000) + std::string("{}"));
  EXPECT_THROW(
      {
        try {
          SafetensorsFile::open(path);
        } catch (const FormatError& e) {
          EXPECT_THAT(e.what(), HasSubstr("header length 1000 runs past the end"));
          throw;
        }
      },
      FormatError);
}

TEST(SafetensorsFile, HeaderLengthOverCap_FormatError) {
  const fs::path path = fresh_dir("over_cap") / "bad.safetensors";
  write_bytes(path, testing::le64(~0ULL) + std::string("{}"));
  EXPECT_THROW(SafetensorsFile::open(path), FormatError);
  write_bytes(path, testing::le64(kMaxSafetensorsHeaderBytes + 1) + std::string("{}"));
  try {
    SafetensorsFile::open(path);
    ADD_FAILURE();
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("exceeds"));
  }
}

TEST(SafetensorsFile, InvalidJsonHeader_FormatError) {
  EXPECT_THAT(format_error("bad_json", R"({"a": {"dtype": "F32",)", 0), HasSubstr("not valid JSON"));
  EXPECT_THAT(format_error("not_object", "[1, 2]", 0), HasSubstr("not a JSON object"));
  EXPECT_THAT(format_error("empty_header", "", 0), HasSubstr("not valid JSON"));
}

TEST(SafetensorsFile, OverlappingOffsets_FormatError) {
  const std::string message = format_error(
      "overlap",
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      12);
  EXPECT_THAT(message, HasSubstr("overlap"));
  EXPECT_THAT(message, HasSubstr("tensors a and b"));
}

TEST(SafetensorsFile, OffsetsOutsideFile_FormatError) {
  const std::string message =
      format_error("outside", R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 12);
  EXPECT_THAT(message, HasSubstr("tensor w"));
  EXPECT_THAT(message, HasSubstr("run past the end of the data area (12 bytes)"));
  EXPECT_THAT(format_error("reversed", R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", 12),
              HasSubstr("begin <= end"));
}

TEST(SafetensorsFile, DtypeTimesShapeNotByteRange_FormatError) {
  const std::string message =
      format_error("size_mismatch", R"({"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}})", 8);
  EXPECT_THAT(message, HasSubstr("tensor w: shape [3] of BF16 needs 6 bytes"));
}

TEST(SafetensorsFile, NegativeOrOverflowingDims_FormatError) {
  EXPECT_THAT(format_error("negative", R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", 0),
              HasSubstr("not an integer in [0, 2^63)"));
  EXPECT_THAT(format_error("float_dim", R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8),
              HasSubstr("not an integer"));
  EXPECT_THAT(format_error("huge_dim",
                           R"({"w":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,0]}})", 0),
              HasSubstr("not an integer in [0, 2^63)"));
  // 2^32 * 2^32 overflows the element count; 2^31 * 2^31 * 2 = 2^63 elements does too.
  EXPECT_THAT(format_error("numel_overflow",
                           R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0),
              HasSubstr("overflows a 64-bit element count"));
  // 2^62 elements fit in int64, but 2^62 * 4 bytes do not.
  EXPECT_THAT(format_error("bytes_overflow",
                           R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", 0),
              HasSubstr("overflows a 64-bit byte count"));
}

TEST(SafetensorsFile, UnknownDtype_FormatErrorNamingTensorAndDtype) {
  for (const std::string dtype : {"I8", "F64", "F8_E4M3", "U8", "I64"}) {
    const std::string message = format_error(
        "dtype_" + dtype, R"({"w":{"dtype":")" + dtype + R"(","shape":[8],"data_offsets":[0,8]}})", 64);
    EXPECT_THAT(message, HasSubstr("tensor w has dtype " + dtype + "; pipeprune reads F32, F16 and BF16"));
  }
}

TEST(SafetensorsFile, MalformedEntries_FormatError) {
  EXPECT_THAT(format_error("no_dtype", R"({"w":{"shape":[2],"data_offsets":[0,8]}})", 8),
              HasSubstr("\"dtype\" is missing"));
  EXPECT_THAT(format_error("no_shape", R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", 8),
              HasSubstr("\"shape\" is missing"));
  EXPECT_THAT(format_error("str_offsets", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":["0","8"]}})", 8),
              HasSubstr("data_offsets"));
  EXPECT_THAT(format_error("one_offset", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8),
              HasSubstr("data_offsets"));
  EXPECT_THAT(format_error("neg_offset", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", 8),
              HasSubstr("data_offsets"));
  EXPECT_THAT(format_error("entry_array", R"({"w":[1,2]})", 0), HasSubstr("not a JSON object"));
  EXPECT_THAT(format_error("metadata_int", R"({"__metadata__":{"format":1}})", 0),
              HasSubstr("__metadata__ value of \"format\" is not a string"));
  EXPECT_THAT(format_error("metadata_list", R"({"__metadata__":["pt"]})", 0), HasSubstr("__metadata__"));
}

// --- Checkpoint folders -------------------------------------------------------------------------

std::string one_tensor_file(const std::string& name, float value) {
  return safetensors_bytes(R"({")" + name + R"(":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                           floats({value}));
}

void write_index(const fs::path& dir, const nlohmann::json& weight_map) {
  write_bytes(dir / "model.safetensors.index.json",
              nlohmann::json{{"metadata", {{"total_size", 8}}}, {"weight_map", weight_map}}.dump());
}

TEST(SafetensorsCheckpoint, SmallShardedFolder_LoadsEveryTensorFromItsShard) {
  const fs::path dir = fresh_dir("sharded_ok");
  write_bytes(dir / "s1.safetensors", one_tensor_file("a", 1.0f));
  write_bytes(dir / "s2.safetensors", one_tensor_file("b", 2.0f));
  write_index(dir, {{"a", "s1.safetensors"}, {"b", "s2.safetensors"}});
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(dir);
  EXPECT_TRUE(ckpt.sharded());
  EXPECT_EQ(ckpt.file_names(), (std::vector<std::string>{"s1.safetensors", "s2.safetensors"}));
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(ckpt.info("b").file_index, 1);
  EXPECT_EQ(ckpt.load("b").item<float>(), 2.0f);
  EXPECT_EQ(ckpt.total_bytes(), 8);
  EXPECT_FALSE(ckpt.find("c").has_value());
  EXPECT_THROW(ckpt.info("c"), FormatError);
  EXPECT_EQ(ckpt.weight_map().at("a"), "s1.safetensors");
}

TEST(SafetensorsCheckpoint, NoCheckpointFiles_IoError) {
  const fs::path dir = fresh_dir("no_files");
  try {
    SafetensorsCheckpoint::open(dir);
    ADD_FAILURE();
  } catch (const IoError& e) {
    EXPECT_THAT(e.what(), HasSubstr(dir.string() + ": no model.safetensors or model.safetensors.index.json"));
  }
  EXPECT_THROW(SafetensorsCheckpoint::open(dir / "absent"), IoError);
}

TEST(SafetensorsCheckpoint, IndexNamesMissingShard_IoErrorNamingShard) {
  const fs::path dir = fresh_dir("missing_shard");
  write_bytes(dir / "s1.safetensors", one_tensor_file("a", 1.0f));
  write_index(dir, {{"a", "s1.safetensors"}, {"b", "s2.safetensors"}});
  try {
    SafetensorsCheckpoint::open(dir);
    ADD_FAILURE();
  } catch (const IoError& e) {
    EXPECT_THAT(e.what(), HasSubstr((dir / "s2.safetensors").string() + ": shard named in"));
  }
}

TEST(SafetensorsCheckpoint, TensorMissingFromIndex_FormatError) {
  const fs::path dir = fresh_dir("not_in_index");
  write_bytes(dir / "s1.safetensors", one_tensor_file("a", 1.0f));
  write_bytes(dir / "s2.safetensors", one_tensor_file("b", 2.0f));
  write_index(dir, {{"a", "s1.safetensors"}, {"c", "s2.safetensors"}});
  try {
    SafetensorsCheckpoint::open(dir);
    ADD_FAILURE();
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("s2.safetensors: tensor b is not listed in model.safetensors.index.json"));
  }
}

TEST(SafetensorsCheckpoint, IndexTensorAbsentFromShard_FormatError) {
  const fs::path dir = fresh_dir("absent_from_shard");
  write_bytes(dir / "s1.safetensors", one_tensor_file("a", 1.0f));
  write_index(dir, {{"a", "s1.safetensors"}, {"z", "s1.safetensors"}});
  try {
    SafetensorsCheckpoint::open(dir);
    ADD_FAILURE();
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("tensor z is assigned to s1.safetensors, which does not hold it"));
  }
}

TEST(SafetensorsCheckpoint, TensorInTwoShards_FormatError) {
  const fs::path dir = fresh_dir("two_shards");
  write_bytes(dir / "s1.safetensors", one_tensor_file("a", 1.0f));
  write_bytes(dir / "s2.safetensors", one_tensor_file("a", 2.0f));
  write_index(dir, {{"a", "s1.safetensors"}, {"pad", "s2.safetensors"}});
  try {
    SafetensorsCheckpoint::open(dir);
    ADD_FAILURE();
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("s2.safetensors: tensor a is stored here but"));
  }
}

TEST(SafetensorsCheckpoint, BadIndex_FormatError) {
  const fs::path dir = fresh_dir("bad_index");
  write_bytes(dir / "model.safetensors.index.json", "{\"weight_map\": ");
  EXPECT_THROW(SafetensorsCheckpoint::open(dir), FormatError);
  write_bytes(dir / "model.safetensors.index.json", R"({"metadata": {}})");
  EXPECT_THROW(SafetensorsCheckpoint::open(dir), FormatError);
  write_index(dir, {{"a", 3}});
  EXPECT_THROW(SafetensorsCheckpoint::open(dir), FormatError);
  write_index(dir, {{"a", "../outside.safetensors"}});
  EXPECT_THROW(SafetensorsCheckpoint::open(dir), FormatError);
  write_index(dir, {{"a", "/etc/passwd"}});
  EXPECT_THROW(SafetensorsCheckpoint::open(dir), FormatError);
}

// --- The bundled models ---------------------------------------------------------------------------

std::vector<std::string> stories_names() {
  std::vector<std::string> names = {"model.embed_tokens.weight", "model.norm.weight"};
  for (int i = 0; i < 5; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    for (const char* s : {"input_layernorm.weight", "post_attention_layernorm.weight",
                          "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                          "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                          "mlp.down_proj.weight"}) {
      names.push_back(p + s);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(SafetensorsCheckpoint, Stories260K_HasEveryLlamaTensorWithConfigShapes) {
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(kFp32Dir);
  EXPECT_FALSE(ckpt.sharded());
  EXPECT_EQ(ckpt.names(), stories_names());
  EXPECT_EQ(ckpt.info("model.embed_tokens.weight").shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(ckpt.info("model.layers.0.self_attn.k_proj.weight").shape, (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(ckpt.info("model.layers.4.mlp.down_proj.weight").shape, (std::vector<int64_t>{64, 172}));
  EXPECT_EQ(ckpt.info("model.norm.weight").dtype, DType::kF32);
  // 260K parameters of 4 bytes, plus the header: the file size.
  EXPECT_EQ(ckpt.total_bytes() + 8 + 4856, static_cast<int64_t>(fs::file_size(kFp32Dir / "model.safetensors")));
}

TEST(SafetensorsCheckpoint, Stories260K_ValuesMatchIndependentParser) {
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(kFp32Dir);
  const auto reference = testing::mini_read(kFp32Dir / "model.safetensors");
  ASSERT_EQ(reference.size(), ckpt.names().size());
  for (const auto& [name, mini] : reference) {
    const at::Tensor t = ckpt.load(name);
    ASSERT_TRUE(t.is_contiguous());
    ASSERT_EQ(t.sizes().vec(), mini.shape) << name;
    ASSERT_EQ(std::memcmp(t.data_ptr(), mini.bytes.data(), mini.bytes.size()), 0) << name;
  }
}

TEST(SafetensorsCheckpoint, ShardedBf16_Layer2StraddlesShards) {
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(kShardedDir);
  EXPECT_TRUE(ckpt.sharded());
  EXPECT_EQ(ckpt.names(), stories_names());
  EXPECT_EQ(ckpt.file_names(), (std::vector<std::string>{"model-00001-of-00002.safetensors",
                                                         "model-00002-of-00002.safetensors"}));
  EXPECT_EQ(ckpt.info("model.layers.2.self_attn.q_proj.weight").file_index, 0);
  EXPECT_EQ(ckpt.info("model.layers.2.mlp.up_proj.weight").file_index, 1);
  EXPECT_EQ(ckpt.info("model.layers.2.mlp.up_proj.weight").dtype, DType::kBF16);
  EXPECT_EQ(ckpt.load("model.layers.2.mlp.up_proj.weight").scalar_type(), at::kBFloat16);
}

// The bf16 fixture is the fp32 model rounded to bf16 (round to nearest, ties to even, as torch
// does). The rounding is done here by hand on the fp32 bits, independently of ATen.
uint32_t round_to_bf16_bits(float value) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, 4);
  const uint32_t lsb = (bits >> 16) & 1u;
  return (bits + 0x7FFFu + lsb) & 0xFFFF0000u;
}

TEST(SafetensorsCheckpoint, ShardedBf16_IsFp32RoundedToNearestEven) {
  const SafetensorsCheckpoint fp32 = SafetensorsCheckpoint::open(kFp32Dir);
  const SafetensorsCheckpoint bf16 = SafetensorsCheckpoint::open(kShardedDir);
  for (const std::string& name : fp32.names()) {
    const at::Tensor a = fp32.load(name);
    const at::Tensor b = bf16.load(name);
    ASSERT_EQ(a.sizes(), b.sizes()) << name;
    const float* pa = a.data_ptr<float>();
    const uint16_t* pb = static_cast<const uint16_t*>(b.data_ptr());
    for (int64_t i = 0; i < a.numel(); ++i) {
      ASSERT_EQ(round_to_bf16_bits(pa[i]), static_cast<uint32_t>(pb[i]) << 16)
          << name << "[" << i << "]: fp32 " << pa[i];
    }
  }
}

TEST(SafetensorsCheckpoint, ConcurrentLoads_SameBytesAsSequential) {
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(kShardedDir);
  const std::vector<std::string> names = ckpt.names();
  std::vector<at::Tensor> sequential;
  for (const auto& name : names) sequential.push_back(ckpt.load(name));
  std::vector<at::Tensor> parallel(names.size());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = static_cast<size_t>(t); i < names.size(); i += 4) parallel[i] = ckpt.load(names[i]);
    });
  }
  for (auto& thread : threads) thread.join();
  for (size_t i = 0; i < names.size(); ++i) EXPECT_TRUE(at::equal(sequential[i], parallel[i])) << names[i];
}

}  // namespace
}  // namespace pipeprune
