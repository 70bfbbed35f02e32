// MpiTransport across real processes (run at 2, 3 and 4 ranks by tests/mpi/CMakeLists.txt).
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "dist/transport/mpi_transport.h"
#include "tests/mpi/mpi_test_support.h"
#include "tests/unit/transport/transport_test_util.h"

namespace pipeprune {
namespace {

using ::testing::HasSubstr;
using mpi_test::world;
using testing::error_message;
using testing::pattern;

TEST(MpiTransport, Identity_MatchesLauncher) {
  Transport& t = world();
  EXPECT_STREQ(t.backend_name(), "mpi");
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
  if (size != nullptr && rank != nullptr) {
    EXPECT_EQ(t.size(), std::atoi(size));
    EXPECT_EQ(t.rank(), std::atoi(rank));
    EXPECT_TRUE(launched_under_mpi());
  }
  auto ranks = t.all_gather_double(t.rank());
  for (int r = 0; r < t.size(); ++r) EXPECT_EQ(ranks[r], r);
}

// reduce_sum_into over MPI: onto the last rank, in rank order, the bits of a sequential fold of
// every rank's tensor (values where the float sum depends on the order); and with fewer
// contributors, the rest sending nothing.
TEST(MpiTransport, ReduceSumInto_RankOrderFoldOnTheRoot) {
  Transport& t = world();
  auto values = [](int rank) { return at::arange(6, at::kFloat).mul(1e7 * (rank % 2 ? -1 : 1)).add(0.1 * (rank + 1)); };
  const int root = t.size() - 1;
  for (int contributors : {t.size(), t.size() - 1}) {
    at::Tensor accumulator = t.rank() == root ? at::full({6}, 0.5f) : at::Tensor();
    t.reduce_sum_into(accumulator, t.rank() < contributors ? values(t.rank()) : at::Tensor(),
                      ReduceOptions{root, contributors});
    if (t.rank() == root) {
      at::Tensor expected = at::full({6}, 0.5f);
      for (int r = 0; r < contributors; ++r) expected.add_(values(r));
      EXPECT_TRUE(accumulator.equal(expected)) << contributors << " contributors: " << accumulator;
    }
  }
  EXPECT_TRUE(t.all_agree(true));
}

// Rank 0 sends to every other rank, which checks the tensor and echoes it back.
void echo_round_trip(Transport& t, const at::Tensor& tensor, int tag) {
  if (t.rank() == 0) {
    for (int r = 1; r < t.size(); ++r) {
      t.send(tensor, r, {tag});
      RecvOptions options;
      options.tag = tag;
      options.expect.dtype = tensor.scalar_type();
      options.expect.shape = tensor.sizes().vec();
      at::Tensor back = t.recv(r, options);
      EXPECT_TRUE(back.equal(tensor)) << "echo from rank " << r;
    }
  } else {
    at::Tensor got = t.recv(0, {tag});
    EXPECT_EQ(got.scalar_type(), tensor.scalar_type());
    EXPECT_EQ(got.sizes(), tensor.sizes());
    EXPECT_TRUE(got.equal(tensor)) << "rank " << t.rank();
    t.send(got, 0, {tag});
  }
}

TEST(MpiTransport, SendRecv_DtypesAndShapes_RoundTripExactly) {
  PIPEPRUNE_REQUIRE_RANKS(2);
  const std::vector<c10::ScalarType> dtypes = {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble,
                                               at::kLong,  at::kInt,      at::kByte, at::kBool};
  const std::vector<std::vector<int64_t>> shapes = {{}, {0}, {3, 0, 2}, {7}, {2, 3, 4}, {1, 2, 1, 2, 1, 2, 1, 2}};
  int tag = 0;
  for (auto dtype : dtypes) {
    for (const auto& shape : shapes) echo_round_trip(world(), pattern(dtype, shape, ++tag), tag);
  }
  echo_round_trip(world(), pattern(at::kFloat, {5, 4}, 1).t(), 99);  // non-contiguous
}

TEST(MpiTransport, SendRecv_LargeTensors_RoundTripExactly) {
  PIPEPRUNE_REQUIRE_RANKS(2);
  // Every element distinct (exact in float32 below 2^24), so a misplaced chunk cannot go unseen.
  echo_round_trip(world(), at::arange(3 * 1024 * 1024, at::kFloat).reshape({3, 1024, 1024}), 1);  // 12 MiB
  echo_round_trip(world(), pattern(at::kBFloat16, {1000003}, 2), 2);
}

TEST(MpiTransport, SendRecv_SmallChunks_SplitAndReassembled) {
  PIPEPRUNE_REQUIRE_RANKS(2);
  MpiTransportOptions options;
  options.chunk_bytes = 1 << 20;  // 12 MiB + 4 bytes: 13 chunks, the last one 4 bytes
  auto chunked = create_mpi_transport(options);  // collective
  at::Tensor big = at::arange(3 * 1024 * 1024 + 1, at::kFloat);
  echo_round_trip(*chunked, big, 3);
  at::Tensor root = chunked->rank() == 0 ? big : at::Tensor();
  EXPECT_TRUE(chunked->broadcast(root).equal(big));
}

TEST(MpiTransport, Recv_ByTag_MatchesOutOfOrder) {
  PIPEPRUNE_REQUIRE_RANKS(2);
  Transport& t = world();
  if (t.rank() == 0) {
    t.send(at::full({1}, 1.0), 1, {1});
    t.send(at::full({1}, 2.0), 1, {2});
  } else if (t.rank() == 1) {
    EXPECT_EQ(t.recv(0, {2}).item<float>(), 2.0f);
    EXPECT_EQ(t.recv(0, {1}).item<float>(), 1.0f);
  }
}

TEST(MpiTransport, Recv_ShapeMismatch_CommErrorNamesBothRanksAndStaysInStep) {
  PIPEPRUNE_REQUIRE_RANKS(2);
  Transport& t = world();
  std::string message;
  if (t.rank() == 0) {
    t.send(at::zeros({2, 8}), 1);
    t.send(at::ones({3}), 1);
  } else if (t.rank() == 1) {
    RecvOptions options;
    options.expect.shape = std::vector<int64_t>{2, 16};
    options.expect.dtype = at::kFloat;
    message = error_message<CommError>([&] { t.recv(0, options); });
    EXPECT_TRUE(t.recv(0).equal(at::ones({3})));
  }
  PIPEPRUNE_ASSERT_ALL_RANKS(t.rank() != 1 ||
                             message.find("rank 1: tensor from rank 0 has shape [2,8] float32, expected [2,16] "
                                          "float32") != std::string::npos);
}

TEST(MpiTransport, Recv_DtypeMismatch_CommError) {
  PIPEPRUNE_REQUIRE_RANKS(2);
  Transport& t = world();
  int last = t.size() - 1;
  if (t.rank() == 0) {
    t.send(at::zeros({4}, at::kHalf), last, {7});
  } else if (t.rank() == last) {
    RecvOptions options;
    options.tag = 7;
    options.expect.dtype = at::kBFloat16;
    EXPECT_THAT(error_message<CommError>([&] { t.recv(0, options); }),
                HasSubstr("rank " + std::to_string(last) + ": tensor from rank 0 has shape [4] float16, expected [4] bfloat16"));
  }
}

TEST(MpiTransport, Send_UnsendableTensor_BothSidesFailFast) {
  PIPEPRUNE_REQUIRE_RANKS(2);
  Transport& t = world();
  if (t.rank() == 0) {
    EXPECT_THAT(error_message<CommError>([&] { t.send(at::zeros(std::vector<int64_t>(9, 1)), 1); }),
                HasSubstr("has 9 dims"));
  } else if (t.rank() == 1) {
    EXPECT_THAT(error_message<CommError>([&] { t.recv(0); }), HasSubstr("rank 1: rank 0 failed before sending"));
  }
}

TEST(MpiTransport, SendToSelfOrOutsideWorld_CommErrorWithoutCommunicating) {
  Transport& t = world();
  EXPECT_THAT(error_message<CommError>([&] { t.send(at::ones({1}), t.rank()); }), HasSubstr("send with itself"));
  EXPECT_THAT(error_message<CommError>([&] { t.recv(t.size()); }), HasSubstr("but the world has"));
}

TEST(MpiTransport, Broadcast_EveryRoot_EveryRankGetsRootsTensor) {
  Transport& t = world();
  for (int root = 0; root < t.size(); ++root) {
    at::Tensor expected = pattern(at::kFloat, {root + 1, 3}, root);
    at::Tensor got = t.broadcast(t.rank() == root ? expected : at::Tensor(), {root});
    EXPECT_TRUE(got.equal(expected)) << "root " << root;
  }
  at::Tensor scalar = at::scalar_tensor(3.5, at::kDouble);
  EXPECT_TRUE(t.broadcast(t.rank() == 0 ? scalar : at::Tensor()).equal(scalar));
  EXPECT_EQ(t.broadcast(t.rank() == 0 ? at::zeros({0, 2}) : at::Tensor()).sizes().vec(), (std::vector<int64_t>{0, 2}));
}

TEST(MpiTransport, AllGather_DifferentShapes_RankOrder) {
  Transport& t = world();
  auto gathered = t.all_gather(pattern(at::kBFloat16, {t.rank(), 3}, t.rank()));
  ASSERT_EQ(static_cast<int>(gathered.size()), t.size());
  for (int r = 0; r < t.size(); ++r) EXPECT_TRUE(gathered[r].equal(pattern(at::kBFloat16, {r, 3}, r))) << r;
}

TEST(MpiTransport, AllGather_DifferentDtypes_CommErrorOnEveryRank) {
  PIPEPRUNE_REQUIRE_RANKS(2);
  Transport& t = world();
  at::Tensor mine = at::zeros({2}, t.rank() == 1 ? at::kHalf : at::kFloat);
  EXPECT_THAT(error_message<CommError>([&] { t.all_gather(mine); }),
              HasSubstr("all_gather got float32 from rank 0 but float16 from rank 1"));
}

TEST(MpiTransport, Strings_BinaryEmptyAndLarge_RoundTrip) {
  Transport& t = world();
  const std::string binary("a\0b\xff", 4);
  int last = t.size() - 1;
  EXPECT_EQ(t.broadcast_string(t.rank() == last ? binary : "ignored", last), binary);
  auto all = t.all_gather_string(std::string(static_cast<size_t>(t.rank()), 'x'));
  ASSERT_EQ(static_cast<int>(all.size()), t.size());
  for (int r = 0; r < t.size(); ++r) EXPECT_EQ(all[r], std::string(static_cast<size_t>(r), 'x'));
  std::string large(3 << 20, 'q');
  large[12345] = '\0';
  EXPECT_EQ(t.broadcast_string(t.rank() == 0 ? large : "", 0), large);
}

TEST(MpiTransport, Barrier_NoRankLeavesBeforeTheSlowestArrives) {
  Transport& t = world();
  using Clock = std::chrono::steady_clock;
  t.barrier();
  auto start = Clock::now();
  if (t.rank() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  t.barrier();
  double waited = std::chrono::duration<double>(Clock::now() - start).count();
  PIPEPRUNE_ASSERT_ALL_RANKS(waited >= 0.25);
}

TEST(MpiTransport, AllAgree_OneRankFalse_FalseEverywhere) {
  Transport& t = world();
  EXPECT_TRUE(t.all_agree(true));
  EXPECT_FALSE(t.all_agree(t.rank() != t.size() - 1));
}

TEST(MpiTransport, Factory_UnderMpirun_AutoIsMpiAndLocalRefused) {
  PIPEPRUNE_REQUIRE_RANKS(2);
  TransportOptions options;
  auto automatic = create_transport(options);  // collective: every rank duplicates the communicator
  EXPECT_STREQ(automatic->backend_name(), "mpi");
  EXPECT_EQ(automatic->size(), world().size());
  options.kind = TransportKind::kLocal;
  EXPECT_THAT(error_message<ConfigError>([&] { create_transport(options); }),
              HasSubstr("--transport local: the launcher started"));
}

}  // namespace
}  // namespace pipeprune
