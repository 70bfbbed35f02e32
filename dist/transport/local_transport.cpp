// LocalTransport: N ranks as threads of one process, connected by per-rank mailboxes.
//
// Each rank owns a mailbox (mutex + condition variable + deque). send() copies the tensor and
// appends it to the receiver's mailbox; recv() takes the first message from the wanted peer with
// the wanted tag. Collectives are built from the same messages on an internal negative tag:
// every rank calls them in the same order and mailboxes are FIFO per sender, so they match.
// A waiting recv gives up after LocalWorldOptions::recv_timeout_seconds, and abort() on any rank
// wakes every waiter, so a failing thread never leaves the others hanging.
#include <ATen/ATen.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>

#include "core/common/error.h"
#include "dist/transport/tensor_header.h"
#include "dist/transport/transport.h"

namespace pipeprune {
namespace {

constexpr int kCollectiveTag = -1;
constexpr int64_t kUnusedChunk = 1;

struct Message {
  int src = 0;
  int tag = 0;
  wire::TensorHeader header;
  at::Tensor tensor;
  std::string text;
};

struct Mailbox {
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<Message> messages;
};

// Shared by the transports of one world; lives as long as the last of them.
class LocalHub {
 public:
  LocalHub(int world_size, const LocalWorldOptions& options)
      : mailboxes_(world_size), options_(options) {}

  void post(int dst, Message message) {
    Mailbox& box = mailboxes_[dst];
    {
      std::lock_guard<std::mutex> lock(box.mutex);
      box.messages.push_back(std::move(message));
    }
    box.ready.notify_all();
  }

  Message take(int rank, int src, int tag) {
    Mailbox& box = mailboxes_[rank];
    std::unique_lock<std::mutex> lock(box.mutex);
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        std::chrono::duration<double>(options_.recv_timeout_seconds));
    std::optional<Message> found;
    // Messages posted before an abort are still delivered; only a wait that cannot end fails.
    auto match = [&] {
      for (auto it = box.messages.begin(); it != box.messages.end(); ++it) {
        if (it->src == src && it->tag == tag) {
          found = std::move(*it);
          box.messages.erase(it);
          return true;
        }
      }
      return aborted_code() != 0;
    };
    bool woke = box.ready.wait_until(lock, deadline, match);
    if (found) return std::move(*found);
    std::string what = tag == kCollectiveTag ? std::string("a collective")
                                             : "a message with tag " + std::to_string(tag);
    PIPEPRUNE_CHECK(woke, CommError,
                    "rank " << rank << ": waited " << options_.recv_timeout_seconds << " s for "
                            << what << " from rank " << src
                            << "; that rank failed or the ranks' calls are out of order");
    PIPEPRUNE_FAIL(CommError, "rank " << rank << ": the job was aborted (exit code "
                                      << aborted_code() << ") while waiting for rank " << src);
  }

  void abort(int exit_code) {
    {
      std::lock_guard<std::mutex> lock(abort_mutex_);
      if (abort_code_ == 0) abort_code_ = exit_code == 0 ? -1 : exit_code;
    }
    for (Mailbox& box : mailboxes_) {
      std::lock_guard<std::mutex> lock(box.mutex);  // so no waiter misses the wake-up
      box.ready.notify_all();
    }
  }

  int aborted_code() {
    std::lock_guard<std::mutex> lock(abort_mutex_);
    return abort_code_;
  }

 private:
  std::deque<Mailbox> mailboxes_;  // deque: Mailbox is neither copyable nor movable
  LocalWorldOptions options_;
  std::mutex abort_mutex_;
  int abort_code_ = 0;
};

class LocalTransport final : public Transport {
 public:
  LocalTransport(std::shared_ptr<LocalHub> hub, int rank, int size)
      : hub_(std::move(hub)), rank_(rank), size_(size) {}

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend_name() const override { return "local"; }

  void send(const at::Tensor& tensor, int dst, const SendOptions& options) override {
    wire::check_peer("send", dst, rank_, size_);
    wire::check_tag(options.tag, rank_);
    post_tensor(tensor, {dst}, options.tag);
  }

  at::Tensor recv(int src, const RecvOptions& options) override {
    wire::check_peer("recv", src, rank_, size_);
    wire::check_tag(options.tag, rank_);
    wire::TensorHeader header;
    at::Tensor tensor = take_tensor(src, options.tag, &header);
    wire::check_expectation(header, options.expect, rank_, src);
    return tensor.to(options.device);
  }

  at::Tensor broadcast(const at::Tensor& tensor, const BroadcastOptions& options) override {
    wire::check_root(options.root, rank_, size_);
    if (rank_ == options.root) {
      post_tensor(tensor, others(), kCollectiveTag);
      return tensor;
    }
    return take_tensor(options.root, kCollectiveTag);
  }

  std::vector<at::Tensor> all_gather(const at::Tensor& tensor) override {
    // Every peer's message is taken before any error is thrown, so no stale message is left to
    // be mistaken for the next collective's.
    std::exception_ptr failure;
    try {
      post_tensor(tensor, others(), kCollectiveTag);
    } catch (...) {
      failure = std::current_exception();
    }
    std::vector<Message> messages(size_);
    for (int r = 0; r < size_; ++r) {
      if (r != rank_) messages[r] = hub_->take(rank_, r, kCollectiveTag);
    }
    if (failure) std::rethrow_exception(failure);
    std::vector<wire::TensorHeader> headers(size_);
    std::vector<at::Tensor> result(size_);
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) {
        headers[r] = wire::make_header(tensor, kCollectiveTag, kUnusedChunk, rank_, -1);
        result[r] = tensor.to(at::kCPU).contiguous().clone();
      } else {
        wire::validate_header(messages[r].header, rank_, r);
        headers[r] = messages[r].header;
        result[r] = std::move(messages[r].tensor);
      }
    }
    wire::check_same_dtype(headers, rank_);
    return result;
  }

  void barrier() override { all_gather_string(std::string()); }

  std::string broadcast_string(const std::string& value, int root) override {
    wire::check_root(root, rank_, size_);
    if (rank_ == root) {
      for (int r = 0; r < size_; ++r) {
        if (r != rank_) post_text(value, r);
      }
      return value;
    }
    return hub_->take(rank_, root, kCollectiveTag).text;
  }

  std::vector<std::string> all_gather_string(const std::string& value) override {
    for (int r = 0; r < size_; ++r) {
      if (r != rank_) post_text(value, r);
    }
    std::vector<std::string> result(size_);
    for (int r = 0; r < size_; ++r) {
      result[r] = r == rank_ ? value : hub_->take(rank_, r, kCollectiveTag).text;
    }
    return result;
  }

  void abort(int exit_code) override { hub_->abort(exit_code); }

 private:
  // Sends `tensor` to every rank in `dsts`. When it cannot be sent, every receiver gets a failed
  // header (so it fails fast instead of waiting) and the error is rethrown here.
  void post_tensor(const at::Tensor& tensor, const std::vector<int>& dsts, int tag) {
    Message message;
    message.src = rank_;
    message.tag = tag;
    try {
      message.header = wire::make_header(tensor, tag, kUnusedChunk, rank_, dsts.size() == 1 ? dsts[0] : -1);
      // A private contiguous CPU copy, as if it had crossed a wire: the sender may reuse its tensor.
      message.tensor = tensor.to(at::kCPU).contiguous().clone();
    } catch (...) {
      message.header = wire::failed_header();
      message.tensor = at::Tensor();
      for (int dst : dsts) hub_->post(dst, message);
      throw;
    }
    for (size_t i = 0; i < dsts.size(); ++i) {
      Message copy = message;
      if (i > 0) copy.tensor = message.tensor.clone();  // receivers may modify what they get
      hub_->post(dsts[i], std::move(copy));
    }
  }

  at::Tensor take_tensor(int src, int tag, wire::TensorHeader* header = nullptr) {
    Message message = hub_->take(rank_, src, tag);
    wire::validate_header(message.header, rank_, src);
    if (header != nullptr) *header = message.header;
    return std::move(message.tensor);
  }

  std::vector<int> others() const {
    std::vector<int> ranks;
    for (int r = 0; r < size_; ++r) {
      if (r != rank_) ranks.push_back(r);
    }
    return ranks;
  }

  void post_text(const std::string& text, int dst) {
    Message message;
    message.src = rank_;
    message.tag = kCollectiveTag;
    message.text = text;
    hub_->post(dst, std::move(message));
  }

  std::shared_ptr<LocalHub> hub_;
  int rank_;
  int size_;
};

}  // namespace

std::vector<std::unique_ptr<Transport>> create_local_world(int world_size,
                                                           const LocalWorldOptions& options) {
  PIPEPRUNE_CHECK(world_size >= 1, ConfigError,
                  "local transport: world size " << world_size << " must be at least 1");
  PIPEPRUNE_CHECK(options.recv_timeout_seconds > 0, ConfigError,
                  "local transport: receive timeout " << options.recv_timeout_seconds
                                                      << " s must be positive");
  auto hub = std::make_shared<LocalHub>(world_size, options);
  std::vector<std::unique_ptr<Transport>> world;
  for (int r = 0; r < world_size; ++r) world.push_back(std::make_unique<LocalTransport>(hub, r, world_size));
  return world;
}

}  // namespace pipeprune
