// Error kinds: an error thrown again from its kind and message is the same error.
#include "core/common/error.h"

#include <gtest/gtest.h>

#include <functional>
#include <vector>

namespace pipeprune {
namespace {

TEST(ErrorKind, ThrowErrorRebuildsTheTypeAndKeepsTheMessageAsIs) {
  for (ErrorKind kind : {ErrorKind::kError, ErrorKind::kConfig, ErrorKind::kFormat, ErrorKind::kIo, ErrorKind::kComm,
                         ErrorKind::kOutOfMemory}) {
    try {
      throw_error(kind, "file.safetensors: truncated [core/io/safetensors.cpp:12]");
    } catch (const Error& e) {
      EXPECT_EQ(error_kind(e), kind);
      EXPECT_STREQ(e.what(), "file.safetensors: truncated [core/io/safetensors.cpp:12]");
    }
  }
}

TEST(ErrorKind, CheckMacroErrorsHaveTheirKind) {
  try {
    PIPEPRUNE_CHECK(false, IoError, "disk " << 3);
  } catch (const Error& e) {
    EXPECT_EQ(error_kind(e), ErrorKind::kIo);
  }
}

}  // namespace
}  // namespace pipeprune
