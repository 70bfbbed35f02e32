// The wire header: what every backend accepts and rejects, and the messages it gives.
#include "dist/transport/tensor_header.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>

#include "tests/unit/transport/transport_test_util.h"

namespace pipeprune::wire {
namespace {

using ::testing::HasSubstr;
using pipeprune::testing::error_message;

TEST(TensorHeader, MakeHeader_ShapeDtypeBytes_FromTensor) {
  TensorHeader h = make_header(at::zeros({2, 3, 5}, at::kBFloat16), 4, 1024, 0, 1);
  EXPECT_EQ(h.magic, kHeaderMagic);
  EXPECT_EQ(header_dtype(h), at::kBFloat16);
  EXPECT_EQ(header_shape(h), (std::vector<int64_t>{2, 3, 5}));
  EXPECT_EQ(h.nbytes, 2 * 3 * 5 * 2);
  EXPECT_EQ(h.tag, 4);
  EXPECT_EQ(h.chunk_bytes, 1024);
  EXPECT_NO_THROW(validate_header(h, 1, 0));
}

TEST(TensorHeader, MakeHeader_ScalarAndEmpty_Valid) {
  TensorHeader scalar = make_header(at::scalar_tensor(1.0, at::kDouble), 0, 8, 0, 1);
  EXPECT_EQ(scalar.ndim, 0);
  EXPECT_EQ(scalar.nbytes, 8);
  TensorHeader empty = make_header(at::zeros({4, 0}), 0, 8, 0, 1);
  EXPECT_EQ(empty.nbytes, 0);
  EXPECT_NO_THROW(validate_header(scalar, 1, 0));
  EXPECT_NO_THROW(validate_header(empty, 1, 0));
}

TEST(TensorHeader, MakeHeader_NineDimsOrUnsupportedDtype_CommError) {
  EXPECT_THAT(error_message<CommError>([] { make_header(at::zeros(std::vector<int64_t>(9, 1)), 0, 8, 2, 3); }),
              HasSubstr("rank 2: tensor for rank 3 has 9 dims"));
  auto unsupported = at::empty({2}, at::kComplexHalf);  // not carried
  EXPECT_THAT(error_message<CommError>([&] { make_header(unsupported, 0, 8, 0, -1); }),
              HasSubstr("rank 0: tensor for every rank has dtype"));
}

TEST(TensorHeader, Validate_CorruptFields_CommErrorNamingRanks) {
  TensorHeader good = make_header(at::zeros({2, 8}), 0, 64, 0, 1);
  auto corrupt = [&](auto mutate, const char* expected) {
    TensorHeader h = good;
    mutate(h);
    EXPECT_THAT(error_message<CommError>([&] { validate_header(h, 1, 0); }),
                HasSubstr(std::string("rank 1: corrupt tensor header from rank 0 (") + expected))
        << expected;
  };
  corrupt([](TensorHeader& h) { h.magic = 7; }, "bad magic");
  corrupt([](TensorHeader& h) { h.ndim = 9; }, "ndim 9");
  corrupt([](TensorHeader& h) { h.ndim = -1; }, "ndim -1");
  corrupt([](TensorHeader& h) { h.dtype = 1000; }, "dtype code 1000");
  corrupt([](TensorHeader& h) { h.shape[1] = -8; }, "negative dim");
  corrupt([](TensorHeader& h) { h.nbytes = 63; }, "byte count 63 != 64");
  corrupt([](TensorHeader& h) { h.shape[0] = h.shape[1] = std::numeric_limits<int64_t>::max() / 2; },
          "size overflows");
  corrupt([](TensorHeader& h) { h.chunk_bytes = 0; }, "chunk size 0");
  corrupt([](TensorHeader& h) { h.chunk_bytes = int64_t{1} << 31; }, "chunk size 2147483648");
}

TEST(TensorHeader, Validate_FailedHeader_SaysPeerFailed) {
  EXPECT_THAT(error_message<CommError>([] { validate_header(failed_header(), 3, 1); }),
              HasSubstr("rank 3: rank 1 failed before sending its tensor"));
}

TEST(TensorHeader, CheckExpectation_Mismatch_MessageNamesBothRanksAndShapes) {
  TensorHeader h = make_header(at::zeros({2, 8}), 0, 64, 0, 1);
  TensorExpectation shape_only;
  shape_only.shape = std::vector<int64_t>{2, 16};
  EXPECT_THAT(error_message<CommError>([&] { check_expectation(h, shape_only, 1, 0); }),
              HasSubstr("rank 1: tensor from rank 0 has shape [2,8] float32, expected [2,16] float32"));
  TensorExpectation dtype_only;
  dtype_only.dtype = at::kHalf;
  EXPECT_THAT(error_message<CommError>([&] { check_expectation(h, dtype_only, 1, 0); }),
              HasSubstr("has shape [2,8] float32, expected [2,8] float16"));
  TensorExpectation both;
  both.dtype = at::kFloat;
  both.shape = std::vector<int64_t>{2, 8};
  EXPECT_NO_THROW(check_expectation(h, both, 1, 0));
  EXPECT_NO_THROW(check_expectation(h, TensorExpectation{}, 1, 0));
}

TEST(TensorHeader, TensorRoundTrip_SameHeader) {
  TensorHeader h = make_header(at::zeros({3, 1, 4}, at::kLong), 9, 77, 0, 1);
  TensorHeader back = header_from_tensor(header_to_tensor(h), 1, 0);
  EXPECT_EQ(header_shape(back), header_shape(h));
  EXPECT_EQ(back.dtype, h.dtype);
  EXPECT_EQ(back.nbytes, h.nbytes);
  EXPECT_EQ(back.tag, 9);
  EXPECT_THAT(error_message<CommError>([] { header_from_tensor(at::zeros({5}, at::kByte), 1, 0); }),
              HasSubstr("tensor header from rank 0 has 5 bytes, expected 104"));
}

TEST(TensorHeader, CheckSameDtype_Differs_NamesRanks) {
  std::vector<TensorHeader> headers = {make_header(at::zeros({1}), 0, 8, 0, -1),
                                       make_header(at::zeros({1}), 0, 8, 1, -1),
                                       make_header(at::zeros({1}, at::kBFloat16), 0, 8, 2, -1)};
  EXPECT_THAT(error_message<CommError>([&] { check_same_dtype(headers, 1); }),
              HasSubstr("rank 1: all_gather got float32 from rank 0 but bfloat16 from rank 2"));
}

TEST(TensorHeader, DtypeName_TorchSpelling) {
  EXPECT_EQ(dtype_name(at::kFloat), "float32");
  EXPECT_EQ(dtype_name(at::kBFloat16), "bfloat16");
  EXPECT_EQ(dtype_name(at::kHalf), "float16");
  EXPECT_EQ(describe(at::kLong, {}), "[] int64");
}

}  // namespace
}  // namespace pipeprune::wire
