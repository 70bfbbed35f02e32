// The RFC 4180 reader shared by the memory log and the report page: quoted commas, quotes and
// line breaks, CRLF, blank lines, a last record without a newline, and a cut-off quote.
#include "core/common/csv.h"

#include <gtest/gtest.h>

#include "core/common/error.h"
#include "support/expect_error.h"

namespace pipeprune {
namespace {

TEST(SplitCsvRecords, QuotedFields_HoldCommasQuotesAndLineBreaks) {
  const auto records = split_csv_records("a,\"b,c\",\"say \"\"hi\"\"\"\r\n\"two\nlines\",,x\n\n", "t.csv");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0], (std::vector<std::string>{"a", "b,c", "say \"hi\""}));
  EXPECT_EQ(records[1], (std::vector<std::string>{"two\nlines", "", "x"}));
}

TEST(SplitCsvRecords, LastRecordWithoutNewline_AndEmptyQuotedField) {
  const auto records = split_csv_records("\"\"\n1,2", "t.csv");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0], (std::vector<std::string>{""}));
  EXPECT_EQ(records[1], (std::vector<std::string>{"1", "2"}));
}

TEST(SplitCsvRecords, UnclosedQuote_IsFormatErrorNamingTheSource) {
  const std::string message =
      testing::error_message<FormatError>([] { split_csv_records("a,\"open\n", "/tmp/m.csv"); });
  EXPECT_NE(message.find("/tmp/m.csv: a quoted field is not closed"), std::string::npos) << message;
}

TEST(ParseCsvNumber, WholeFieldOrFormatErrorNamingLineAndColumn) {
  EXPECT_EQ(parse_csv_number<int64_t>("42", "m.csv", 3, "rank"), 42);
  EXPECT_DOUBLE_EQ(parse_csv_number<double>("1.5", "m.csv", 3, "seconds"), 1.5);
  const std::string message =
      testing::error_message<FormatError>([] { parse_csv_number<int64_t>("4x", "m.csv", 7, "rank"); });
  EXPECT_NE(message.find("m.csv line 7: rank '4x' is not a number"), std::string::npos) << message;
}

}  // namespace
}  // namespace pipeprune
