// Which entries a mask may remove: unstructured (a fraction of the matrix) or N:M (N pruned of
// every M consecutive input columns of every row).
#pragma once

#include <cstdint>
#include <string>

namespace pipeprune {

struct SparsityPattern {
  enum class Kind { kUnstructured, kNM };
  Kind kind = Kind::kUnstructured;
  double sparsity = 0.5;  // unstructured: fraction pruned, in [0, 1); N:M: n / m
  int64_t n = 0;          // N:M: entries pruned per group
  int64_t m = 0;          // N:M: group size

  // "unstructured" (with `sparsity`), or "N:M" such as "2:4" (sparsity is then n/m and the
  // given value is ignored). ConfigError naming --pattern / --sparsity on bad values.
  static SparsityPattern parse(const std::string& pattern, double sparsity);
  bool is_nm() const { return kind == Kind::kNM; }
  // "unstructured" or "2:4"
  std::string to_string() const;
  // ConfigError naming the tensor when an N:M pattern does not divide its input columns.
  void check_columns(int64_t cols, const std::string& tensor_name) const;
};

// ConfigError naming --sparsity unless it is a fraction in [0, 1).
void check_sparsity(double sparsity);

}  // namespace pipeprune
