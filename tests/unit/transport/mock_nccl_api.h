// A gMock double of NcclApi, plus FakeNcclWire: an in-memory stand-in for the network, so the
// mocks of several ranks (threads) can move real bytes between each other by default and tests
// can check both the call sequence and the data.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "dist/transport/nccl_api.h"

namespace pipeprune::testing {

class MockNcclApi : public NcclApi {
 public:
  MOCK_METHOD(const char*, get_error_string, (NcclResult result), (override));
  MOCK_METHOD(NcclResult, get_unique_id, (NcclUniqueId * id), (override));
  MOCK_METHOD(NcclResult, comm_init_rank, (NcclComm * comm, int n_ranks, const NcclUniqueId& id, int rank),
              (override));
  MOCK_METHOD(NcclResult, comm_destroy, (NcclComm comm), (override));
  MOCK_METHOD(NcclResult, comm_abort, (NcclComm comm), (override));
  MOCK_METHOD(NcclResult, comm_get_async_error, (NcclComm comm, NcclResult* async_error), (override));
  MOCK_METHOD(NcclResult, send, (const void* data, size_t bytes, int peer, NcclComm comm, CudaStream stream),
              (override));
  MOCK_METHOD(NcclResult, recv, (void* data, size_t bytes, int peer, NcclComm comm, CudaStream stream),
              (override));
  MOCK_METHOD(NcclResult, broadcast,
              (const void* send_data, void* recv_data, size_t bytes, int root, NcclComm comm, CudaStream stream),
              (override));
  MOCK_METHOD(NcclResult, all_gather,
              (const void* send_data, void* recv_data, size_t bytes_per_rank, NcclComm comm, CudaStream stream),
              (override));
  MOCK_METHOD(NcclResult, group_start, (), (override));
  MOCK_METHOD(NcclResult, group_end, (), (override));
  MOCK_METHOD(CudaError, cuda_get_device_count, (int* count), (override));
  MOCK_METHOD(CudaError, cuda_set_device, (int device), (override));
  MOCK_METHOD(CudaError, cuda_stream_create, (CudaStream * stream), (override));
  MOCK_METHOD(CudaError, cuda_stream_synchronize, (CudaStream stream), (override));
  MOCK_METHOD(CudaError, cuda_stream_destroy, (CudaStream stream), (override));
  MOCK_METHOD(CudaError, cuda_event_create, (CudaEvent * event), (override));
  MOCK_METHOD(CudaError, cuda_event_record, (CudaEvent event, CudaStream stream), (override));
  MOCK_METHOD(CudaError, cuda_stream_wait_event, (CudaStream stream, CudaEvent event), (override));
  MOCK_METHOD(CudaError, cuda_event_destroy, (CudaEvent event), (override));
  MOCK_METHOD(CudaStream, compute_stream, (int device), (override));
  MOCK_METHOD(const char*, cuda_get_error_string, (CudaError error), (override));
};

// Byte queues per (src, dst). Sends never block; receives wait up to 10 s for their bytes.
class FakeNcclWire {
 public:
  void push(int src, int dst, const void* data, size_t bytes) {
    const char* begin = static_cast<const char*>(data);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queues_[{src, dst}].emplace_back(begin, begin + bytes);
    }
    ready_.notify_all();
  }

  void pop(int src, int dst, void* data, size_t bytes) {
    std::unique_lock<std::mutex> lock(mutex_);
    auto& queue = queues_[{src, dst}];
    if (!ready_.wait_for(lock, std::chrono::seconds(10), [&] { return !queue.empty(); })) {
      ADD_FAILURE() << "fake NCCL: rank " << dst << " waited 10 s for bytes from rank " << src;
      return;
    }
    std::vector<char> message = std::move(queue.front());
    queue.pop_front();
    EXPECT_EQ(message.size(), bytes) << "fake NCCL: size mismatch from rank " << src << " to " << dst;
    std::memcpy(data, message.data(), std::min(bytes, message.size()));
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::map<std::pair<int, int>, std::deque<std::vector<char>>> queues_;
};

inline NcclComm fake_comm(int rank) { return reinterpret_cast<NcclComm>(static_cast<uintptr_t>(0x1000 + rank)); }
inline CudaStream fake_stream(int rank) {
  return reinterpret_cast<CudaStream>(static_cast<uintptr_t>(0x5000 + rank));
}

inline CudaEvent fake_event(int rank) { return reinterpret_cast<CudaEvent>(static_cast<uintptr_t>(0x7000 + rank)); }
// LibTorch's current stream on the rank's device.
inline CudaStream fake_compute_stream(int rank) {
  return reinterpret_cast<CudaStream>(static_cast<uintptr_t>(0x9000 + rank));
}

// NCCL's and CUDA's own texts for the codes the tests use.
inline const char* nccl_error_text(NcclResult result) {
  switch (result) {
    case kNcclSuccess: return "no error";
    case kNcclUnhandledCudaError: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case kNcclRemoteError: return "remote process exited or there was a network error";
    default: return "unknown result code";
  }
}
inline const char* cuda_error_text(CudaError error) {
  switch (error) {
    case kCudaSuccess: return "no error";
    case kCudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case kCudaErrorNoDevice: return "no CUDA-capable device is detected";
    default: return "an illegal memory access was encountered";
  }
}

// Default behaviour of a healthy rank with `n_devices` GPUs whose NCCL moves bytes over `wire`.
inline void behave_like_working_gpu(MockNcclApi& api, FakeNcclWire& wire, int rank, int size, int n_devices = 1) {
  using ::testing::_;
  using ::testing::DoAll;
  using ::testing::Invoke;
  using ::testing::Return;
  using ::testing::SetArgPointee;
  ON_CALL(api, get_error_string(_)).WillByDefault(Invoke(nccl_error_text));
  ON_CALL(api, cuda_get_error_string(_)).WillByDefault(Invoke(cuda_error_text));
  ON_CALL(api, cuda_get_device_count(_)).WillByDefault(DoAll(SetArgPointee<0>(n_devices), Return(kCudaSuccess)));
  ON_CALL(api, cuda_set_device(_)).WillByDefault(Return(kCudaSuccess));
  ON_CALL(api, cuda_stream_create(_)).WillByDefault(DoAll(SetArgPointee<0>(fake_stream(rank)), Return(kCudaSuccess)));
  ON_CALL(api, cuda_stream_synchronize(_)).WillByDefault(Return(kCudaSuccess));
  ON_CALL(api, cuda_stream_destroy(_)).WillByDefault(Return(kCudaSuccess));
  ON_CALL(api, cuda_event_create(_)).WillByDefault(DoAll(SetArgPointee<0>(fake_event(rank)), Return(kCudaSuccess)));
  ON_CALL(api, cuda_event_record(_, _)).WillByDefault(Return(kCudaSuccess));
  ON_CALL(api, cuda_stream_wait_event(_, _)).WillByDefault(Return(kCudaSuccess));
  ON_CALL(api, cuda_event_destroy(_)).WillByDefault(Return(kCudaSuccess));
  ON_CALL(api, compute_stream(_)).WillByDefault(Return(fake_compute_stream(rank)));
  ON_CALL(api, get_unique_id(_)).WillByDefault(Invoke([](NcclUniqueId* id) {
    for (size_t i = 0; i < kNcclUniqueIdBytes; ++i) id->internal[i] = static_cast<char>(i * 3 + 1);
    return kNcclSuccess;
  }));
  ON_CALL(api, comm_init_rank(_, _, _, _)).WillByDefault(DoAll(SetArgPointee<0>(fake_comm(rank)), Return(kNcclSuccess)));
  ON_CALL(api, comm_destroy(_)).WillByDefault(Return(kNcclSuccess));
  ON_CALL(api, comm_abort(_)).WillByDefault(Return(kNcclSuccess));
  ON_CALL(api, comm_get_async_error(_, _)).WillByDefault(DoAll(SetArgPointee<1>(kNcclSuccess), Return(kNcclSuccess)));
  ON_CALL(api, group_start()).WillByDefault(Return(kNcclSuccess));
  ON_CALL(api, group_end()).WillByDefault(Return(kNcclSuccess));
  ON_CALL(api, send(_, _, _, _, _)).WillByDefault(Invoke([&wire, rank](const void* data, size_t bytes, int peer, NcclComm, CudaStream) {
    wire.push(rank, peer, data, bytes);
    return kNcclSuccess;
  }));
  ON_CALL(api, recv(_, _, _, _, _)).WillByDefault(Invoke([&wire, rank](void* data, size_t bytes, int peer, NcclComm, CudaStream) {
    wire.pop(peer, rank, data, bytes);
    return kNcclSuccess;
  }));
  ON_CALL(api, broadcast(_, _, _, _, _, _)).WillByDefault(Invoke(
      [&wire, rank, size](const void* send_data, void* recv_data, size_t bytes, int root, NcclComm, CudaStream) {
        if (rank == root) {
          for (int r = 0; r < size; ++r) {
            if (r != root) wire.push(root, r, send_data, bytes);
          }
        } else {
          wire.pop(root, rank, recv_data, bytes);
        }
        return kNcclSuccess;
      }));
  ON_CALL(api, all_gather(_, _, _, _, _)).WillByDefault(Invoke(
      [&wire, rank, size](const void* send_data, void* recv_data, size_t bytes, NcclComm, CudaStream) {
        char* out = static_cast<char*>(recv_data);
        for (int r = 0; r < size; ++r) {
          if (r != rank) wire.push(rank, r, send_data, bytes);
        }
        std::memcpy(out + rank * bytes, send_data, bytes);
        for (int r = 0; r < size; ++r) {
          if (r != rank) wire.pop(r, rank, out + r * bytes, bytes);
        }
        return kNcclSuccess;
      }));
}

}  // namespace pipeprune::testing
