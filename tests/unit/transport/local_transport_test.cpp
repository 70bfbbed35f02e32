// LocalTransport: one rank per thread, same contract as the MPI backend (see tests/mpi).
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/unit/transport/transport_test_util.h"

namespace pipeprune {
namespace {

using ::testing::HasSubstr;
using testing::error_message;
using testing::pattern;
using testing::run_ranks;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

TEST(LocalTransport, WorldOfOne_SendToSelf_CommError) {
  auto world = create_local_world(1);
  Transport& t = *world[0];
  EXPECT_EQ(t.rank(), 0);
  EXPECT_EQ(t.size(), 1);
  EXPECT_STREQ(t.backend_name(), "local");
  std::string message = error_message<CommError>([&] { t.send(at::ones({2}), 0); });
  EXPECT_THAT(message, HasSubstr("rank 0: send with itself"));
  EXPECT_THAT(error_message<CommError>([&] { t.recv(0); }), HasSubstr("recv with itself"));
  EXPECT_THAT(error_message<CommError>([&] { t.send(at::ones({2}), 1); }),
              HasSubstr("send with rank 1 but the world has 1 rank"));
}

TEST(LocalTransport, WorldOfOne_CollectivesReturnOwnValues) {
  auto world = create_local_world(1);
  Transport& t = *world[0];
  at::Tensor x = pattern(at::kFloat, {3, 2}, 1);
  EXPECT_TRUE(t.broadcast(x).equal(x));
  auto gathered = t.all_gather(x);
  ASSERT_EQ(gathered.size(), 1u);
  EXPECT_TRUE(gathered[0].equal(x));
  t.barrier();
  EXPECT_EQ(t.broadcast_string("plan"), "plan");
  EXPECT_EQ(t.all_gather_string("a"), std::vector<std::string>{"a"});
  EXPECT_EQ(t.all_gather_double(2.5), std::vector<double>{2.5});
  EXPECT_FALSE(t.all_agree(false));
  t.abort(3);  // returns for the local transport
}

TEST(LocalTransport, SendRecv_DtypesAndShapes_RoundTripExactly) {
  const std::vector<c10::ScalarType> dtypes = {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble,
                                               at::kLong,  at::kInt,      at::kByte, at::kBool};
  const std::vector<std::vector<int64_t>> shapes = {{}, {0}, {3, 0, 2}, {5}, {2, 3, 4}, {1, 2, 1, 2, 1, 2, 1, 2}};
  run_ranks(2, [&](Transport& t) {
    int seed = 0;
    for (auto dtype : dtypes) {
      for (const auto& shape : shapes) {
        ++seed;
        if (t.rank() == 0) {
          t.send(pattern(dtype, shape, seed), 1, {seed});
        } else {
          RecvOptions options;
          options.tag = seed;
          options.expect.dtype = dtype;
          options.expect.shape = shape;
          at::Tensor got = t.recv(0, options);
          EXPECT_EQ(got.scalar_type(), dtype);
          EXPECT_EQ(got.sizes().vec(), shape);
          EXPECT_TRUE(got.equal(pattern(dtype, shape, seed))) << c10::toString(dtype);
        }
      }
    }
  });
}

TEST(LocalTransport, Send_NonContiguousThenModified_ReceiverGetsValuesAtSend) {
  run_ranks(2, [](Transport& t) {
    if (t.rank() == 0) {
      at::Tensor base = pattern(at::kFloat, {4, 3}, 5);
      at::Tensor transposed = base.t();
      t.send(transposed, 1);
      base.fill_(-1);  // after send: must not reach the receiver
    } else {
      at::Tensor got = t.recv(0);
      EXPECT_TRUE(got.equal(pattern(at::kFloat, {4, 3}, 5).t().contiguous()));
      EXPECT_TRUE(got.is_contiguous());
    }
  });
}

TEST(LocalTransport, Recv_ByTag_MatchesOutOfOrder) {
  run_ranks(2, [](Transport& t) {
    if (t.rank() == 0) {
      t.send(at::full({1}, 1.0), 1, {1});
      t.send(at::full({1}, 2.0), 1, {2});
    } else {
      EXPECT_EQ(t.recv(0, {2}).item<float>(), 2.0f);
      EXPECT_EQ(t.recv(0, {1}).item<float>(), 1.0f);
    }
  });
}

TEST(LocalTransport, Recv_ShapeMismatch_CommErrorNamesBothRanksAndStaysInStep) {
  run_ranks(2, [](Transport& t) {
    if (t.rank() == 0) {
      t.send(at::zeros({2, 8}), 1);
      t.send(at::ones({3}), 1);
    } else {
      RecvOptions options;
      options.expect.shape = std::vector<int64_t>{2, 16};
      options.expect.dtype = at::kFloat;
      EXPECT_THAT(error_message<CommError>([&] { t.recv(0, options); }),
                  HasSubstr("rank 1: tensor from rank 0 has shape [2,8] float32, expected [2,16] float32"));
      EXPECT_TRUE(t.recv(0).equal(at::ones({3})));  // the next message is intact
    }
  });
}

TEST(LocalTransport, Recv_DtypeMismatch_CommError) {
  run_ranks(2, [](Transport& t) {
    if (t.rank() == 0) {
      t.send(at::zeros({2}, at::kBFloat16), 1);
    } else {
      RecvOptions options;
      options.expect.dtype = at::kFloat;
      EXPECT_THAT(error_message<CommError>([&] { t.recv(0, options); }),
                  HasSubstr("has shape [2] bfloat16, expected [2] float32"));
    }
  });
}

TEST(LocalTransport, Send_NineDims_SenderAndReceiverFailFast) {
  LocalWorldOptions options;
  options.recv_timeout_seconds = 30;
  auto start = Clock::now();
  run_ranks(2, [](Transport& t) {
    if (t.rank() == 0) {
      std::vector<int64_t> shape(9, 1);
      EXPECT_THAT(error_message<CommError>([&] { t.send(at::zeros(shape), 1); }),
                  HasSubstr("has 9 dims"));
    } else {
      EXPECT_THAT(error_message<CommError>([&] { t.recv(0); }),
                  HasSubstr("rank 1: rank 0 failed before sending its tensor"));
    }
  }, options);
  EXPECT_LT(seconds_since(start), 5.0);
}

TEST(LocalTransport, CollectiveWithUnsendableTensor_EveryRankFailsFast) {
  LocalWorldOptions options;
  options.recv_timeout_seconds = 30;
  auto start = Clock::now();
  run_ranks(3, [](Transport& t) {
    at::Tensor bad = at::zeros({1, 1, 1, 1, 1, 1, 1, 1, 1});
    at::Tensor mine = t.rank() == 1 ? bad : at::zeros({2});
    std::string gather_error = error_message<CommError>([&] { t.all_gather(mine); });
    EXPECT_THAT(gather_error, HasSubstr(t.rank() == 1 ? "has 9 dims" : "rank 1 failed before sending"));
    std::string bcast_error = error_message<CommError>([&] { t.broadcast(bad, {2}); });
    EXPECT_THAT(bcast_error, HasSubstr(t.rank() == 2 ? "has 9 dims" : "rank 2 failed before sending"));
  }, options);
  EXPECT_LT(seconds_since(start), 5.0);
}

TEST(LocalTransport, Recv_NothingSent_TimesOutWithCommError) {
  LocalWorldOptions options;
  options.recv_timeout_seconds = 0.2;
  auto start = Clock::now();
  run_ranks(2, [](Transport& t) {
    if (t.rank() == 1) {
      EXPECT_THAT(error_message<CommError>([&] { t.recv(0, {4}); }),
                  HasSubstr("rank 1: waited 0.2 s for a message with tag 4 from rank 0"));
    }
  }, options);
  double elapsed = seconds_since(start);
  EXPECT_GE(elapsed, 0.19);
  EXPECT_LT(elapsed, 5.0);
}

TEST(LocalTransport, Abort_WakesRanksWaitingInRecvAndCollectives) {
  auto start = Clock::now();
  run_ranks(3, [](Transport& t) {
    if (t.rank() == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      t.abort(7);
    } else if (t.rank() == 1) {
      EXPECT_THAT(error_message<CommError>([&] { t.recv(0); }), HasSubstr("aborted (exit code 7)"));
    } else {
      EXPECT_THAT(error_message<CommError>([&] { t.barrier(); }), HasSubstr("aborted"));
    }
  });
  EXPECT_LT(seconds_since(start), 5.0);
}

TEST(LocalTransport, Broadcast_EveryRoot_EveryRankGetsRootsTensor) {
  run_ranks(3, [](Transport& t) {
    for (int root = 0; root < 3; ++root) {
      at::Tensor mine = t.rank() == root ? pattern(at::kHalf, {2, root + 1}, root) : at::Tensor();
      at::Tensor got = t.broadcast(mine, {root});
      EXPECT_TRUE(got.equal(pattern(at::kHalf, {2, root + 1}, root))) << "root " << root;
    }
  });
}

TEST(LocalTransport, AllGather_DifferentShapes_RankOrder) {
  run_ranks(4, [](Transport& t) {
    auto gathered = t.all_gather(pattern(at::kFloat, {t.rank(), 3}, t.rank()));
    ASSERT_EQ(gathered.size(), 4u);
    for (int r = 0; r < 4; ++r) EXPECT_TRUE(gathered[r].equal(pattern(at::kFloat, {r, 3}, r))) << r;
  });
}

TEST(LocalTransport, AllGather_DifferentDtypes_CommErrorOnEveryRank) {
  run_ranks(2, [](Transport& t) {
    at::Tensor mine = at::zeros({2}, t.rank() == 0 ? at::kFloat : at::kHalf);
    EXPECT_THAT(error_message<CommError>([&] { t.all_gather(mine); }),
                HasSubstr("all_gather got float32 from rank 0 but float16 from rank 1"));
  });
}

TEST(LocalTransport, Strings_BinaryAndEmpty_RoundTrip) {
  const std::string binary("a\0b\xff", 4);
  run_ranks(3, [&](Transport& t) {
    EXPECT_EQ(t.broadcast_string(t.rank() == 2 ? binary : "ignored", 2), binary);
    auto all = t.all_gather_string(std::string(static_cast<size_t>(t.rank()), 'x'));
    EXPECT_EQ(all, (std::vector<std::string>{"", "x", "xx"}));
  });
}

TEST(LocalTransport, Barrier_WaitsForSlowestRank) {
  std::atomic<bool> slow_rank_done{false};
  run_ranks(3, [&](Transport& t) {
    if (t.rank() == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
      slow_rank_done = true;
    }
    t.barrier();
    EXPECT_TRUE(slow_rank_done.load()) << "rank " << t.rank() << " left the barrier early";
  });
}

TEST(LocalTransport, AllGatherDoubleAndAllAgree_OneRankDisagrees_FalseEverywhere) {
  run_ranks(3, [](Transport& t) {
    EXPECT_EQ(t.all_gather_double(t.rank() * 1.5), (std::vector<double>{0.0, 1.5, 3.0}));
    EXPECT_TRUE(t.all_agree(true));
    EXPECT_FALSE(t.all_agree(t.rank() != 1));
  });
}

TEST(LocalTransport, BadArguments_Rejected) {
  auto world = create_local_world(2);
  EXPECT_THAT(error_message<ConfigError>([&] { world[0]->send(at::ones({1}), 1, {-3}); }),
              HasSubstr("tag -3 is negative"));
  EXPECT_THAT(error_message<ConfigError>([&] { world[0]->broadcast(at::ones({1}), {2}); }),
              HasSubstr("broadcast root 2 is outside the world of 2 ranks"));
  EXPECT_THROW(create_local_world(0), ConfigError);
  LocalWorldOptions options;
  options.recv_timeout_seconds = 0;
  EXPECT_THROW(create_local_world(2, options), ConfigError);
}

}  // namespace
}  // namespace pipeprune
