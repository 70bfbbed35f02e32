// Activation store throughput: samples of [1, 2048, 4096] fp32 (32 MiB, one Llama-7B hidden
// state at seqlen 2048) put into and read back from the in-RAM store and the HDF5-spilling
// store, with everything spilled (budget 0) or half of it. The spill file lives in
// $PIPEPRUNE_SPILL_DIR (default: the system temp dir); what it measures there is usually the
// page cache, which is what a run sees while the host has free memory for it, not the disk.
#include <benchmark/benchmark.h>
#include <c10/core/InferenceMode.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "benchmarks/bench_util.h"
#include "core/memory/activation_store.h"
#include "core/memory/hdf5_activation_store.h"

namespace pipeprune::bench {
namespace {

constexpr int64_t kSamples = 8;
constexpr int64_t kSeqlen = 2048;
constexpr int64_t kHidden = 4096;
constexpr int64_t kSampleBytes = kSeqlen * kHidden * 4;

const at::Tensor& activation() {
  static const at::Tensor a = random_normal({1, kSeqlen, kHidden}, 3);
  return a;
}

std::filesystem::path spill_dir() {
  const char* env = std::getenv("PIPEPRUNE_SPILL_DIR");
  return env != nullptr ? std::filesystem::path(env) : std::filesystem::temp_directory_path();
}

// state.range(0): -1 for the in-RAM store, else the percentage of samples the RAM budget holds.
std::unique_ptr<ActivationStore> make_store(const benchmark::State& state) {
  if (state.range(0) < 0) return make_memory_activation_store(kSamples);
  static int counter = 0;
  const std::string stem = "spill_bench_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
  return make_spilling_activation_store(kSamples, kSamples * kSampleBytes * state.range(0) / 100, spill_dir(), stem);
}

void set_bytes(benchmark::State& state) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kSamples * kSampleBytes);
}

void label(benchmark::State& state, const ActivationStore& store) {
  state.counters["spilled_MiB"] = static_cast<double>(store.bytes_spilled()) / (1 << 20);
  state.counters["ram_MiB"] = static_cast<double>(store.bytes_in_memory()) / (1 << 20);
}

// Every sample written once per iteration (the stores reuse their slots and chunks).
void BM_Put(benchmark::State& state) {
  configure_threads();
  c10::InferenceMode guard;
  auto store = make_store(state);
  for (auto _ : state) {
    for (int64_t i = 0; i < kSamples; ++i) store->put(i, activation());
    benchmark::ClobberMemory();
  }
  set_bytes(state);
  label(state, *store);
}

// Every sample read once per iteration and its first element touched, as a layer would.
void BM_Get(benchmark::State& state) {
  configure_threads();
  c10::InferenceMode guard;
  auto store = make_store(state);
  for (int64_t i = 0; i < kSamples; ++i) store->put(i, activation());
  for (auto _ : state) {
    for (int64_t i = 0; i < kSamples; ++i) {
      const at::Tensor x = store->get(i);
      benchmark::DoNotOptimize(static_cast<const float*>(x.data_ptr())[0]);
    }
  }
  set_bytes(state);
  label(state, *store);
}

// The pipeline's pattern: read sample i from one store, write it to the other.
void BM_GetPut(benchmark::State& state) {
  configure_threads();
  c10::InferenceMode guard;
  auto in = make_store(state);
  auto out = make_store(state);
  for (int64_t i = 0; i < kSamples; ++i) in->put(i, activation());
  for (auto _ : state) {
    for (int64_t i = 0; i < kSamples; ++i) out->put(i, in->get(i));
    std::swap(in, out);
  }
  set_bytes(state);
  label(state, *in);
}

// Yardstick: the same bytes through plain pwrite/pread on one file (a fresh tensor per read,
// as the spilling store's get() returns), so HDF5's own cost shows as the difference.
void BM_PosixFile(benchmark::State& state) {
  configure_threads();
  c10::InferenceMode guard;
  const std::filesystem::path path = spill_dir() / ("spill_bench_posix_" + std::to_string(::getpid()));
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    state.SkipWithError("cannot create the yardstick file");
    return;
  }
  const bool write = state.range(0) == 0;
  const at::Tensor& a = activation();
  bool ok = true;
  for (int64_t i = 0; i < kSamples; ++i) {
    ok &= ::pwrite(fd, a.data_ptr(), kSampleBytes, i * kSampleBytes) == kSampleBytes;
  }
  for (auto _ : state) {
    for (int64_t i = 0; i < kSamples; ++i) {
      if (write) {
        ok &= ::pwrite(fd, a.data_ptr(), kSampleBytes, i * kSampleBytes) == kSampleBytes;
      } else {
        at::Tensor x = at::empty_like(a);
        ok &= ::pread(fd, x.data_ptr(), kSampleBytes, i * kSampleBytes) == kSampleBytes;
        benchmark::DoNotOptimize(static_cast<const float*>(x.data_ptr())[0]);
      }
    }
  }
  ::close(fd);
  std::filesystem::remove(path);
  if (!ok) state.SkipWithError("short read or write");
  set_bytes(state);
}

void store_args(benchmark::internal::Benchmark* b) {
  b->ArgName("ram_pct")->Arg(-1)->Arg(0)->Arg(50)->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(BM_Put)->Apply(store_args);
BENCHMARK(BM_Get)->Apply(store_args);
BENCHMARK(BM_GetPut)->Apply(store_args);
BENCHMARK(BM_PosixFile)->ArgName("read")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace pipeprune::bench

BENCHMARK_MAIN();
