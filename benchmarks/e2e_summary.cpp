// e2e_summary: turns the --report JSON of each prune run and gemm_probe's yardsticks into one
// summary JSON and the markdown tables of docs/performance.md (benchmarks/run_e2e.sh).
//
//   e2e_summary [--model DIR] --probe probe.json --report METHOD=report.json [--report ...]
//               [--info KEY=VALUE ...] --json summary.json --markdown tables.md
//
// Forward rate of a pass = (layers x samples x FLOPs of one sequence through one layer) / the
// pass's seconds, FLOPs counted as gemm_probe counts them (bench_util.h layer_forward_flops).
// Mask time of a linear = the report's seconds_mask averaged over layers, next to one
// read+write pass over a matrix of the same shape.
#include <cmath>
#include <cstdio>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/common/error.h"
#include "core/common/files.h"
#include "core/model/layer_weights.h"
#include "core/model/synthetic_model.h"

namespace pipeprune::bench {
namespace {

using nlohmann::json;

constexpr double kForwardTarget = 0.60;   // forward >= 60% of the GEMM rate
constexpr double kWandaMaskTarget = 3.0;  // Wanda mask <= 3x a read+write pass

struct Args {
  std::string model, probe, json_out, markdown_out;
  std::vector<std::pair<std::string, std::string>> reports;  // method, path
  json info = json::object();
};

std::pair<std::string, std::string> split_pair(const std::string& text, const char* flag) {
  const size_t eq = text.find('=');
  PIPEPRUNE_CHECK(eq != std::string::npos && eq > 0, ConfigError, "e2e_summary: " << flag << " needs KEY=VALUE, got '" << text << "'");
  return {text.substr(0, eq), text.substr(eq + 1)};
}

Args parse_args(int argc, char** argv) {
  Args args;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--model") args.model = value;
    else if (key == "--probe") args.probe = value;
    else if (key == "--json") args.json_out = value;
    else if (key == "--markdown") args.markdown_out = value;
    else if (key == "--report") args.reports.push_back(split_pair(value, "--report"));
    else if (key == "--info") args.info[split_pair(value, "--info").first] = split_pair(value, "--info").second;
    else PIPEPRUNE_FAIL(ConfigError, "e2e_summary: unknown option " << key);
  }
  PIPEPRUNE_CHECK(!args.probe.empty() && !args.json_out.empty() && !args.markdown_out.empty() && !args.reports.empty(),
                  ConfigError, "e2e_summary: need --probe, --report METHOD=F.json, --json and --markdown");
  return args;
}

// Multiply-adds (x2) of the SparseGPT statistics of one sequence: H += x^T x for each of the
// seven linears, as a full [cols, tokens] x [tokens, cols] product (what add_hessian_batch runs).
double hessian_flops(const json& probe, int64_t tokens) {
  double flops = 0;
  for (const auto& [name, linear] : probe.at("linears").items()) {
    const double cols = linear.at("shape")[1].get<double>();
    flops += 2.0 * static_cast<double>(tokens) * cols * cols;
  }
  return flops;
}

json summarize_method(const std::string& label, const json& report, const json& probe) {
  const std::string method = report.at("method").get<std::string>();
  const auto& layers = report.at("layers");
  const double n_layers = static_cast<double>(layers.size());
  const int64_t nsamples = report.at("nsamples").get<int64_t>();
  const int64_t seqlen = report.at("seqlen").get<int64_t>();
  PIPEPRUNE_CHECK(layers.size() > 0, FormatError, "e2e_summary: the " << method << " report has no layers");
  double stats = 0, prune = 0, output = 0;
  // The model's last layer has no output pass (nothing consumes its outputs): rates count
  // only the layers whose pass ran.
  double stats_layers = 0, output_layers = 0;
  json mask = json::object();
  for (const auto& layer : layers) {
    stats += layer.at("seconds_stats").get<double>();
    prune += layer.at("seconds_prune").get<double>();
    output += layer.at("seconds_output").get<double>();
    stats_layers += layer.at("seconds_stats").get<double>() > 0 ? 1 : 0;
    output_layers += layer.at("seconds_output").get<double>() > 0 ? 1 : 0;
    for (const auto& [name, linear] : layer.at("linears").items()) {
      mask[name] = mask.value(name, 0.0) + linear.at("seconds_mask").get<double>() / n_layers;
    }
  }
  const double output_per_layer = output_layers > 0 ? output / output_layers : 0.0;
  json out = {{"label", label},
              {"method", method},
              {"pattern", report.at("pattern")},
              {"sparsity", report.at("overall_sparsity")},
              {"nsamples", nsamples},
              {"seqlen", seqlen},
              {"layers", layers.size()},
              {"seconds_total", report.at("seconds_total")},
              {"seconds_per_layer", {{"stats", stats / n_layers}, {"prune", prune / n_layers}, {"output", output_per_layer}}},
              {"mask_seconds_mean", mask}};
  // The rank with the highest measured peak, and the memory plan's estimate for that rank
  // (reports written before the estimator existed have none).
  int64_t peak = 0;
  json estimate = nullptr;
  for (const auto& rank : report.at("ranks")) {
    const int64_t rss = rank.at("peak_rss_bytes").get<int64_t>();
    if (rss < peak) continue;
    peak = rss;
    estimate = rank.contains("estimated_peak_bytes") ? rank.at("estimated_peak_bytes") : json(nullptr);
  }
  out["peak_rss_bytes"] = peak;
  out["peak_estimate_bytes"] = estimate;
  // FLOPs of the passes that ran (magnitude runs none).
  const bool same_tokens = probe.at("tokens").get<int64_t>() == seqlen;
  const double sample_flops = static_cast<double>(nsamples) * probe.at("layer_forward_flops").get<double>();
  const double gemm = probe.at("gemm_layer_gflops").get<double>();
  for (const auto& [pass, seconds, n] : {std::tuple<const char*, double, double>{"stats", stats, stats_layers},
                                         {"output", output, output_layers}}) {
    if (seconds <= 0 || !same_tokens || nsamples == 0) continue;
    const double gflops = n * sample_flops / seconds * 1e-9;
    out["forward"][pass] = {{"gflops", gflops}, {"fraction_of_gemm", gflops / gemm}};
  }
  if (method == "sparsegpt" && stats > 0 && same_tokens) {
    // The stats pass also runs the Hessian updates: their FLOPs counted in, the pass's
    // arithmetic rate (not forward work) against the GEMM rate.
    const double all = stats_layers * static_cast<double>(nsamples) *
                       (probe.at("layer_forward_flops").get<double>() + hessian_flops(probe, seqlen));
    out["forward"]["stats_with_hessian"] = {{"gflops", all / stats * 1e-9}, {"fraction_of_gemm", all / stats * 1e-9 / gemm}};
  }
  return out;
}

// The run's settings and machine, from the --info keys run_e2e.sh passes.
std::string run_lines(const json& info) {
  auto get = [&](const char* key) { return info.value(key, std::string("?")); };
  std::string md;
  md += fmt::format("- Machine: {}, {} cores, {} RAM, BLAS {}; load average {} at the start, {} at the end.\n",
                    get("cpu"), get("cores"), get("memory"), get("blas"), get("load_average_start"),
                    get("load_average_end"));
  md += fmt::format("- Model: `synth --shape {} --layers {} --dtype {}` ({:.3f}B parameters), written in {} s.\n",
                    get("shape"), get("layers"), get("dtype"), info.value("parameters", int64_t{0}) * 1e-9,
                    get("synth_seconds"));
  md += fmt::format("- Calibration: {} random windows of {} tokens (`--calib-tokens`), sparsity 0.5 unstructured, "
                    "1 rank, fp32 compute, all cores.\n", get("nsamples"), get("seqlen"));
  md += fmt::format("- Whole script: {} s (commit {}, {}); other processes used {} CPU-seconds meanwhile (of {} "
                    "available). OMP_WAIT_POLICY in the environment: {} (pipeprune then runs with PASSIVE "
                    "unless a row says \"OMP spin\"; gemm_probe's yardsticks: PASSIVE). Raw numbers: "
                    "`docs/performance.json`.\n",
                    get("script_seconds"), get("commit"), get("date"), get("other_cpu_seconds"),
                    fmt::format("{:.0f}", std::stod(info.value("script_seconds", std::string("0"))) *
                                              std::stod(info.value("cores", std::string("1")))),
                    get("omp_wait_policy"));
  return md;
}

std::string gb(int64_t bytes) { return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1 << 30)); }

std::string phase_table(const json& methods) {
  std::string md =
      "| method | layers | stats s/layer | prune s/layer | output s/layer | job total s | sparsity | peak RSS | estimate |\n"
      "|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& m : methods) {
    const auto& s = m.at("seconds_per_layer");
    const json& estimate = m.at("peak_estimate_bytes");
    const int64_t peak = m.at("peak_rss_bytes").get<int64_t>();
    const std::string estimated =
        estimate.is_number() ? fmt::format("{} (measured {:.0f}%)", gb(estimate.get<int64_t>()),
                                           100.0 * static_cast<double>(peak) / estimate.get<double>())
                             : "n/a";
    md += fmt::format("| {} {} | {} | {:.2f} | {:.2f} | {:.2f} | {:.1f} | {:.4f} | {} | {} |\n", m.at("label").get<std::string>(),
                      m.at("pattern").get<std::string>(), m.at("layers").get<int>(), s.at("stats").get<double>(),
                      s.at("prune").get<double>(), s.at("output").get<double>(), m.at("seconds_total").get<double>(),
                      m.at("sparsity").get<double>(), gb(peak), estimated);
  }
  return md;
}

std::string forward_table(const json& methods, const json& probe) {
  const double gemm = probe.at("gemm_layer_gflops").get<double>();
  std::string md = fmt::format(
      "| forward | GFLOP/s | GEMM GFLOP/s (same run) | fraction of GEMM | target >= {:.0f}% |\n|---|---|---|---|---|\n",
      kForwardTarget * 100);
  auto row = [&](const std::string& name, double gflops, bool judged = true) {
    // Truncated, not rounded: 59.96% must not print as a "60%" that missed the target.
    md += fmt::format("| {} | {:.1f} | {:.1f} | {:.1f}% | {} |\n", name, gflops, gemm, std::floor(1000 * gflops / gemm) / 10,
                      !judged ? "(yardstick)" : gflops / gemm >= kForwardTarget ? "met" : "missed");
  };
  row("isolated layer forward (gemm_probe)", probe.at("isolated_forward_gflops").get<double>());
  if (probe.contains("options")) {
    const json& o = probe.at("options");
    row(fmt::format("GEMMs of all {} samples at once (batched)", o.at("batch").get<int64_t>()),
        o.at("batched_gemm_layer_gflops").get<double>(), false);
  }
  for (const auto& m : methods) {
    if (!m.contains("forward")) continue;
    for (const auto& [pass, f] : m.at("forward").items()) {
      const bool judged = pass != "stats_with_hessian";
      const std::string name = judged ? fmt::format("{} {} pass", m.at("label").get<std::string>(), pass)
                                      : fmt::format("{} stats pass counting the Hessian updates", m.at("label").get<std::string>());
      row(name, f.at("gflops").get<double>(), judged);
    }
  }
  return md;
}

std::string options_line(const json& probe) {
  if (!probe.contains("options")) return "";
  const json& o = probe.at("options");
  return fmt::format("\nFused GEMMs (same run): q/k/v as one GEMM {:.2f}x the speed of three, gate/up as one {:.2f}x "
                     "the speed of two.\n",
                     o.at("fused_qkv_speedup").get<double>(), o.at("fused_gate_up_speedup").get<double>());
}

std::string mask_table(const json& methods, const json& probe) {
  std::string md = "| linear | shape | read+write pass ms |";
  std::string rule = "|---|---|---|";
  for (const auto& m : methods) {
    md += fmt::format(" {} mask ms (x pass) |", m.at("label").get<std::string>());
    rule += "---|";
  }
  md += "\n" + rule + "\n";
  for (LinearKind kind : kAllLinears) {
    const std::string name = linear_short_name(kind);
    const auto& p = probe.at("linears").at(name);
    const double rw = p.at("read_write_pass_seconds").get<double>();
    md += fmt::format("| {} | {}x{} | {:.1f} |", name, p.at("shape")[0].get<int64_t>(), p.at("shape")[1].get<int64_t>(), rw * 1e3);
    for (const auto& m : methods) {
      const double t = m.at("mask_seconds_mean").value(name, 0.0);
      const bool wanda = m.at("method") == "wanda";
      md += fmt::format(" {:.1f} ({:.1f}x{}) |", t * 1e3, t / rw,
                        wanda ? (t / rw <= kWandaMaskTarget ? ", met" : ", missed") : "");
    }
    md += "\n";
  }
  return md;
}

}  // namespace
}  // namespace pipeprune::bench

int main(int argc, char** argv) {
  using namespace pipeprune;
  using nlohmann::json;
  try {
    const bench::Args args = bench::parse_args(argc, argv);
    const json probe = read_json_file(args.probe);
    json methods = json::array();
    for (const auto& [method, path] : args.reports) methods.push_back(bench::summarize_method(method, read_json_file(path), probe));
    json info = args.info;
    if (!args.model.empty()) info["parameters"] = count_parameters(ModelConfig::from_file(args.model));
    const json summary = {{"run", info}, {"probe", probe}, {"methods", methods}};
    write_file_atomic(args.json_out, summary.dump(2) + "\n");
    const std::string md = bench::run_lines(info) + "\n### Seconds per phase and peak memory\n\n" + bench::phase_table(methods) +
                           "\n### Forward passes against the GEMM rate\n\n" + bench::forward_table(methods, probe) + bench::options_line(probe) +
                           "\n### Mask time per linear (mean over layers) against one read+write pass\n\n" +
                           bench::mask_table(methods, probe);
    write_file_atomic(args.markdown_out, md);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
