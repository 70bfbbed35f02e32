// Activation transfer between two pipeline ranks: one [1, 2048, 4096] fp32 hidden state (32 MiB,
// Llama-7B at seqlen 2048) sent from rank 0 to rank 1 through the Transport API exactly as the
// pipeline sends it (send with a tag; recv with the expected dtype and shape, so the wire header
// is sent and checked), and the same tensor as a ping-pong round trip (0 -> 1 -> 0). seqlen:1 is
// the one-token message of generation, where latency rather than bandwidth counts.
//
//   OneWay:   rank 0 sends, rank 1 receives and answers with a 1-element ack, so each iteration
//             ends only once the payload has arrived (the ack is a few microseconds of it).
//             bytes/second = payload bytes per iteration.
//   PingPong: rank 1 sends back what it received; bytes/second counts both directions.
//   Memcpy:   yardstick, a plain std::memcpy of the same 32 MiB in one process, into a buffer
//             reused every iteration (fresh:0) or into a freshly allocated tensor (fresh:1): both
//             backends allocate a new tensor per message (LocalTransport's copy on send, the MPI
//             receiver's buffer), so fresh:1 shows what first-touch page faults cost.
//
// Standalone it runs the Local* variants (LocalTransport, two ranks as two threads of this
// process) and Memcpy; under mpirun with two ranks it runs the Mpi* variants and, on rank 0 while
// rank 1 waits, Memcpy:
//
//   build/benchmarks/transport_bench
//   OMP_NUM_THREADS=1 timeout 300 mpirun --oversubscribe --allow-run-as-root --bind-to none \
//       -x OMP_NUM_THREADS -np 2 build/benchmarks/transport_bench
//
// (add -x OMPI_MCA_btl_vader_single_copy_mechanism=none where the container breaks Open MPI's
// single-copy path, as launch/pipeprune-mpirun does; that path then copies twice.) The Mpi*
// variants run a fixed number of iterations so both ranks stay in lockstep; only rank 0 prints,
// and flags that would make the ranks diverge (warm-up time, random interleaving) are refused.
#include <benchmark/benchmark.h>
#include <c10/core/InferenceMode.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "benchmarks/bench_util.h"
#include "dist/stage_runner.h"
#include "dist/transport/transport.h"

namespace pipeprune::bench {
namespace {

constexpr int64_t kHidden = 4096;
constexpr int64_t kSeqlen = 2048;
constexpr int kAckTag = kTagCalibration + 100;
// Untimed transfers before the timed loop, the same number on both ranks.
constexpr int kWarmup = 2;

enum class Pattern { kOneWay, kPingPong };

const at::Tensor& activation(int64_t seqlen) {
  static std::map<int64_t, at::Tensor> cache;  // filled from one thread, before any timing
  auto it = cache.find(seqlen);
  if (it == cache.end()) it = cache.emplace(seqlen, random_normal({1, seqlen, kHidden}, 3)).first;
  return it->second;
}

int64_t payload_bytes(int64_t seqlen) { return seqlen * kHidden * 4; }

// What the next stage passes to recv() for a hidden state (StageModel::pipeline_forward).
RecvOptions activation_options(int64_t seqlen) {
  RecvOptions options;
  options.tag = kTagCalibration;
  options.expect.dtype = at::kFloat;
  options.expect.shape = std::vector<int64_t>{1, seqlen, kHidden};
  return options;
}

RecvOptions ack_options() {
  RecvOptions options;
  options.tag = kAckTag;
  options.expect.dtype = at::kFloat;
  options.expect.shape = std::vector<int64_t>{1};
  return options;
}

// What one run exchanges: the activation, the one-element ack, and what recv() expects of each.
struct Exchange {
  int64_t seqlen;
  at::Tensor x;
  at::Tensor ack;
  RecvOptions activation;
  RecvOptions ack_expect;
};

Exchange exchange_for(int64_t seqlen) {
  return Exchange{seqlen, activation(seqlen), at::zeros({1}, at::kFloat), activation_options(seqlen), ack_options()};
}

// One iteration on rank 0; *back is the tensor that came back (ping-pong only).
void lead_step(Transport& t, const at::Tensor& x, Pattern pattern, const RecvOptions& back_options,
               const RecvOptions& ack, at::Tensor* back) {
  t.send(x, 1, SendOptions{kTagCalibration});
  if (pattern == Pattern::kOneWay) {
    benchmark::DoNotOptimize(t.recv(1, ack).data_ptr());
  } else {
    *back = t.recv(1, back_options);
  }
}

// One iteration on rank 1; *last is the tensor it received.
void follow_step(Transport& t, Pattern pattern, const RecvOptions& options, const at::Tensor& ack,
                 at::Tensor* last) {
  *last = t.recv(0, options);
  t.send(pattern == Pattern::kOneWay ? ack : *last, 0, SendOptions{pattern == Pattern::kOneWay ? kAckTag : kTagCalibration});
}

void report(benchmark::State& state, Pattern pattern, int64_t seqlen, const char* backend) {
  const int64_t per_iteration = payload_bytes(seqlen) * (pattern == Pattern::kPingPong ? 2 : 1);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * per_iteration);
  state.counters["msg_MiB"] = static_cast<double>(payload_bytes(seqlen)) / (1 << 20);
  state.SetLabel(backend);
}

// LocalTransport: rank 1 runs on a thread of its own for exactly the iterations of this run.
void run_local(benchmark::State& state, Pattern pattern) {
  configure_threads();
  c10::InferenceMode guard;
  const Exchange e = exchange_for(state.range(0));
  LocalWorldOptions world_options;
  world_options.recv_timeout_seconds = 60;  // a lost message fails the run instead of hanging it
  auto world = create_local_world(2, world_options);
  const int64_t steps = kWarmup + static_cast<int64_t>(state.max_iterations);

  std::string peer_error;
  bool peer_intact = false;
  std::thread peer([&] {
    c10::InferenceMode peer_guard;  // thread-local, as on rank 0
    try {
      at::Tensor last;
      for (int64_t i = 0; i < steps; ++i) follow_step(*world[1], pattern, e.activation, e.ack, &last);
      peer_intact = at::equal(last, e.x);
    } catch (const std::exception& e) {
      peer_error = e.what();
      world[1]->abort(1);
    }
  });

  std::string error;
  at::Tensor back;
  try {
    for (int i = 0; i < kWarmup; ++i) lead_step(*world[0], e.x, pattern, e.activation, e.ack_expect, &back);
    for (auto _ : state) lead_step(*world[0], e.x, pattern, e.activation, e.ack_expect, &back);
  } catch (const std::exception& e) {
    error = e.what();
    world[0]->abort(1);
  }
  peer.join();
  if (!error.empty() || !peer_error.empty()) {
    state.SkipWithError(("transport failed: " + (error.empty() ? peer_error : error)).c_str());
    return;
  }
  if (!peer_intact || (pattern == Pattern::kPingPong && !at::equal(back, e.x))) {
    state.SkipWithError("the received tensor differs from the sent one");
    return;
  }
  report(state, pattern, e.seqlen, "local");
}

void BM_LocalOneWay(benchmark::State& state) { run_local(state, Pattern::kOneWay); }
void BM_LocalPingPong(benchmark::State& state) { run_local(state, Pattern::kPingPong); }

// MPI: both ranks run this with the same fixed iteration count, rank 0 leading.
void run_mpi(benchmark::State& state, Transport& t, Pattern pattern) {
  c10::InferenceMode guard;
  const Exchange e = exchange_for(state.range(0));
  at::Tensor last;
  // A transport error throws out of here and ends the job (uncaught under mpirun), never a hang.
  if (t.rank() == 0) {
    for (int i = 0; i < kWarmup; ++i) lead_step(t, e.x, pattern, e.activation, e.ack_expect, &last);
    for (auto _ : state) lead_step(t, e.x, pattern, e.activation, e.ack_expect, &last);
  } else {
    for (int i = 0; i < kWarmup; ++i) follow_step(t, pattern, e.activation, e.ack, &last);
    for (auto _ : state) follow_step(t, pattern, e.activation, e.ack, &last);
  }
  const bool mine = (t.rank() == 0 && pattern == Pattern::kOneWay) || at::equal(last, e.x);
  if (!t.all_agree(mine)) {
    state.SkipWithError("the received tensor differs from the sent one");
    return;
  }
  report(state, pattern, e.seqlen, "mpi");
}

// Yardstick: the same bytes by std::memcpy, into a reused or a freshly allocated tensor.
void BM_Memcpy(benchmark::State& state) {
  configure_threads();
  c10::InferenceMode guard;
  const at::Tensor& x = activation(kSeqlen);
  const bool fresh = state.range(0) != 0;
  const size_t bytes = static_cast<size_t>(payload_bytes(kSeqlen));
  at::Tensor reused = at::empty_like(x);
  std::memset(reused.data_ptr(), 0, bytes);  // touched once, outside the timing
  for (auto _ : state) {
    at::Tensor out = fresh ? at::empty_like(x) : reused;
    std::memcpy(out.data_ptr(), x.data_ptr(), bytes);
    benchmark::DoNotOptimize(out.data_ptr());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * payload_bytes(kSeqlen));
  state.counters["msg_MiB"] = static_cast<double>(bytes) / (1 << 20);
}

void register_memcpy() {
  benchmark::RegisterBenchmark("BM_Memcpy", BM_Memcpy)
      ->ArgName("fresh")->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->UseRealTime();
}

void register_local() {
  for (auto* b : {benchmark::RegisterBenchmark("BM_LocalOneWay", BM_LocalOneWay),
                  benchmark::RegisterBenchmark("BM_LocalPingPong", BM_LocalPingPong)}) {
    b->ArgName("seqlen")->Arg(kSeqlen)->Arg(1)->Unit(benchmark::kMicrosecond)->UseRealTime();
  }
}

// Fixed iteration counts (about 2 s each for seqlen 2048 on a 2-core VM, where a 32 MiB message
// takes ~20 ms): both ranks must run the same number of transfers.
void register_mpi(Transport& t) {
  struct Case {
    const char* name;
    Pattern pattern;
    int64_t seqlen;
    int64_t iterations;
  };
  const Case cases[] = {{"BM_MpiOneWay", Pattern::kOneWay, kSeqlen, 100},
                        {"BM_MpiOneWay", Pattern::kOneWay, 1, 20000},
                        {"BM_MpiPingPong", Pattern::kPingPong, kSeqlen, 50},
                        {"BM_MpiPingPong", Pattern::kPingPong, 1, 10000}};
  for (const Case& c : cases) {
    const Pattern pattern = c.pattern;
    benchmark::RegisterBenchmark(c.name, [&t, pattern](benchmark::State& state) { run_mpi(state, t, pattern); })
        ->ArgName("seqlen")->Arg(c.seqlen)->Iterations(c.iterations)->Unit(benchmark::kMicrosecond)->UseRealTime();
  }
}

// Prints nothing: the display of ranks other than 0.
class NullReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

bool has_flag(int argc, char** argv, const char* prefix) {
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix, std::strlen(prefix)) == 0) return true;
  }
  return false;
}

int run(int argc, char** argv) {
  const bool under_mpi = launched_under_mpi();
  std::unique_ptr<Transport> transport;
  if (under_mpi) {
    // The MPI variants copy no tensors through ATen; keep ranks from each taking every core.
    const char* omp = std::getenv("OMP_NUM_THREADS");
    ::setenv("PIPEPRUNE_BENCH_THREADS", omp != nullptr ? omp : "1", /*overwrite=*/0);
    try {
      TransportOptions options;
      options.kind = TransportKind::kMpi;
      transport = create_transport(options);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "transport_bench: launched under MPI but the MPI transport failed: %s\n", e.what());
      return 1;
    }
    if (transport->size() != 2) {
      if (transport->rank() == 0) {
        std::fprintf(stderr, "transport_bench: the MPI variants need exactly 2 ranks, got %d (mpirun -np 2)\n",
                     transport->size());
      }
      return 2;
    }
    if (has_flag(argc, argv, "--benchmark_min_warmup_time") ||
        has_flag(argc, argv, "--benchmark_enable_random_interleaving")) {
      if (transport->rank() == 0) {
        std::fprintf(stderr, "transport_bench: --benchmark_min_warmup_time and "
                             "--benchmark_enable_random_interleaving would put the ranks out of step\n");
      }
      return 2;
    }
  }
  const int rank = transport ? transport->rank() : 0;

  // Ranks other than 0 must not write the --benchmark_out file too.
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (rank != 0 && std::strncmp(argv[i], "--benchmark_out", 15) == 0) continue;
    args.push_back(argv[i]);
  }
  int n = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;

  if (transport) {
    register_mpi(*transport);
    if (rank == 0) register_memcpy();  // rank 1 waits at the barrier below meanwhile
  } else {
    register_local();
    register_memcpy();
    std::fprintf(stderr,
                 "transport_bench: not launched under MPI, so the Local* variants only; for the MPI ones run\n"
                 "  OMP_NUM_THREADS=1 mpirun --oversubscribe --allow-run-as-root --bind-to none "
                 "-x OMP_NUM_THREADS -np 2 %s\n",
                 argv[0]);
  }
  // Tensors made before timing, on every rank alike.
  activation(kSeqlen);
  activation(1);

  NullReporter null_reporter;
  if (rank == 0) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    benchmark::RunSpecifiedBenchmarks(&null_reporter);
  }
  if (transport) transport->barrier();
  benchmark::Shutdown();
  return 0;
}

}  // namespace
}  // namespace pipeprune::bench

int main(int argc, char** argv) { return pipeprune::bench::run(argc, argv); }
