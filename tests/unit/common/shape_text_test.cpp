#include "core/common/shape_text.h"

#include <gtest/gtest.h>

#include <vector>

namespace pipeprune {
namespace {

TEST(ShapeText, BracketsAndCommaSpace) {
  EXPECT_EQ(shape_text({64, 32}), "[64, 32]");
  EXPECT_EQ(shape_text({7}), "[7]");
  EXPECT_EQ(shape_text({}), "[]");
  const std::vector<int64_t> big{1, 4096, 11008};
  EXPECT_EQ(shape_text(big), "[1, 4096, 11008]");
}

}  // namespace
}  // namespace pipeprune
