// NcclTransport against a gMock NcclApi: bootstrap, error paths and call sequences on a CPU
// machine. Ranks are threads; the bootstrap is a local world; buffers live in host memory.
#include "dist/transport/nccl_transport.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/transport/mock_nccl_api.h"
#include "tests/unit/transport/transport_test_util.h"

namespace pipeprune {
namespace {

using ::testing::_;
using ::testing::DoAll;
using ::testing::HasSubstr;
using ::testing::InSequence;
using ::testing::NiceMock;
using ::testing::NotNull;
using ::testing::Return;
using ::testing::SetArgPointee;
using testing::error_message;
using testing::fake_comm;
using testing::fake_compute_stream;
using testing::fake_event;
using testing::fake_stream;
using testing::FakeNcclWire;
using testing::MockNcclApi;
using testing::pattern;

MATCHER(IsRankZeroUniqueId, "the unique id rank 0's NCCL made") {
  for (size_t i = 0; i < kNcclUniqueIdBytes; ++i) {
    if (arg.internal[i] != static_cast<char>(i * 3 + 1)) return false;
  }
  return true;
}

// n ranks with healthy mocks; tests add expectations, then run() creates the transports on
// threads and hands each to the test body.
class NcclWorld {
 public:
  explicit NcclWorld(int size, int n_devices = 1) : size_(size) {
    for (int r = 0; r < size; ++r) {
      apis_.push_back(std::make_shared<NiceMock<MockNcclApi>>());
      testing::behave_like_working_gpu(*apis_[r], wire_, r, size, n_devices);
    }
  }

  MockNcclApi& api(int rank) { return *apis_[rank]; }

  void run(const std::function<void(Transport&)>& body, NcclSetup setup = {}) {
    auto bootstrap = create_local_world(size_);
    testing::run_ranks(bootstrap, [&](Transport& boot) {
      int r = boot.rank();
      NcclSetup mine = setup;
      mine.local_rank = r;
      mine.buffer_device = c10::Device(c10::kCPU);
      auto nccl = create_nccl_transport(std::move(bootstrap[r]), apis_[r], mine);
      body(*nccl);
    });
  }

  // Creation only, returning each rank's CommError message.
  std::vector<std::string> create_errors(NcclSetup setup = {}) {
    std::vector<std::string> messages(size_);
    auto bootstrap = create_local_world(size_);
    testing::run_ranks(bootstrap, [&](Transport& boot) {
      int r = boot.rank();
      NcclSetup mine = setup;
      mine.local_rank = r;
      mine.buffer_device = c10::Device(c10::kCPU);
      messages[r] = error_message<CommError>([&] { create_nccl_transport(std::move(bootstrap[r]), apis_[r], mine); });
    });
    return messages;
  }

 private:
  int size_;
  FakeNcclWire wire_;
  std::vector<std::shared_ptr<NiceMock<MockNcclApi>>> apis_;
};

TEST(NcclTransport, Create_Rank0UniqueIdBroadcast_CommInitRankGetsItOnEveryRank) {
  NcclWorld world(3, /*n_devices=*/2);
  EXPECT_CALL(world.api(0), get_unique_id(NotNull())).Times(1);
  for (int r = 0; r < 3; ++r) {
    if (r > 0) EXPECT_CALL(world.api(r), get_unique_id(_)).Times(0);
    EXPECT_CALL(world.api(r), cuda_set_device(r % 2)).Times(1);  // local rank modulo device count
    EXPECT_CALL(world.api(r), comm_init_rank(NotNull(), 3, IsRankZeroUniqueId(), r))
        .WillOnce(DoAll(SetArgPointee<0>(fake_comm(r)), Return(kNcclSuccess)));
    EXPECT_CALL(world.api(r), comm_destroy(fake_comm(r))).Times(1);
    EXPECT_CALL(world.api(r), comm_abort(_)).Times(0);
    EXPECT_CALL(world.api(r), cuda_stream_destroy(fake_stream(r))).Times(1);
  }
  world.run([](Transport& t) {
    EXPECT_STREQ(t.backend_name(), "nccl");
    EXPECT_EQ(t.size(), 3);
  });
}

TEST(NcclTransport, Create_ExplicitDevice_SetsThatDevice) {
  NcclWorld world(2, /*n_devices=*/4);
  for (int r = 0; r < 2; ++r) EXPECT_CALL(world.api(r), cuda_set_device(3)).Times(1);
  NcclSetup setup;
  setup.cuda_device = 3;
  world.run([](Transport&) {}, setup);
}

TEST(NcclTransport, Create_CommInitRankFails_EveryRankThrowsWithNcclString) {
  NcclWorld world(2);
  EXPECT_CALL(world.api(1), comm_init_rank(_, _, _, _)).WillOnce(Return(kNcclUnhandledCudaError));
  EXPECT_CALL(world.api(0), comm_abort(fake_comm(0))).Times(1);  // the rank that did init cleans up
  for (int r = 0; r < 2; ++r) EXPECT_CALL(world.api(r), cuda_stream_destroy(fake_stream(r))).Times(1);
  for (const std::string& message : world.create_errors()) {
    EXPECT_THAT(message, HasSubstr("--transport nccl: cannot start NCCL (rank 1: ncclCommInitRank: unhandled cuda "
                                   "error (run with NCCL_DEBUG=INFO for details)); use --transport mpi"));
  }
}

TEST(NcclTransport, Create_InsufficientDriver_NoUsableGpuErrorAndNoNcclCalls) {
  NcclWorld world(2);
  for (int r = 0; r < 2; ++r) {
    EXPECT_CALL(world.api(r), cuda_get_device_count(_)).WillOnce(Return(kCudaErrorInsufficientDriver));
    EXPECT_CALL(world.api(r), cuda_set_device(_)).Times(0);
    EXPECT_CALL(world.api(r), get_unique_id(_)).Times(0);
    EXPECT_CALL(world.api(r), comm_init_rank(_, _, _, _)).Times(0);
  }
  for (const std::string& message : world.create_errors()) {
    EXPECT_THAT(message, HasSubstr("--transport nccl: no usable GPU (ranks 0,1: cudaGetDeviceCount: CUDA driver "
                                   "version is insufficient for CUDA runtime version); use --transport mpi"));
  }
}

TEST(NcclTransport, Create_OneRankWithoutDevice_EveryRankThrowsNamingIt) {
  NcclWorld world(3);
  EXPECT_CALL(world.api(2), cuda_get_device_count(_)).WillOnce(DoAll(SetArgPointee<0>(0), Return(kCudaSuccess)));
  for (int r = 0; r < 3; ++r) EXPECT_CALL(world.api(r), comm_init_rank(_, _, _, _)).Times(0);
  for (const std::string& message : world.create_errors()) {
    EXPECT_THAT(message, HasSubstr("no usable GPU (rank 2: no CUDA device); use --transport mpi"));
  }
}

TEST(NcclTransport, Create_DeviceIndexBeyondCount_NamesBoth) {
  NcclWorld world(2, /*n_devices=*/2);
  NcclSetup setup;
  setup.cuda_device = 2;
  for (const std::string& message : world.create_errors(setup)) {
    EXPECT_THAT(message, HasSubstr("(ranks 0,1: cuda:2 requested but only 2 devices)"));
  }
}

TEST(NcclTransport, Probe_HealthyAndBroken_EmptyOrReasonWithoutSideEffects) {
  NiceMock<MockNcclApi> api;
  FakeNcclWire wire;
  testing::behave_like_working_gpu(api, wire, 0, 1);
  EXPECT_CALL(api, cuda_set_device(_)).Times(0);
  EXPECT_CALL(api, comm_init_rank(_, _, _, _)).Times(0);
  auto world = create_local_world(1);
  EXPECT_EQ(probe_nccl(*world[0], api, NcclSetup{}), "");
  EXPECT_CALL(api, cuda_get_device_count(_)).WillOnce(Return(kCudaErrorNoDevice));
  EXPECT_EQ(probe_nccl(*world[0], api, NcclSetup{}), "rank 0: cudaGetDeviceCount: no CUDA-capable device is detected");
}

TEST(NcclTransport, SendRecv_HeaderOverBootstrapThenOneNcclCallEachAfterLibTorchsStreamAndSync) {
  NcclWorld world(2);
  for (int r = 0; r < 2; ++r) {
    InSequence order;
    // The NCCL stream first waits for LibTorch's current stream (the tensor's copy, the
    // receive buffer's allocation), through the rank's one event.
    EXPECT_CALL(world.api(r), compute_stream(0));
    EXPECT_CALL(world.api(r), cuda_event_record(fake_event(r), fake_compute_stream(r)));
    EXPECT_CALL(world.api(r), cuda_stream_wait_event(fake_stream(r), fake_event(r)));
    if (r == 0) {
      EXPECT_CALL(world.api(0), send(NotNull(), 24, 1, fake_comm(0), fake_stream(0)));
    } else {
      EXPECT_CALL(world.api(1), recv(NotNull(), 24, 0, fake_comm(1), fake_stream(1)));
    }
    EXPECT_CALL(world.api(r), cuda_stream_synchronize(fake_stream(r)));
    EXPECT_CALL(world.api(r), cuda_event_destroy(fake_event(r)));  // with the transport
    EXPECT_CALL(world.api(r), cuda_stream_destroy(fake_stream(r)));
  }
  world.run([](Transport& t) {
    if (t.rank() == 0) {
      t.send(pattern(at::kFloat, {2, 3}, 4), 1, {5});
      t.send(at::zeros({0, 3}), 1, {6});  // empty: header only, no NCCL call
    } else {
      RecvOptions options;
      options.tag = 5;
      options.expect.shape = std::vector<int64_t>{2, 3};
      EXPECT_TRUE(t.recv(0, options).equal(pattern(at::kFloat, {2, 3}, 4)));
      EXPECT_EQ(t.recv(0, {6}).sizes().vec(), (std::vector<int64_t>{0, 3}));
    }
  });
}

TEST(NcclTransport, Recv_ShapeMismatch_PayloadTakenThenCommError) {
  NcclWorld world(2);
  EXPECT_CALL(world.api(1), recv(_, 64, 0, _, _)).Times(1);
  world.run([](Transport& t) {
    if (t.rank() == 0) {
      t.send(at::zeros({2, 8}), 1);
    } else {
      RecvOptions options;
      options.expect.shape = std::vector<int64_t>{2, 16};
      EXPECT_THAT(error_message<CommError>([&] { t.recv(0, options); }),
                  HasSubstr("rank 1: tensor from rank 0 has shape [2,8] float32, expected [2,16] float32"));
    }
  });
}

TEST(NcclTransport, Send_NcclFails_CommErrorWithNcclStringAndCommAborted) {
  NcclWorld world(2);
  EXPECT_CALL(world.api(0), send(_, _, _, _, _)).WillOnce(Return(kNcclRemoteError));
  EXPECT_CALL(world.api(0), comm_abort(fake_comm(0))).Times(1);
  EXPECT_CALL(world.api(0), comm_destroy(_)).Times(0);
  world.run([](Transport& t) {
    if (t.rank() == 0) {
      EXPECT_THAT(error_message<CommError>([&] { t.send(at::ones({4}), 1); }),
                  HasSubstr("rank 0: ncclSend to rank 1 failed: remote process exited or there was a network error"));
    }
  });
}

TEST(NcclTransport, OrderingAfterLibTorchFails_CommErrorNamingTheCallAndNoNcclCall) {
  NcclWorld world(2);
  EXPECT_CALL(world.api(0), cuda_stream_wait_event(_, _)).WillOnce(Return(700));
  EXPECT_CALL(world.api(0), send(_, _, _, _, _)).Times(0);
  EXPECT_CALL(world.api(0), comm_abort(fake_comm(0))).Times(1);
  world.run([](Transport& t) {
    if (t.rank() == 0) {
      EXPECT_THAT(error_message<CommError>([&] { t.send(at::ones({4}), 1); }),
                  HasSubstr("rank 0: ncclSend to rank 1: cudaStreamWaitEvent (ordering NCCL after LibTorch's stream) "
                            "failed: an illegal memory access was encountered"));
    }
  });
}

TEST(NcclTransport, Collectives_EachWaitsForLibTorchsStreamBeforeItsNcclCalls) {
  NcclWorld world(3);
  for (int r = 0; r < 3; ++r) {
    InSequence order;
    EXPECT_CALL(world.api(r), cuda_stream_wait_event(fake_stream(r), fake_event(r)));
    EXPECT_CALL(world.api(r), broadcast(_, _, _, 0, _, fake_stream(r)));
    EXPECT_CALL(world.api(r), cuda_stream_wait_event(fake_stream(r), fake_event(r)));
    EXPECT_CALL(world.api(r), all_gather(_, _, _, _, fake_stream(r)));
    EXPECT_CALL(world.api(r), cuda_stream_wait_event(fake_stream(r), fake_event(r)));  // once for the group
    EXPECT_CALL(world.api(r), group_start());
  }
  world.run([](Transport& t) {
    t.broadcast(t.rank() == 0 ? at::ones({2}) : at::Tensor(), {0});
    t.all_gather(at::full({2}, t.rank()));
    t.all_gather(at::ones({t.rank() + 1}));
  });
}

TEST(NcclTransport, Create_EventCreateFails_EveryRankThrowsAndTheStreamIsDestroyed) {
  NcclWorld world(2);
  EXPECT_CALL(world.api(1), cuda_event_create(_)).WillOnce(Return(2));
  EXPECT_CALL(world.api(1), cuda_stream_destroy(fake_stream(1))).Times(1);
  EXPECT_CALL(world.api(0), cuda_event_destroy(fake_event(0))).Times(1);
  EXPECT_CALL(world.api(0), comm_init_rank(_, _, _, _)).Times(0);
  for (const std::string& message : world.create_errors()) {
    EXPECT_THAT(message, HasSubstr("cannot set up the GPU (rank 1: cudaEventCreate: "));
  }
}

TEST(NcclTransport, SynchronizeFails_ReportsCudaAndAsyncNcclError) {
  NcclWorld world(2);
  EXPECT_CALL(world.api(0), cuda_stream_synchronize(_)).WillOnce(Return(700));
  EXPECT_CALL(world.api(0), comm_get_async_error(fake_comm(0), NotNull()))
      .WillOnce(DoAll(SetArgPointee<1>(kNcclRemoteError), Return(kNcclSuccess)));
  world.run([](Transport& t) {
    if (t.rank() == 0) {
      EXPECT_THAT(error_message<CommError>([&] { t.send(at::ones({4}), 1); }),
                  HasSubstr("ncclSend to rank 1 failed: an illegal memory access was encountered (NCCL: remote "
                            "process exited or there was a network error)"));
    } else {
      t.recv(0);  // the fake wire delivered the bytes before the sync failed
    }
  });
}

TEST(NcclTransport, Broadcast_FromRank1_NcclBroadcastWithRootOnEveryRank) {
  NcclWorld world(3);
  for (int r = 0; r < 3; ++r) {
    EXPECT_CALL(world.api(r), broadcast(NotNull(), NotNull(), 3 * 2, 1, fake_comm(r), fake_stream(r))).Times(1);
  }
  world.run([](Transport& t) {
    at::Tensor mine = t.rank() == 1 ? pattern(at::kBFloat16, {3}, 9) : at::Tensor();
    EXPECT_TRUE(t.broadcast(mine, {1}).equal(pattern(at::kBFloat16, {3}, 9)));
  });
}

TEST(NcclTransport, AllGather_EqualShapes_OneNcclAllGather) {
  NcclWorld world(3);
  for (int r = 0; r < 3; ++r) {
    EXPECT_CALL(world.api(r), all_gather(NotNull(), NotNull(), 2 * 2 * 4, fake_comm(r), fake_stream(r))).Times(1);
    EXPECT_CALL(world.api(r), group_start()).Times(0);
  }
  world.run([](Transport& t) {
    auto gathered = t.all_gather(pattern(at::kFloat, {2, 2}, t.rank()));
    ASSERT_EQ(gathered.size(), 3u);
    for (int r = 0; r < 3; ++r) EXPECT_TRUE(gathered[r].equal(pattern(at::kFloat, {2, 2}, r))) << r;
  });
}

TEST(NcclTransport, AllGather_DifferentShapes_GroupedSendRecv) {
  NcclWorld world(3);
  for (int r = 0; r < 3; ++r) {
    InSequence order;
    EXPECT_CALL(world.api(r), group_start()).Times(1);
    EXPECT_CALL(world.api(r), send(_, _, _, _, _)).Times(r == 0 ? 0 : 2);  // rank 0 contributes nothing
    EXPECT_CALL(world.api(r), group_end()).Times(1);
    EXPECT_CALL(world.api(r), all_gather(_, _, _, _, _)).Times(0);
  }
  world.run([](Transport& t) {
    auto gathered = t.all_gather(pattern(at::kLong, {t.rank()}, t.rank()));
    ASSERT_EQ(gathered.size(), 3u);
    for (int r = 0; r < 3; ++r) EXPECT_TRUE(gathered[r].equal(pattern(at::kLong, {r}, r))) << r;
  });
}

TEST(NcclTransport, StringsAndBarrier_GoOverBootstrapOnly) {
  NcclWorld world(2);
  for (int r = 0; r < 2; ++r) {
    EXPECT_CALL(world.api(r), send(_, _, _, _, _)).Times(0);
    EXPECT_CALL(world.api(r), broadcast(_, _, _, _, _, _)).Times(0);
  }
  world.run([](Transport& t) {
    EXPECT_EQ(t.broadcast_string(t.rank() == 1 ? "plan" : "", 1), "plan");
    EXPECT_EQ(t.all_gather_string(std::to_string(t.rank())), (std::vector<std::string>{"0", "1"}));
    t.barrier();
  });
}

TEST(NcclTransport, Abort_AbortsCommThenWakesPeers) {
  NcclWorld world(2);
  EXPECT_CALL(world.api(0), comm_abort(fake_comm(0))).Times(1);
  EXPECT_CALL(world.api(0), comm_destroy(_)).Times(0);
  world.run([](Transport& t) {
    if (t.rank() == 0) {
      t.abort(5);
    } else {
      EXPECT_THAT(error_message<CommError>([&] { t.barrier(); }), HasSubstr("aborted (exit code 5)"));
    }
  });
}

}  // namespace
}  // namespace pipeprune
