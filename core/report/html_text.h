// Text helpers for the HTML report: escaping, and numbers written for people (units, a few
// digits) or for machines (the exact double, read back by the browser test). Pure functions.
#pragma once

#include <string>
#include <string_view>

namespace pipeprune::html {

// & < > " ' as character references: safe in element text and in quoted attribute values.
std::string escape(std::string_view text);

// The shortest text that parses back to the same double ("0.5", "1e-07", "312475648").
std::string exact_number(double value);

// A fraction as a percentage with `decimals` decimals: 0.5 -> "50.0%".
std::string format_percent(double fraction, int decimals = 1);
// Seconds with precision that fits their size: "0.0123 s", "1.23 s", "12.3 s", "1234 s".
std::string format_seconds(double seconds);
// A plain number with about `significant` significant digits, never in exponent form for
// values people meet here ("12.35", "0.0001234", "123457").
std::string format_number(double value, int significant = 4);

}  // namespace pipeprune::html
