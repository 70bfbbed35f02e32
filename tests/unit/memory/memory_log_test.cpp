#include "core/memory/memory_log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <sstream>

#include "core/common/error.h"
#include "core/common/sanitizer.h"

namespace pipeprune {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kMiB = 1024 * 1024;
const std::string kHeader =
    "checkpoint,seconds,host_rss_bytes,host_peak_bytes,device_allocated_bytes,device_reserved_bytes,"
    "device_peak_bytes,device_free_bytes";

// A CSV reader of the test's own (quotes, doubled quotes; no line breaks inside fields).
std::vector<std::vector<std::string>> read_csv(const std::string& text) {
  std::vector<std::vector<std::string>> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields(1);
    bool quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
      if (quoted && line[i] == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (line[i] == '"') {
        quoted = !quoted;
      } else if (line[i] == ',' && !quoted) {
        fields.emplace_back();
      } else {
        fields.back() += line[i];
      }
    }
    out.push_back(fields);
  }
  return out;
}

TEST(MemoryLog, Checkpoint_HostReadingsNoDeviceColumns) {
  MemoryLog log;
  log.checkpoint("start");
  log.checkpoint("end");
  ASSERT_EQ(log.rows().size(), 2u);
  for (const MemoryCheckpoint& row : log.rows()) {
    EXPECT_GT(row.host_rss_bytes, 0);
    EXPECT_GE(row.host_peak_bytes, row.host_rss_bytes);
    EXPECT_FALSE(row.device.has_value());
  }
  EXPECT_EQ(log.rows()[0].name, "start");
  EXPECT_GE(log.rows()[0].seconds, 0.0);
  EXPECT_GE(log.rows()[1].seconds, log.rows()[0].seconds);
  const auto csv = read_csv(log.to_csv(4));
  ASSERT_EQ(csv.size(), 3u);
  EXPECT_EQ(csv[1][0], "4");
  EXPECT_EQ(csv[1].size(), 9u);
  for (size_t c = 5; c < 9; ++c) EXPECT_EQ(csv[1][c], "") << c;
}

TEST(MemoryLog, TouchingTwoHundredMegabytes_RssRisesThenPeakStays) {
  MemoryLog log;
  log.checkpoint("before");
  {
    const size_t bytes = 200 * kMiB;
    std::unique_ptr<char[]> block(new char[bytes]);
    std::memset(block.get(), 1, bytes);
    volatile char sink = block[bytes - 1];
    (void)sink;
    log.checkpoint("allocated");
  }
  log.checkpoint("freed");
  const auto& rows = log.rows();
  EXPECT_GE(rows[1].host_rss_bytes - rows[0].host_rss_bytes, 150 * kMiB);
  EXPECT_GE(rows[1].host_peak_bytes - rows[0].host_rss_bytes, 150 * kMiB);
  // glibc returns a block this large to the kernel at once; the peak remembers it. An ASan
  // build keeps freed memory resident in its quarantine, so there the fall is not checked.
  if (!kAddressSanitizer) EXPECT_LE(rows[2].host_rss_bytes, rows[1].host_rss_bytes - 150 * kMiB);
  EXPECT_GE(rows[2].host_peak_bytes, rows[1].host_peak_bytes);
}

TEST(MemoryLog, DeviceProbe_ColumnsFilledPeakNeverDecreases) {
  // A fake device whose own peak counter is reset between the second and third reading.
  std::vector<DeviceMemoryReading> readings = {
      {100, 200, 150, 1000}, {300, 400, 350, 800}, {50, 400, 60, 800}, {500, 600, 0, 500}};
  size_t next = 0;
  MemoryLog log([&]() -> std::optional<DeviceMemoryReading> { return readings[next++]; });
  for (const char* name : {"a", "b", "c", "d"}) log.checkpoint(name);
  const auto& rows = log.rows();
  ASSERT_TRUE(rows[2].device.has_value());
  EXPECT_EQ(rows[0].device->peak_bytes, 150);
  EXPECT_EQ(rows[1].device->peak_bytes, 350);
  EXPECT_EQ(rows[2].device->peak_bytes, 350);  // reset hidden
  EXPECT_EQ(rows[3].device->peak_bytes, 500);  // never below what is allocated
  EXPECT_EQ(rows[3].device->free_bytes, 500);
  const auto csv = read_csv(log.to_csv(0));
  EXPECT_EQ((std::vector<std::string>(csv[3].begin() + 5, csv[3].end())),
            (std::vector<std::string>{"50", "400", "350", "800"}));
  EXPECT_THAT(log.summary_table(), HasSubstr("device peak"));
}

TEST(MemoryLog, MergeThreeRanks_OneRowPerCheckpointPerRankPeaksMonotone) {
  std::vector<std::string> serialized;
  for (int rank = 0; rank < 3; ++rank) {
    MemoryLog log;
    log.checkpoint("start");
    for (int layer = 0; layer < rank + 2; ++layer) log.checkpoint("layer " + std::to_string(layer) + " done");
    log.checkpoint("before save, shard \"1\"");  // quoted in the CSV
    log.checkpoint("end");
    serialized.push_back(log.serialize());
  }
  const auto csv = read_csv(MemoryLog::merge_csv(serialized));
  ASSERT_EQ(csv.size(), 1u + (5 + 6 + 7));
  EXPECT_EQ(csv[0].size(), 9u);
  EXPECT_EQ(csv[0][0], "rank");
  size_t line = 1;
  for (int rank = 0; rank < 3; ++rank) {
    std::vector<std::string> names;
    double previous_seconds = -1;
    int64_t previous_peak = 0;
    for (int i = 0; i < rank + 5; ++i, ++line) {
      const auto& f = csv[line];
      ASSERT_EQ(f.size(), 9u) << line;
      EXPECT_EQ(f[0], std::to_string(rank));
      names.push_back(f[1]);
      const double seconds = std::stod(f[2]);
      const int64_t rss = std::stoll(f[3]);
      const int64_t peak = std::stoll(f[4]);
      EXPECT_GE(seconds, previous_seconds);
      EXPECT_GE(peak, previous_peak) << "rank " << rank << " line " << line;
      EXPECT_GE(peak, rss);
      EXPECT_EQ(f[5] + f[6] + f[7] + f[8], "");
      previous_seconds = seconds;
      previous_peak = peak;
    }
    EXPECT_EQ(names.front(), "start");
    EXPECT_EQ(names[1], "layer 0 done");
    EXPECT_EQ(names[names.size() - 2], "before save, shard \"1\"");
    EXPECT_EQ(names.back(), "end");
  }
}

// Rows given by hand: the CSV and the table are exactly these bytes.
const std::string kRank0 = kHeader +
                           "\n"
                           "start,0.000000,104857600,104857600,,,,\n"
                           "layer 0 done,1.250000,209715200,314572800,,,,\n"
                           "end,2.500000,157286400,314572800,,,,\n";
const std::string kRank1 = kHeader +
                           "\n"
                           "end,3.000000,2048,4096,10,20,30,40\n"
                           "start,0.500000,1024,1024,1,2,3,4\n";

TEST(MemoryLog, SerializeParse_RoundTripsExactly) {
  EXPECT_EQ(MemoryLog::parse(kRank0).size(), 3u);
  MemoryLog log;
  log.checkpoint("x, \"quoted\"");
  log.checkpoint("y");
  const std::string text = log.serialize();
  const std::vector<MemoryCheckpoint> rows = MemoryLog::parse(text);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].name, "x, \"quoted\"");
  EXPECT_EQ(rows[1].host_peak_bytes, log.rows()[1].host_peak_bytes);
  EXPECT_NEAR(rows[1].seconds, log.rows()[1].seconds, 1e-6);
  EXPECT_EQ(MemoryLog::merge_csv({text}), log.to_csv(0));
}

TEST(MemoryLog, MergeCsv_DeterministicBytesOrderedByRankThenTime) {
  const std::string expected = "rank," + kHeader +
                               "\n"
                               "0,start,0.000000,104857600,104857600,,,,\n"
                               "0,layer 0 done,1.250000,209715200,314572800,,,,\n"
                               "0,end,2.500000,157286400,314572800,,,,\n"
                               "1,start,0.500000,1024,1024,1,2,3,4\n"
                               "1,end,3.000000,2048,4096,10,20,30,40\n";
  EXPECT_EQ(MemoryLog::merge_csv({kRank0, kRank1}), expected);
  EXPECT_EQ(MemoryLog::merge_csv({kRank0, kRank1}), MemoryLog::merge_csv({kRank0, kRank1}));
}

TEST(MemoryLog, SummaryTable_EveryCheckpointAlignedWithDelta) {
  const std::string expected =
      "checkpoint    seconds    host rss   host peak    rss delta\n"
      "start           0.000  100.00 MiB  100.00 MiB         +0 B\n"
      "layer 0 done    1.250  200.00 MiB  300.00 MiB  +100.00 MiB\n"
      "end             2.500  150.00 MiB  300.00 MiB   -50.00 MiB\n";
  EXPECT_EQ(MemoryLog::summary_table(MemoryLog::parse(kRank0)), expected);

  MemoryLog log;
  for (const char* name : {"start", "planned", "layer 0 done", "before save", "after save", "end"}) {
    log.checkpoint(name);
  }
  const std::string table = log.summary_table();
  for (const MemoryCheckpoint& row : log.rows()) EXPECT_THAT(table, HasSubstr("\n" + row.name + " ")) << row.name;
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 7);
}

TEST(MemoryLog, BadText_FormatErrorNamingRankAndLine) {
  EXPECT_THROW(MemoryLog::parse(""), FormatError);
  EXPECT_THROW(MemoryLog::parse("rank," + kHeader + "\n"), FormatError);
  try {
    MemoryLog::merge_csv({kRank0, kHeader + "\nstart,0.1,12x,5,,,,\n"});
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("memory log of rank 1 line 2: host_rss_bytes '12x' is not a number"));
  }
  EXPECT_THROW(MemoryLog::parse(kHeader + "\nstart,0.1,12,5,,,\n"), FormatError);      // 7 fields
  EXPECT_THROW(MemoryLog::parse(kHeader + "\nstart,0.1,12,5,1,,,\n"), FormatError);    // half a device
  EXPECT_THROW(MemoryLog::parse(kHeader + "\n\"start,0.1,12,5,,,,\n"), FormatError);  // open quote
}

}  // namespace
}  // namespace pipeprune
