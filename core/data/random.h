// The seeded random source of calibration sampling, specified exactly so that a window drawn
// with a given seed is the same on every platform and standard library: std::mt19937_64
// (whose output sequence the C++ standard fixes), and uniform integers by rejection sampling
// (std::uniform_int_distribution is implementation-defined, so it is not used).
#pragma once

#include <cstdint>
#include <random>

namespace pipeprune {

class SeededRandom {
 public:
  explicit SeededRandom(uint64_t seed) : engine_(seed) {}
  // Uniform integer in [low, high] (inclusive), like Python's random.randint.
  int64_t uniform_int(int64_t low, int64_t high);

 private:
  std::mt19937_64 engine_;
};

}  // namespace pipeprune
