#include "core/report/html_text.h"

#include <gtest/gtest.h>

namespace pipeprune::html {
namespace {

TEST(Escape, MarkupCharacters_BecomeReferences) {
  EXPECT_EQ(escape("<a href=\"x\">Tom & Jerry's</a>"), "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
  EXPECT_EQ(escape("plain"), "plain");
}

TEST(ExactNumber, ShortestTextThatReadsBack) {
  EXPECT_EQ(exact_number(0.5), "0.5");
  EXPECT_EQ(exact_number(0.1), "0.1");
  EXPECT_EQ(exact_number(312475648), "312475648");
  const double third = 1.0 / 3;
  EXPECT_EQ(std::stod(exact_number(third)), third);
}

TEST(Format, UnitsAndDigitsForPeople) {
  EXPECT_EQ(format_percent(0.5), "50.0%");
  EXPECT_EQ(format_percent(0.123456, 2), "12.35%");
  EXPECT_EQ(format_seconds(0.01234), "0.0123 s");
  EXPECT_EQ(format_seconds(1.234), "1.23 s");
  EXPECT_EQ(format_seconds(123.46), "123.5 s");
  EXPECT_EQ(format_seconds(12345), "12345 s");
  EXPECT_EQ(format_number(12.3456), "12.35");
  EXPECT_EQ(format_number(123456.7), "123457");
  EXPECT_EQ(format_number(0.000123456), "0.0001235");
  EXPECT_EQ(format_number(40), "40");
  EXPECT_EQ(format_number(0), "0");
}

}  // namespace
}  // namespace pipeprune::html
