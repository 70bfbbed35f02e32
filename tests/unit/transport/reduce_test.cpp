// Transport::reduce_sum_into: the contributions added onto the root in rank order, the same bits
// as a sequential fold, on the local backend and on NCCL (mock: ncclSend from each contributor,
// ncclRecv on the root, no ncclReduce, whose summation order would change with the world size).
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "dist/transport/nccl_transport.h"
#include "tests/unit/transport/mock_nccl_api.h"
#include "tests/unit/transport/transport_test_util.h"

namespace pipeprune {
namespace {

using ::testing::_;
using ::testing::HasSubstr;
using ::testing::NiceMock;
using ::testing::NotNull;
using testing::error_message;
using testing::run_ranks;

// Values whose float sum depends on the order: large, small and cancelling terms.
at::Tensor contribution(int rank) {
  at::Tensor t = at::empty({5}, at::kFloat);
  const float values[4][5] = {{1e8f, 1.0f, -3.5f, 0.1f, 7.0f},
                              {1.0f, 1e-8f, 3.5f, 0.2f, -7.0f},
                              {-1e8f, 1e8f, 1e-3f, 0.3f, 1e-7f},
                              {0.5f, -1e8f, 2.0f, 0.4f, 3.0f}};
  for (int i = 0; i < 5; ++i) t[i] = values[rank][i];
  return t;
}

at::Tensor sequential_fold(at::Tensor start, int contributors) {
  for (int r = 0; r < contributors; ++r) start.add_(contribution(r));
  return start;
}

TEST(ReduceSumInto, LocalWorld_RootGetsTheRankOrderFoldBitForBit) {
  for (int root : {0, 2}) {
    run_ranks(4, [&](Transport& t) {
      at::Tensor accumulator = t.rank() == root ? at::full({5}, 0.25f) : at::Tensor();
      t.reduce_sum_into(accumulator, contribution(t.rank()), ReduceOptions{root});
      if (t.rank() == root) {
        EXPECT_TRUE(accumulator.equal(sequential_fold(at::full({5}, 0.25f), 4))) << accumulator;
      } else {
        EXPECT_FALSE(accumulator.defined());
      }
    });
  }
}

TEST(ReduceSumInto, LastRoundWithFewerContributors_OthersSendNothing) {
  run_ranks(3, [](Transport& t) {
    at::Tensor accumulator = t.rank() == 1 ? at::zeros({5}) : at::Tensor();
    const at::Tensor mine = t.rank() < 2 ? contribution(t.rank()) : at::Tensor();
    t.reduce_sum_into(accumulator, mine, ReduceOptions{1, 2});
    if (t.rank() == 1) EXPECT_TRUE(accumulator.equal(sequential_fold(at::zeros({5}), 2)));
    // Nothing was left in a mailbox: the next collective still pairs up.
    EXPECT_EQ(t.all_gather_string(std::to_string(t.rank())).size(), 3u);
  });
}

TEST(ReduceSumInto, ShapeMismatchOrMissingContribution_CommErrorNamingTheRank) {
  run_ranks(2, [](Transport& t) {
    if (t.rank() == 0) {
      at::Tensor accumulator = at::zeros({4});
      EXPECT_THAT(error_message<CommError>([&] { t.reduce_sum_into(accumulator, at::zeros({4}), {}); }),
                  HasSubstr("tensor from rank 1 has shape [5]"));
    } else {
      at::Tensor none;
      t.reduce_sum_into(none, contribution(1), {});
    }
  });
  run_ranks(1, [](Transport& t) {
    at::Tensor accumulator = at::zeros({5});
    EXPECT_THAT(error_message<CommError>([&] { t.reduce_sum_into(accumulator, at::Tensor(), {}); }),
                HasSubstr("rank 0: reduce_sum_into with 1 contributors needs contribution from this rank"));
  });
}

TEST(ReduceSumInto, Nccl_PointToPointInRankOrderNoNcclReduce) {
  constexpr int kRanks = 3;
  testing::FakeNcclWire wire;
  std::vector<std::shared_ptr<NiceMock<testing::MockNcclApi>>> apis;
  for (int r = 0; r < kRanks; ++r) {
    apis.push_back(std::make_shared<NiceMock<testing::MockNcclApi>>());
    testing::behave_like_working_gpu(*apis[r], wire, r, kRanks, 1);
  }
  // Root 1 receives from 0 and 2 (5 floats each); 0 and 2 each send once; nobody broadcasts.
  EXPECT_CALL(*apis[1], recv(NotNull(), 20, 0, _, _)).Times(1);
  EXPECT_CALL(*apis[1], recv(NotNull(), 20, 2, _, _)).Times(1);
  EXPECT_CALL(*apis[1], send(_, _, _, _, _)).Times(0);
  for (int r : {0, 2}) {
    EXPECT_CALL(*apis[r], send(NotNull(), 20, 1, _, _)).Times(1);
    EXPECT_CALL(*apis[r], recv(_, _, _, _, _)).Times(0);
  }
  for (int r = 0; r < kRanks; ++r) EXPECT_CALL(*apis[r], broadcast(_, _, _, _, _, _)).Times(0);
  auto bootstrap = create_local_world(kRanks);
  run_ranks(bootstrap, [&](Transport& boot) {
    const int r = boot.rank();
    NcclSetup setup;
    setup.local_rank = r;
    setup.buffer_device = c10::Device(c10::kCPU);
    auto nccl = create_nccl_transport(std::move(bootstrap[r]), apis[r], setup);
    at::Tensor accumulator = r == 1 ? at::zeros({5}) : at::Tensor();
    nccl->reduce_sum_into(accumulator, contribution(r), ReduceOptions{1});
    if (r == 1) EXPECT_TRUE(accumulator.equal(sequential_fold(at::zeros({5}), kRanks)));
  });
}

}  // namespace
}  // namespace pipeprune
