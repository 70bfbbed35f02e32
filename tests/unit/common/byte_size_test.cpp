// Sizes out and in: format_bytes' units and digits (the logs' and the report page's), and
// parse_bytes' binary and decimal units and its refusals naming the flag.
#include "core/common/byte_size.h"

#include <gtest/gtest.h>

#include "core/common/error.h"
#include "support/expect_error.h"

namespace pipeprune {
namespace {

TEST(FormatBytes, BinaryUnitsTwoDecimals) {
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(int64_t{300} << 20), "300.00 MiB");
  EXPECT_EQ(format_bytes(int64_t{5} << 29), "2.50 GiB");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
}

TEST(ParseBytes, UnitsAndRefusals) {
  EXPECT_EQ(parse_bytes("70GiB", "--max-memory"), int64_t{70} << 30);
  EXPECT_EQ(parse_bytes("8GB", "--max-memory"), int64_t{8000000000});
  EXPECT_EQ(parse_bytes("1.5 MiB", "--max-memory"), int64_t{3} << 19);
  EXPECT_EQ(parse_bytes("1024", "--max-memory"), 1024);
  const std::string message = testing::error_message<ConfigError>([] { parse_bytes("lots", "--max-shard-size"); });
  EXPECT_NE(message.find("--max-shard-size: 'lots' is not a size"), std::string::npos) << message;
}

}  // namespace
}  // namespace pipeprune
