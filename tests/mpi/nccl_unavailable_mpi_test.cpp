// The real NCCL/CUDA runtime on a machine without a usable GPU: asking for NCCL is one clear
// CommError on every rank, and auto falls back to MPI. Skipped where a GPU is usable.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "dist/transport/nccl_api.h"
#include "dist/transport/nccl_transport.h"
#include "tests/mpi/mpi_test_support.h"
#include "tests/unit/transport/transport_test_util.h"

namespace pipeprune {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using mpi_test::world;

bool gpu_usable_everywhere() {
  auto api = make_cuda_nccl_api();
  return api != nullptr && probe_nccl(world(), *api, NcclSetup{}).empty();
}

TEST(NcclUnavailable, TransportNccl_NoGpu_ClearCommErrorOnEveryRank) {
  if (gpu_usable_everywhere()) GTEST_SKIP() << "a GPU is usable here";
  TransportOptions options;
  options.kind = TransportKind::kNccl;
  options.device = c10::Device(c10::kCUDA);
  std::string message = testing::error_message<CommError>([&] { create_transport(options); });
  EXPECT_THAT(message, AnyOf(HasSubstr("--transport nccl: no usable GPU ("),
                             HasSubstr("--transport nccl: this build has no NCCL")));
  EXPECT_THAT(message, HasSubstr("; use --transport mpi"));
#if defined(PIPEPRUNE_HAVE_NCCL)
  EXPECT_THAT(message, HasSubstr("cudaGetDeviceCount: "));
#endif
}

TEST(NcclUnavailable, TransportAuto_CudaDeviceWithoutGpu_FallsBackToMpi) {
  if (gpu_usable_everywhere()) GTEST_SKIP() << "a GPU is usable here";
  TransportOptions options;
  options.device = c10::Device(c10::kCUDA);
  auto transport = create_transport(options);
  EXPECT_STREQ(transport->backend_name(), "mpi");
  EXPECT_EQ(transport->size(), world().size());
}

}  // namespace
}  // namespace pipeprune
