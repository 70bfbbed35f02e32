#include "core/io/torch_pickle.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/common/error.h"
#include "unit/io/torch_bin_test_util.h"

namespace pipeprune {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::PickleBuilder;

std::vector<PickledTensor> parse(const std::string& bytes) {
  return parse_torch_state_dict("f.bin", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

// The FormatError message for `bytes`: one line naming the file.
std::string parse_error(const std::string& bytes) {
  try {
    parse(bytes);
  } catch (const FormatError& e) {
    const std::string message = e.what();
    EXPECT_THAT(message, HasSubstr("f.bin"));
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  }
  ADD_FAILURE() << "no FormatError";
  return "";
}

TEST(TorchPickle, HandBuiltStateDict_ReportsStorageOffsetSizesStrides) {
  PickleBuilder p;
  p.begin_dict();
  p.tensor("a", "FloatStorage", "0", 12, 2, {2, 5}, {5, 1});
  p.tensor("b", "HalfStorage", "1", 3, 0, {}, {});
  const std::vector<PickledTensor> t = parse(p.finish());
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].name, "a");
  EXPECT_EQ(t[0].storage.type, "FloatStorage");
  EXPECT_EQ(t[0].storage.key, "0");
  EXPECT_EQ(t[0].storage.location, "cpu");
  EXPECT_EQ(t[0].storage.numel, 12);
  EXPECT_EQ(t[0].storage_offset, 2);
  EXPECT_THAT(t[0].sizes, ElementsAre(2, 5));
  EXPECT_THAT(t[0].strides, ElementsAre(5, 1));
  EXPECT_EQ(t[1].name, "b");
  EXPECT_TRUE(t[1].sizes.empty());
}

TEST(TorchPickle, Long1AndBinInt_SignedValues) {
  // LONG1 carries counts of 2^31 and more (a 405B embedding); BININT is signed.
  PickleBuilder p;
  p.begin_dict();
  p.tensor("big", "BFloat16Storage", "0", int64_t{1} << 33, -1, {int64_t{1} << 32}, {1});
  const std::vector<PickledTensor> t = parse(p.finish());
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].storage.numel, int64_t{1} << 33);
  EXPECT_EQ(t[0].storage_offset, -1);  // reported as is; torch_archive rejects it
  EXPECT_THAT(t[0].sizes, ElementsAre(int64_t{1} << 32));
}

TEST(TorchPickle, EveryPrefixOfAValidPickle_FormatErrorNotACrash) {
  PickleBuilder p;
  p.begin_dict();
  p.tensor("a", "FloatStorage", "0", 4, 0, {4}, {1});
  const std::string full = p.finish();
  ASSERT_EQ(parse(full).size(), 1u);
  for (size_t n = 0; n < full.size(); ++n) {
    EXPECT_THROW(parse(full.substr(0, n)), FormatError) << "prefix of " << n << " bytes";
  }
  EXPECT_THAT(parse_error(full.substr(0, full.size() - 1)), HasSubstr("truncated"));
}

TEST(TorchPickle, ForeignGlobal_FormatErrorNamingIt) {
  EXPECT_THAT(parse_error(std::string("\x80\x02" "cposix\nsystem\n", 16)), HasSubstr("refers to posix.system"));
  EXPECT_THAT(parse_error(std::string("\x80\x02" "cbuiltins\neval\n", 17)), HasSubstr("refers to builtins.eval"));
  // torch's own classes are refused too unless they are the three a state dict needs.
  EXPECT_THAT(parse_error(std::string("\x80\x02" "ctorch\nload\n", 14)), HasSubstr("refers to torch.load"));
  EXPECT_THAT(parse_error(std::string("\x80\x02" "ctorch.nn\nModuleStorage\n", 26)), HasSubstr("refers to torch.nn"));
}

TEST(TorchPickle, StorageClassCalled_FormatError) {
  // A storage class is allowed as a persistent-id field, never as something to call.
  EXPECT_THAT(parse_error(std::string("\x80\x02" "ctorch\nFloatStorage\n)R.", 25)), HasSubstr("REDUCE of torch.FloatStorage"));
}

TEST(TorchPickle, UnknownOpcodeAndBadStack_FormatError) {
  EXPECT_THAT(parse_error(std::string("\x80\x02}G", 4)), HasSubstr("opcode 0x47"));  // BINFLOAT
  EXPECT_THAT(parse_error(std::string("\x80\x09}.", 4)), HasSubstr("protocol 9"));
  EXPECT_THAT(parse_error(std::string("\x80\x02.", 3)), HasSubstr("stack underflow"));
  EXPECT_THAT(parse_error(std::string("\x80\x02h\x05.", 5)), HasSubstr("memo entry 5"));
  EXPECT_THAT(parse_error(std::string("\x80\x02(s.", 5)), HasSubstr("stack underflow"));  // below a MARK
  EXPECT_THAT(parse_error(std::string("\x80\x02]K\x01K\x02s.", 9)), HasSubstr("SETITEM needs a dict"));
  EXPECT_THAT(parse_error(std::string("\x80\x02}(K\x01u.", 8)), HasSubstr("odd number"));
  EXPECT_THAT(parse_error(std::string("\x80\x02X\xff\xff\xff\x7f", 7)), HasSubstr("runs past the end"));
}

TEST(TorchPickle, TopLevelNotAFlatTensorDict_FormatErrorSayingSo) {
  EXPECT_THAT(parse_error(std::string("\x80\x02].", 4)), HasSubstr("holds a list, not a dict of tensors"));
  EXPECT_THAT(parse_error(std::string("\x80\x02}X\x01\x00\x00\x00w}s.", 12)),
              HasSubstr("entry w is a dict, not a tensor"));
  EXPECT_THAT(parse_error(std::string("\x80\x02}K\x01K\x02s.", 9)), HasSubstr("int key"));
}

TEST(TorchPickle, BadPersistentIdOrRebuildArguments_FormatError) {
  // BINPERSID of ('storage', 'FloatStorage' as a string, ...): the type must be a storage class.
  PickleBuilder p;
  std::string pid = p.unicode("storage") + p.unicode("FloatStorage") + p.unicode("0") + p.unicode("cpu") + p.integer(1);
  EXPECT_THAT(parse_error(std::string("\x80\x02(", 3) + pid + "tQ."), HasSubstr("persistent id"));
  // _rebuild_tensor_v2 with a size that is not a tuple of ints.
  PickleBuilder q;
  q.begin_dict();
  q.tensor_with_raw_size("a", q.unicode("4"));
  EXPECT_THAT(parse_error(q.finish()), HasSubstr("size is not a tuple"));
}

TEST(TorchPickle, DuplicateName_FormatError) {
  PickleBuilder p;
  p.begin_dict();
  p.tensor("a", "FloatStorage", "0", 4, 0, {4}, {1});
  p.tensor("a", "FloatStorage", "0", 4, 0, {4}, {1});
  EXPECT_THAT(parse_error(p.finish()), HasSubstr("tensor a appears twice"));
}

}  // namespace
}  // namespace pipeprune
