// The factory without MPI: flag parsing and the single-process path.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/transport/transport_test_util.h"

namespace pipeprune {
namespace {

using ::testing::HasSubstr;

TEST(TransportFactory, ParseKind_KnownNames_AndConfigErrorNamingFlag) {
  EXPECT_EQ(parse_transport_kind("auto"), TransportKind::kAuto);
  EXPECT_EQ(parse_transport_kind("local"), TransportKind::kLocal);
  EXPECT_EQ(parse_transport_kind("mpi"), TransportKind::kMpi);
  EXPECT_EQ(parse_transport_kind("nccl"), TransportKind::kNccl);
  EXPECT_THAT(testing::error_message<ConfigError>([] { parse_transport_kind("gloo"); }),
              HasSubstr("--transport gloo: unknown transport; use auto, local, mpi or nccl"));
}

TEST(TransportFactory, AutoOrLocal_NotUnderMpirun_SingleLocalRank) {
  if (launched_under_mpi()) GTEST_SKIP() << "this test process runs under an MPI launcher";
  for (TransportKind kind : {TransportKind::kAuto, TransportKind::kLocal}) {
    TransportOptions options;
    options.kind = kind;
    auto transport = create_transport(options);
    EXPECT_STREQ(transport->backend_name(), "local");
    EXPECT_EQ(transport->rank(), 0);
    EXPECT_EQ(transport->size(), 1);
    EXPECT_TRUE(transport->all_agree(true));
  }
}

}  // namespace
}  // namespace pipeprune
