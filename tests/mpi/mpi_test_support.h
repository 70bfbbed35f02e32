// Support for GoogleTest suites that run as several MPI ranks (see tests/mpi/CMakeLists.txt).
//
// mpi_test_main.cpp owns main(): it creates the MPI transport (which initialises MPI), then
// InitGoogleMock, and installs listeners that (1) make all ranks agree on every test's result,
// so the job fails when any rank fails and rank 0 names the failing ranks, (2) print other
// ranks' failures with a "[rank r]" prefix, and (3) abort the job when one test runs longer than
// PIPEPRUNE_MPI_TEST_TIMEOUT seconds (default 60), naming it, instead of hanging until ctest's
// timeout. Tests must call collectives the same number of times on every rank: use EXPECT_* for
// checks between communications, and PIPEPRUNE_ASSERT_ALL_RANKS(cond) where a test must stop,
// so that every rank returns at the same point and none is left waiting for a peer.
#pragma once

#include <gtest/gtest.h>

#include "dist/transport/transport.h"

namespace pipeprune::mpi_test {

// The job-wide transport created by main() (an MpiTransport).
Transport& world();

}  // namespace pipeprune::mpi_test

// Every rank evaluates `cond`; if it is false on any rank, every rank fails the test and returns.
#define PIPEPRUNE_ASSERT_ALL_RANKS(cond)                                                       \
  do {                                                                                         \
    bool pipeprune_ok_here_ = static_cast<bool>(cond);                                         \
    bool pipeprune_ok_all_ = ::pipeprune::mpi_test::world().all_agree(pipeprune_ok_here_);     \
    ASSERT_TRUE(pipeprune_ok_all_) << (pipeprune_ok_here_ ? "false on another rank: "          \
                                                          : "false on this rank: ")            \
                                   << #cond;                                                   \
  } while (0)

// Skips the test on every rank when the job has fewer than `n` ranks.
#define PIPEPRUNE_REQUIRE_RANKS(n)                                                             \
  do {                                                                                         \
    if (::pipeprune::mpi_test::world().size() < (n)) {                                         \
      GTEST_SKIP() << "needs at least " << (n) << " ranks";                                    \
    }                                                                                          \
  } while (0)
