#include "core/report/memory_csv.h"

#include <gtest/gtest.h>

#include "core/common/error.h"
#include "support/expect_error.h"

namespace pipeprune {
namespace {

constexpr const char* kHeader =
    "rank,checkpoint,seconds,host_rss_bytes,host_peak_bytes,device_allocated_bytes,device_reserved_bytes,"
    "device_peak_bytes,device_free_bytes\n";

TEST(ParseMemoryCsv, RowsOfTheLogWritten_ByPruneLogMemory) {
  const std::string text = std::string(kHeader) +
                           "0,start,0.000000,1000,1000,,,,\n"
                           "0,\"layer 1, done\",1.500000,3000,3500,,,,\n"
                           "1,\"say \"\"x\"\"\",2.250000,2000,2000,10,20,30,40\n";
  const std::vector<MemorySample> samples = parse_memory_csv(text, "m.csv");
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[1].rank, 0);
  EXPECT_EQ(samples[1].checkpoint, "layer 1, done");
  EXPECT_DOUBLE_EQ(samples[1].seconds, 1.5);
  EXPECT_EQ(samples[1].host_rss_bytes, 3000);
  EXPECT_EQ(samples[1].host_peak_bytes, 3500);
  EXPECT_EQ(samples[2].rank, 1);
  EXPECT_EQ(samples[2].checkpoint, "say \"x\"");
}

TEST(ParseMemoryCsv, MissingColumn_NamesItAndTheFile) {
  const std::string message =
      testing::error_message<FormatError>([] { parse_memory_csv("rank,checkpoint,seconds\n0,a,1\n", "m.csv"); });
  EXPECT_NE(message.find("m.csv: no column 'host_rss_bytes'"), std::string::npos) << message;
}

TEST(ParseMemoryCsv, BadNumberOrWidth_NamesTheLine) {
  std::string message = testing::error_message<FormatError>(
      [] { parse_memory_csv(std::string(kHeader) + "0,a,1.0,12x,1,,,,\n", "m.csv"); });
  EXPECT_NE(message.find("m.csv line 2: host_rss_bytes '12x' is not a number"), std::string::npos) << message;
  message = testing::error_message<FormatError>(
      [] { parse_memory_csv(std::string(kHeader) + "0,a,1.0,1,1,,,,\n0,b,2\n", "m.csv"); });
  EXPECT_NE(message.find("m.csv line 3: 3 fields, the header has 9"), std::string::npos) << message;
}

TEST(ParseMemoryCsv, EmptyText_IsFormatError) {
  EXPECT_THROW(parse_memory_csv("", "m.csv"), FormatError);
}

}  // namespace
}  // namespace pipeprune
