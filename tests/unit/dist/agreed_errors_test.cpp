// Errors every rank learns of, with their type: run_on_root and run_agreed on worlds of threads.
#include "dist/agreed_errors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>

#include "core/common/error.h"
#include "unit/transport/transport_test_util.h"

namespace pipeprune {
namespace {

using ::testing::HasSubstr;

TEST(RunOnRoot, RootsConfigError_IsAConfigErrorOnEveryRankAndOnlyTheRootWorked) {
  std::atomic<int> worked{0};
  testing::run_ranks(3, [&](Transport& transport) {
    const std::string message = testing::error_message<ConfigError>([&] {
      run_on_root(transport, 1, [&] {
        ++worked;
        PIPEPRUNE_FAIL(ConfigError, "--seqlen is bad");
      });
    });
    EXPECT_THAT(message, HasSubstr("--seqlen is bad"));
  });
  EXPECT_EQ(worked.load(), 1);
}

TEST(RunOnRoot, Success_NoRankThrows) {
  testing::run_ranks(2, [](Transport& transport) { run_on_root(transport, 0, [] {}); });
}

TEST(RunAgreed, SeveralRanksFail_EveryRankThrowsTheLowestFailingRanksErrorWithItsType) {
  testing::run_ranks(4, [](Transport& transport) {
    const std::string message = testing::error_message<OutOfMemoryError>([&] {
      run_agreed(transport, [&] {
        if (transport.rank() == 2) PIPEPRUNE_FAIL(OutOfMemoryError, "rank 2: budget too small");
        if (transport.rank() == 3) PIPEPRUNE_FAIL(IoError, "rank 3: disk");
      });
    });
    EXPECT_THAT(message, HasSubstr("rank 2: budget too small"));
  });
}

TEST(RunAgreed, EveryErrorKind_SurvivesTheTrip) {
  const std::vector<std::function<void()>> throwers = {
      [] { throw Error("e"); },        [] { throw ConfigError("c"); }, [] { throw FormatError("f"); },
      [] { throw IoError("i"); },      [] { throw CommError("m"); },   [] { throw OutOfMemoryError("o"); }};
  for (size_t k = 0; k < throwers.size(); ++k) {
    ErrorKind expected = ErrorKind::kError;
    try {
      throwers[k]();
    } catch (const Error& e) {
      expected = error_kind(e);
    }
    EXPECT_EQ(static_cast<size_t>(expected), k);
    testing::run_ranks(2, [&](Transport& transport) {
      try {
        run_agreed(transport, [&] {
          if (transport.rank() == 0) throwers[k]();
        });
        ADD_FAILURE() << "no error";
      } catch (const Error& e) {
        EXPECT_EQ(error_kind(e), expected) << "rank " << transport.rank();
      }
    });
  }
}

}  // namespace
}  // namespace pipeprune
