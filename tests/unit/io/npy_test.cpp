#include "core/io/npy.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/common/error.h"
#include "unit/io/io_test_util.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::fresh_dir;
using testing::read_bytes;
using testing::write_bytes;

const std::string kMagic("\x93NUMPY", 6);

std::string int64_bytes(const std::vector<int64_t>& values) {
  std::string out(values.size() * 8, '\0');
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

std::string int32_bytes(const std::vector<int32_t>& values) {
  std::string out(values.size() * 4, '\0');
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// A version 1.0 file around a header dict, padded the way numpy pads (to 64 bytes, then '\n').
std::string npy_v1(const std::string& dict, const std::string& data) {
  std::string header = dict;
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  return kMagic + std::string("\x01\x00", 2) + static_cast<char>(header.size() & 0xFF) +
         static_cast<char>(header.size() >> 8) + header + data;
}

// Versions 2.0 and 3.0: a 4-byte header length.
std::string npy_v2(int major, const std::string& dict, const std::string& data) {
  const std::string header = dict + "\n";
  return kMagic + static_cast<char>(major) + std::string(1, '\0') + testing::le64(header.size()).substr(0, 4) + header +
         data;
}

template <typename ErrorType = FormatError, typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const ErrorType& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos);
    return message;
  }
  ADD_FAILURE() << "no error";
  return "";
}

fs::path write_file(const std::string& test, const std::string& bytes) {
  const fs::path path = fresh_dir("npy_" + test) / "tokens.npy";
  write_bytes(path, bytes);
  return path;
}

TEST(WriteNpy, Int64Matrix_HeaderLaidOutLikeNumpy) {
  const fs::path path = fresh_dir("npy_write_header") / "a.npy";
  write_npy(path, at::arange(6, at::kLong).reshape({2, 3}));
  const std::string bytes = read_bytes(path);
  // 10 bytes of prefix + 59-byte dict + 58 spaces + '\n' = 128; then 6 x 8 data bytes.
  const std::string dict = "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }";
  ASSERT_EQ(bytes.size(), 128u + 48u);
  EXPECT_EQ(bytes.substr(0, 8), kMagic + std::string("\x01\x00", 2));
  EXPECT_EQ(static_cast<uint8_t>(bytes[8]), 118);
  EXPECT_EQ(static_cast<uint8_t>(bytes[9]), 0);
  EXPECT_EQ(bytes.substr(10, dict.size()), dict);
  EXPECT_EQ(bytes.substr(10 + dict.size(), 58), std::string(58, ' '));
  EXPECT_EQ(bytes[127], '\n');
  EXPECT_EQ(bytes.substr(128), int64_bytes({0, 1, 2, 3, 4, 5}));
}

TEST(WriteNpy, RoundTrip_EveryDtypeAndRank) {
  const fs::path dir = fresh_dir("npy_round_trip");
  const std::vector<at::Tensor> cases = {
      at::arange(12, at::kLong).reshape({3, 4}).mul_(int64_t{1000000007}), at::arange(-5, 5, at::kInt),
      at::linspace(-1, 1, 24, at::kFloat).reshape({2, 3, 4}), at::scalar_tensor(7, at::kLong),
      at::empty({0, 5}, at::kInt), at::arange(6, at::kFloat).reshape({2, 3}).t()};
  for (size_t i = 0; i < cases.size(); ++i) {
    const fs::path path = dir / ("case" + std::to_string(i) + ".npy");
    write_npy(path, cases[i]);
    const NpyArray back = read_npy(path);
    EXPECT_EQ(back.shape, cases[i].sizes().vec()) << i;
    EXPECT_EQ(back.data.scalar_type(), cases[i].scalar_type()) << i;
    EXPECT_TRUE(at::equal(back.data, cases[i])) << i;
    EXPECT_EQ(read_bytes(path).find('\n') % 64, 63u) << "data must start on a 64-byte boundary";
  }
  EXPECT_THROW(write_npy(dir / "bad.npy", at::zeros({2}, at::kDouble)), FormatError);
}

TEST(ReadNpy, HandWrittenNumpyFiles_AllVersions) {
  // numpy >= 1.23 leaves spare spaces after the dict for in-place growth; older ones do not.
  const std::string grown = "{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }" + std::string(20, ' ');
  const NpyArray v1 = read_npy(write_file("v1", npy_v1(grown, int32_bytes({3, -1, 4, 1}))));
  EXPECT_EQ(v1.descr, "<i4");
  EXPECT_EQ(v1.shape, (std::vector<int64_t>{4}));
  EXPECT_TRUE(at::equal(v1.data, at::tensor({3, -1, 4, 1}, at::kInt)));

  const std::string dict = "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 2), }";
  for (int major : {2, 3}) {
    const NpyArray v = read_npy(write_file("v" + std::to_string(major), npy_v2(major, dict, int64_bytes({1, 2, 3, 4}))));
    EXPECT_TRUE(at::equal(v.data, at::tensor({1, 2, 3, 4}, at::kLong).reshape({2, 2}))) << major;
  }
  // Python 2 numpy wrote long dims as 2L and the keys in any order, with double quotes at times.
  const NpyArray py2 = read_npy(write_file(
      "py2", npy_v1("{\"shape\": (2L, 1L), 'fortran_order': False, 'descr': '=i8'}", int64_bytes({9, 8}))));
  EXPECT_EQ(py2.shape, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(py2.data[1][0].item<int64_t>(), 8);
}

TEST(ReadTokenMatrix, Int32AndInt64_ReturnInt64Matrix) {
  const at::Tensor from32 = read_token_matrix(write_file(
      "tok32", npy_v1("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", int32_bytes({1, 2, 3, 4, 5, 6}))));
  EXPECT_EQ(from32.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(from32, at::arange(1, 7, at::kLong).reshape({2, 3})));
  const fs::path path = fresh_dir("npy_tok64") / "t.npy";
  write_npy(path, at::full({4, 16}, 31999, at::kLong));
  EXPECT_EQ(read_token_matrix(path, 32000).sizes(), (std::vector<int64_t>{4, 16}));
}

TEST(ReadTokenMatrix, FloatDtype_FormatErrorNamingFileAndFlag) {
  const fs::path path = fresh_dir("npy_float") / "f.npy";
  write_npy(path, at::zeros({2, 3}, at::kFloat));
  EXPECT_THAT(error_of([&] { read_token_matrix(path); }),
              ::testing::StartsWith(path.string() + ": dtype <f4; --calib-tokens needs int32 or int64 ["));
  const fs::path f8 = write_file("f8", npy_v1("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }",
                                              std::string(8, '\0')));
  EXPECT_THAT(error_of([&] { read_token_matrix(f8); }), HasSubstr("dtype <f8; --calib-tokens needs int32 or int64"));
  EXPECT_THAT(error_of([&] { read_npy(f8); }), HasSubstr("dtype <f8 is not supported"));
  const fs::path big_endian = write_file(
      "be", npy_v1("{'descr': '>i8', 'fortran_order': False, 'shape': (1, 1), }", std::string(8, '\0')));
  EXPECT_THAT(error_of([&] { read_token_matrix(big_endian); }), HasSubstr("dtype >i8"));
}

TEST(ReadTokenMatrix, ShapeNot2D_FormatError) {
  const fs::path dir = fresh_dir("npy_shape");
  write_npy(dir / "one.npy", at::arange(8, at::kLong));
  EXPECT_THAT(error_of([&] { read_token_matrix(dir / "one.npy"); }),
              HasSubstr("shape (8,) is not 2-D; --calib-tokens needs token ids shaped [n_samples, seqlen]"));
  write_npy(dir / "three.npy", at::zeros({2, 2, 2}, at::kLong));
  EXPECT_THAT(error_of([&] { read_token_matrix(dir / "three.npy"); }), HasSubstr("shape (2, 2, 2) is not 2-D"));
  write_npy(dir / "empty.npy", at::zeros({0, 8}, at::kLong));
  EXPECT_THAT(error_of([&] { read_token_matrix(dir / "empty.npy"); }), HasSubstr("holds no tokens"));
}

TEST(ReadTokenMatrix, IdsOutsideVocabulary_FormatErrorWithPosition) {
  const fs::path path = fresh_dir("npy_ids") / "t.npy";
  write_npy(path, at::tensor({5, 6, 7, -2}, at::kLong).reshape({2, 2}));
  EXPECT_THAT(error_of([&] { read_token_matrix(path); }), HasSubstr("token id -2 at [1, 1] is outside [0, inf)"));
  write_npy(path, at::tensor({5, 600, 7, 2}, at::kLong).reshape({2, 2}));
  EXPECT_THAT(error_of([&] { read_token_matrix(path, 512); }),
              HasSubstr("token id 600 at [0, 1] is outside the vocabulary [0, 512)"));
}

TEST(ReadNpy, WrongMagicOrVersion_FormatError) {
  EXPECT_THAT(error_of([&] { read_npy(write_file("magic", "PK\x03\x04 this is a zip file")); }),
              HasSubstr("not a .npy file"));
  EXPECT_THAT(error_of([&] { read_npy(write_file("tiny", "")); }), HasSubstr("not a .npy file"));
  EXPECT_THAT(error_of([&] { read_npy(write_file("v9", kMagic + std::string("\x09\x00\x02\x00{}", 6))); }),
              HasSubstr("version 9.0 is not supported"));
}

TEST(ReadNpy, FortranOrder_FormatError) {
  const fs::path path = write_file(
      "fortran", npy_v1("{'descr': '<i8', 'fortran_order': True, 'shape': (2, 2), }", int64_bytes({1, 2, 3, 4})));
  EXPECT_THAT(error_of([&] { read_token_matrix(path); }), HasSubstr("Fortran order"));
}

TEST(ReadNpy, TruncatedHeaderOrData_FormatError) {
  const std::string full = npy_v1("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }",
                                  int64_bytes({1, 2, 3, 4, 5, 6}));
  EXPECT_THAT(error_of([&] { read_npy(write_file("trunc_data", full.substr(0, full.size() - 5))); }),
              HasSubstr("truncated: shape (2, 3) of <i8 needs 48 data bytes but the file holds 43"));
  EXPECT_THAT(error_of([&] { read_npy(write_file("trunc_header", full.substr(0, 60))); }),
              HasSubstr("runs past the end of the file"));
  EXPECT_THAT(error_of([&] { read_npy(write_file("extra", full + "xx")); }), HasSubstr("50 data bytes"));
}

TEST(ReadNpy, MalformedHeaderDict_FormatError) {
  for (const std::string& dict :
       {std::string("{'descr': <i8, 'fortran_order': False, 'shape': (1,)}"),
        std::string("{'descr': '<i8', 'fortran_order': False}"), std::string("{'descr': '<i8' 'shape': (1,)}"),
        std::string("{'descr': '<i8', 'fortran_order': 0, 'shape': (1,)}"),
        std::string("{'descr': '<i8', 'fortran_order': False, 'shape': (-1,)}"),
        std::string("{'descr': '<i8', 'fortran_order': False, 'shape': (99999999999999999999,)}"),
        std::string("{'descr': '<i8', 'fortran_order': False, 'shape': (4294967296, 4294967296)}"),
        std::string("{'descr': [('a', '<i8')], 'fortran_order': False, 'shape': (1,)}"),
        std::string("{'descr': '<i8', 'fortran_order': False, 'shape': (1,)} trailing"), std::string(40, '(')}) {
    const std::string message = error_of([&] { read_npy(write_file("dict", npy_v1(dict, int64_bytes({1})))); });
    EXPECT_THAT(message, HasSubstr("tokens.npy")) << dict;
  }
}

TEST(ReadNpy, MissingFile_IoError) {
  EXPECT_THROW(read_npy(fresh_dir("npy_missing") / "absent.npy"), IoError);
}

}  // namespace
}  // namespace pipeprune
