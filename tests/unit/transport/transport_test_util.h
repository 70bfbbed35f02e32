// Helpers for transport unit tests: run one function per rank of a local world on its own thread,
// deterministic test tensors, and checks on error messages.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/common/error.h"
#include "dist/transport/transport.h"
#include "support/expect_error.h"

namespace pipeprune::testing {

// Runs fn(rank's transport) on one thread per rank and joins them. An exception that escapes a
// rank is reported as a test failure (never std::terminate).
inline void run_ranks(std::vector<std::unique_ptr<Transport>>& world,
                      const std::function<void(Transport&)>& fn) {
  std::vector<std::string> escaped(world.size());
  std::vector<std::thread> threads;
  for (size_t r = 0; r < world.size(); ++r) {
    threads.emplace_back([&, r] {
      try {
        fn(*world[r]);
      } catch (const std::exception& e) {
        escaped[r] = e.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (size_t r = 0; r < world.size(); ++r) {
    EXPECT_EQ(escaped[r], "") << "rank " << r << " threw";
  }
}

inline void run_ranks(int world_size, const std::function<void(Transport&)>& fn,
                      const LocalWorldOptions& options = {}) {
  auto world = create_local_world(world_size, options);
  run_ranks(world, fn);
}

// Values that differ per element and per seed, exact in every dtype (small integers).
inline at::Tensor pattern(c10::ScalarType dtype, at::IntArrayRef shape, int seed) {
  at::Tensor values = at::arange(c10::multiply_integers(shape), at::kLong).add(seed * 7).remainder(97);
  if (dtype == at::kBool) return values.remainder(3).eq(0).reshape(shape);
  return values.to(dtype).reshape(shape);
}

}  // namespace pipeprune::testing
