// main() for the MPI test executables: MPI first (through the transport), then GoogleTest.
// See mpi_test_support.h for what the listeners do and why.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/common/log.h"
#include "tests/mpi/mpi_test_support.h"

namespace pipeprune::mpi_test {
namespace {

std::unique_ptr<Transport> g_world;

std::string test_name(const ::testing::TestInfo& info) {
  return std::string(info.test_suite_name()) + "." + info.name();
}

// After each test every rank exchanges its result; rank 0 names the ranks that failed, and a
// rank that passed records the test as failed elsewhere so the job's exit code reflects it.
class AgreeOnResults : public ::testing::EmptyTestEventListener {
 public:
  void OnTestEnd(const ::testing::TestInfo& info) override {
    const ::testing::TestResult* result = info.result();
    std::string mine = result->Failed() ? "failed" : "";
    auto all = g_world->all_gather_string(mine);
    std::ostringstream failed_ranks;
    for (size_t r = 0; r < all.size(); ++r) {
      if (!all[r].empty()) failed_ranks << (failed_ranks.tellp() > 0 ? "," : "") << r;
    }
    if (failed_ranks.tellp() > 0) {
      any_failed_ = true;
      if (g_world->rank() == 0) {
        std::fprintf(stderr, "[mpi] %s failed on rank(s) %s\n", test_name(info).c_str(), failed_ranks.str().c_str());
      }
    }
  }
  bool any_failed() const { return any_failed_; }

 private:
  bool any_failed_ = false;
};

// Replaces the default printer on ranks other than 0: only failures, prefixed with the rank.
class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& part) override {
    if (!part.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_, part.file_name() ? part.file_name() : "?",
                 part.line_number(), part.message());
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed()) std::fprintf(stderr, "[rank %d] FAILED %s\n", rank_, test_name(info).c_str());
  }

 private:
  int rank_;
};

// A test that runs too long is a hang: say which, then kill this process (no MPI call from this
// thread; mpirun then ends the other ranks).
class Watchdog : public ::testing::EmptyTestEventListener {
 public:
  Watchdog(int rank, double limit_seconds) : rank_(rank), limit_(limit_seconds), thread_([this] { watch(); }) {}
  ~Watchdog() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  void OnTestStart(const ::testing::TestInfo& info) override {
    std::lock_guard<std::mutex> lock(mutex_);
    current_ = test_name(info);
    deadline_ = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                       std::chrono::duration<double>(limit_));
    running_ = true;
    changed_.notify_all();
  }
  void OnTestEnd(const ::testing::TestInfo&) override {
    std::lock_guard<std::mutex> lock(mutex_);
    running_ = false;
  }

 private:
  void watch() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      if (running_ && std::chrono::steady_clock::now() >= deadline_) {
        std::fprintf(stderr, "[rank %d] %s still running after %g s: a rank is probably waiting for a peer; "
                     "aborting the job\n", rank_, current_.c_str(), limit_);
        std::fflush(stderr);
        std::abort();
      }
      changed_.wait_for(lock, std::chrono::milliseconds(200));
    }
  }

  int rank_;
  double limit_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool stop_ = false;
  bool running_ = false;
  std::string current_;
  std::chrono::steady_clock::time_point deadline_;
  std::thread thread_;
};

double watchdog_seconds() {
  const char* value = std::getenv("PIPEPRUNE_MPI_TEST_TIMEOUT");
  double seconds = value ? std::atof(value) : 0.0;
  return seconds > 0 ? seconds : 60.0;
}

}  // namespace

Transport& world() { return *g_world; }

}  // namespace pipeprune::mpi_test

int main(int argc, char** argv) {
  using namespace pipeprune;
  TransportOptions options;
  options.kind = TransportKind::kMpi;
  mpi_test::g_world = create_transport(options);  // MPI_Init before GoogleTest sees argv
  const int rank = mpi_test::g_world->rank();
  log::set_rank(rank, mpi_test::g_world->size());
  ::testing::InitGoogleMock(&argc, argv);

  auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
  if (rank != 0) {
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new mpi_test::FailurePrinter(rank));
  }
  // GoogleTest fires OnTestEnd in reverse order: appended first, the watchdog is cleared only
  // after the agreement, which could hang as well.
  auto* watchdog = new mpi_test::Watchdog(rank, mpi_test::watchdog_seconds());
  listeners.Append(watchdog);
  auto* agree = new mpi_test::AgreeOnResults();
  listeners.Append(agree);

  int local = RUN_ALL_TESTS();
  delete listeners.Release(watchdog);
  bool all_passed = mpi_test::g_world->all_agree(local == 0 && !agree->any_failed());
  mpi_test::g_world.reset();
  return all_passed ? 0 : 1;
}
