#include "core/prune/sparsity_pattern.h"

#include <cmath>
#include <cstdint>
#include <string>

#include "core/common/error.h"

namespace pipeprune {
namespace {

// Large enough for any group a kernel could use, small enough that n*64 cannot overflow.
constexpr int64_t kMaxGroupSize = 1 << 20;

// Strict decimal digits only ("2", "16"); no signs, spaces or exponents.
bool parse_count(const std::string& text, int64_t* value) {
  if (text.empty() || text.size() > 7) return false;
  int64_t result = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    result = result * 10 + (c - '0');
  }
  *value = result;
  return true;
}

}  // namespace

void check_sparsity(double sparsity) {
  PIPEPRUNE_CHECK(std::isfinite(sparsity) && sparsity >= 0.0 && sparsity < 1.0, ConfigError,
                  "--sparsity " << sparsity
                                << " is outside [0, 1); give the fraction of weights to prune, e.g. --sparsity 0.5");
}

SparsityPattern SparsityPattern::parse(const std::string& pattern, double sparsity) {
  SparsityPattern result;
  if (pattern == "unstructured") {
    check_sparsity(sparsity);
    result.kind = Kind::kUnstructured;
    result.sparsity = sparsity;
    return result;
  }
  const auto colon = pattern.find(':');
  int64_t n = 0;
  int64_t m = 0;
  const bool well_formed = colon != std::string::npos &&
                           parse_count(pattern.substr(0, colon), &n) &&
                           parse_count(pattern.substr(colon + 1), &m);
  PIPEPRUNE_CHECK(well_formed, ConfigError,
                  "--pattern '" << pattern
                                << "' is not recognised; use 'unstructured' or N:M such as 2:4");
  PIPEPRUNE_CHECK(n >= 1 && n < m && m <= kMaxGroupSize, ConfigError,
                  "--pattern " << pattern << " needs 1 <= N < M (N pruned of every M, M <= "
                               << kMaxGroupSize << "); e.g. --pattern 2:4");
  result.kind = Kind::kNM;
  result.n = n;
  result.m = m;
  result.sparsity = static_cast<double>(n) / static_cast<double>(m);
  return result;
}

std::string SparsityPattern::to_string() const {
  if (!is_nm()) return "unstructured";
  return std::to_string(n) + ":" + std::to_string(m);
}

void SparsityPattern::check_columns(int64_t cols, const std::string& tensor_name) const {
  if (!is_nm()) return;
  PIPEPRUNE_CHECK(cols > 0 && cols % m == 0, ConfigError,
                  tensor_name << " has " << cols << " input columns, not a multiple of M=" << m
                              << " of --pattern " << to_string()
                              << "; choose an N:M pattern whose M divides it, or 'unstructured'");
}

}  // namespace pipeprune
