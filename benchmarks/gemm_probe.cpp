// gemm_probe: the machine's yardsticks for one model's layer, measured in the same run as the
// end-to-end benchmark (benchmarks/run_e2e.sh): the fp32 GEMM rate of each linear at the
// calibration sequence length (the pipeline runs one sequence at a time), one isolated layer
// forward, and one read+write pass over each weight matrix.
//
//   gemm_probe --model DIR --tokens T [--batch N] [--reps 5] --output probe.json
//
// With --batch N it also times the linears on N sequences at once (what batching the
// calibration samples would give), and q/k/v and gate/up each fused into one GEMM.
//
// Times are medians over --reps runs after one warm-up run. Threads as pipeprune's default
// (all cores) unless PIPEPRUNE_BENCH_THREADS is set.
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "benchmarks/bench_util.h"
#include "core/common/error.h"
#include "core/common/files.h"

namespace pipeprune::bench {
namespace {

double median_seconds(int reps, const std::function<void()>& fn, const std::function<void()>& before = {}) {
  fn();  // warm-up: first-touch allocation, BLAS thread start
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    if (before) before();
    const auto start = std::chrono::steady_clock::now();
    fn();
    times.push_back(seconds_since(start));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

std::map<std::string, std::string> parse_args(int argc, char** argv) {
  std::map<std::string, std::string> args;
  for (int i = 1; i + 1 < argc; i += 2) args[argv[i]] = argv[i + 1];
  for (const char* required : {"--model", "--tokens", "--output"}) {
    PIPEPRUNE_CHECK(args.count(required), ConfigError,
                    "gemm_probe: missing " << required
                                           << " (usage: gemm_probe --model DIR --tokens T [--batch N] [--reps 5] --output F.json)");
  }
  return args;
}

nlohmann::json probe(const ModelConfig& config, int64_t tokens, int64_t batch, int reps) {
  c10::InferenceMode guard;
  const DecoderLayerWeights w = random_layer(config, 21);
  nlohmann::json linears = nlohmann::json::object();
  // The read+write passes first: right after a GEMM, OpenBLAS's idle workers still spin and
  // (with OpenMP's default wait policy) every small ATen parallel region then waits ~8 ms for
  // its worker thread, which would turn the yardstick into a scheduling artifact.
  // Each pass starts cold, as a mask over freshly computed weights does: a 128 MiB write
  // (4x the L3 of the machines here) evicts the matrix from the caches first.
  at::Tensor evict = at::empty({32 << 20}, at::kFloat);
  std::map<LinearKind, double> t_rw;
  for (LinearKind kind : kAllLinears) {
    at::Tensor scratch = w[kind].weight.clone();
    t_rw[kind] = median_seconds(2 * reps + 1, [&] { scratch.mul_(1.0); }, [&] { evict.fill_(1.0); });
  }
  double gemm_seconds = 0;
  int64_t gemm_flops = 0;
  for (LinearKind kind : kAllLinears) {
    const at::Tensor& weight = w[kind].weight;
    const at::Tensor x = random_normal({1, tokens, weight.size(1)}, 22);
    const double t_gemm = median_seconds(reps, [&] { at::linear(x, weight); });
    const int64_t flops = linear_flops(config, kind, tokens);
    gemm_seconds += t_gemm;
    gemm_flops += flops;
    linears[linear_short_name(kind)] = {{"shape", {weight.size(0), weight.size(1)}},
                                        {"gemm_seconds", t_gemm},
                                        {"gemm_gflops", flops / t_gemm * 1e-9},
                                        {"read_write_pass_seconds", t_rw[kind]}};
  }
  // What the proposed optimizations would buy: q/k/v and gate/up as one GEMM each, and
  // all calibration samples of a pass as one batch.
  const at::Tensor x = random_normal({1, tokens, config.hidden_size}, 24);
  const at::Tensor qkv = at::cat({w[LinearKind::kQ].weight, w[LinearKind::kK].weight, w[LinearKind::kV].weight});
  const at::Tensor gate_up = at::cat({w[LinearKind::kGate].weight, w[LinearKind::kUp].weight});
  const double t_qkv = median_seconds(reps, [&] { at::linear(x, qkv); });
  const double t_gate_up = median_seconds(reps, [&] { at::linear(x, gate_up); });
  const double t_qkv_split = linears["q"]["gemm_seconds"].get<double>() + linears["k"]["gemm_seconds"].get<double>() +
                             linears["v"]["gemm_seconds"].get<double>();
  const double t_gate_up_split = linears["gate"]["gemm_seconds"].get<double>() + linears["up"]["gemm_seconds"].get<double>();
  double t_batched = 0;
  for (LinearKind kind : kAllLinears) {
    const at::Tensor xb = random_normal({batch, tokens, w[kind].weight.size(1)}, 25);
    t_batched += median_seconds(std::max(1, reps / 2), [&] { at::linear(xb, w[kind].weight); });
  }
  const nlohmann::json options = {
      {"fused_qkv_speedup", t_qkv_split / t_qkv},
      {"fused_gate_up_speedup", t_gate_up_split / t_gate_up},
      {"batch", batch},
      {"batched_gemm_layer_gflops", batch * gemm_flops / t_batched * 1e-9}};

  const RopeTables rope = make_rope_tables(config, tokens, c10::Device(c10::kCPU));
  const at::Tensor hidden = random_normal({1, tokens, config.hidden_size}, 23);
  const double t_forward = median_seconds(reps, [&] { decoder_layer_forward(w, config, rope, hidden); });
  const int64_t forward_flops = layer_forward_flops(config, tokens);
  return {{"threads", configure_threads()},
          {"tokens", tokens},
          {"reps", reps},
          {"linears", linears},
          {"gemm_layer_seconds", gemm_seconds},
          {"gemm_layer_gflops", gemm_flops / gemm_seconds * 1e-9},
          {"layer_forward_flops", forward_flops},
          {"isolated_forward_seconds", t_forward},
          {"isolated_forward_gflops", forward_flops / t_forward * 1e-9},
          {"options", options}};
}

}  // namespace
}  // namespace pipeprune::bench

int main(int argc, char** argv) {
  using namespace pipeprune;
  try {
    const auto args = bench::parse_args(argc, argv);
    bench::configure_threads();
    const ModelConfig config = ModelConfig::from_file(args.at("--model"));
    const int reps = args.count("--reps") ? std::stoi(args.at("--reps")) : 5;
    const int64_t batch = args.count("--batch") ? std::stoll(args.at("--batch")) : 1;
    const nlohmann::json result =
        bench::probe(config, std::stoll(args.at("--tokens")), std::max<int64_t>(1, batch), std::max(1, reps));
    write_file_atomic(args.at("--output"), result.dump(2) + "\n");
    std::printf("gemm_probe: GEMM %.1f GFLOP/s, isolated layer forward %.1f GFLOP/s (%lld tokens, %d threads)\n",
                result["gemm_layer_gflops"].get<double>(), result["isolated_forward_gflops"].get<double>(),
                static_cast<long long>(result["tokens"].get<int64_t>()), result["threads"].get<int>());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
