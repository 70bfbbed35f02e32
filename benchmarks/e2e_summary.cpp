// e2e_summary: turns the --report JSON of each prune run and gemm_probe's yardsticks into one
// summary JSON and the markdown tables of docs/performance.md (benchmarks/run_e2e.sh).
//
//   e2e_summary [--model DIR] --probe probe.json --report LABEL=report.json [--report ...]
//               [--reference LABEL=reference.json ...] [--wall LABEL=SECONDS ...] [--info KEY=VALUE ...]
//               --json summary.json --markdown tables.md
//
// --reference attaches the published loop's run of the same job (benchmarks/reference_loop.py's
// summary) to the row LABEL: the ratio of the two processes' wall times (--wall: pipeprune's,
// measured by the caller from start to exit, as the reference's runs from its start to its end)
// against issue 14's targets, the peak RSS of each, and how far the masks agree.
//
// Forward rate of a pass = (layers x samples x FLOPs of one sequence through one layer) / the
// pass's seconds, FLOPs counted as gemm_probe counts them (bench_util.h layer_forward_flops).
// Mask time of a linear = the report's seconds_mask averaged over layers, next to one
// read+write pass over a matrix of the same shape.
//
// Reports of several ranks (world_size > 1) list every layer with the rank that pruned it and
// the memory of each rank. Their per-layer figures are those of one rank with its share of the
// cores (--info cores and omp_num_threads give the share, as pipeprune computes it), so they are
// shown but not judged against the targets; the job total is compared with the 1-rank row of
// the same label without the ", N ranks" suffix (run_e2e.sh labels rows that way).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
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

// Issue 14's targets.
constexpr double kForwardTarget = 0.80;    // forward >= 80% of the GEMM rate
constexpr double kWandaMaskTarget = 5.0;   // Wanda mask <= 5x a read+write pass
constexpr double kSweepTarget = 2.0;       // SparseGPT prune phase <= 2x its FLOPs at the GEMM rate

// Wall time of the published loop / pipeprune's, at least this (none for magnitude).
double speedup_target(const std::string& method) {
  if (method == "wanda") return 2.0;
  if (method == "sparsegpt") return 3.0;
  return 0.0;
}

struct Args {
  std::string model, probe, json_out, markdown_out;
  std::vector<std::pair<std::string, std::string>> reports;     // label, path
  std::vector<std::pair<std::string, std::string>> references;  // label, path
  json walls = json::object();                                  // label -> seconds
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
    else if (key == "--reference") args.references.push_back(split_pair(value, "--reference"));
    else if (key == "--wall") args.walls[split_pair(value, "--wall").first] = std::stod(split_pair(value, "--wall").second);
    else if (key == "--info") args.info[split_pair(value, "--info").first] = split_pair(value, "--info").second;
    else PIPEPRUNE_FAIL(ConfigError, "e2e_summary: unknown option " << key);
  }
  PIPEPRUNE_CHECK(!args.probe.empty() && !args.json_out.empty() && !args.markdown_out.empty() && !args.reports.empty(),
                  ConfigError, "e2e_summary: need --probe, --report METHOD=F.json, --json and --markdown");
  return args;
}

// Multiply-adds (x2) of the SparseGPT statistics of one sequence: H += x^T x for each distinct
// linear input (q/k/v share one, gate/up another: core/prune/layer_pruner.cpp), as a full
// [cols, tokens] x [tokens, cols] product (what add_hessian_batch runs).
double hessian_flops(const json& probe, int64_t tokens) {
  double flops = 0;
  for (const auto& [name, linear] : probe.at("linears").items()) {
    if (name == "k" || name == "v" || name == "up") continue;
    const double cols = linear.at("shape")[1].get<double>();
    flops += 2.0 * static_cast<double>(tokens) * cols * cols;
  }
  return flops;
}

// FLOPs of SparseGPT's prune phase for one layer, as pipeprune runs it: per distinct Hessian
// (as above) dead columns, damping and H^-1's upper factor, cholesky(cholesky_inverse(
// cholesky(H))), counted as c^3/3 + 2c^3/3 + c^3/3 multiply-adds; per linear the column sweep
// in blocks of 128: inside a block, column i updates the block's later columns of every row,
// and after it the lazy update of all later columns (rows x 128 x remaining, a GEMM).
double sparsegpt_prune_flops(const json& probe) {
  constexpr int64_t kBlock = 128;
  double flops = 0;
  for (const auto& [name, linear] : probe.at("linears").items()) {
    const double rows = linear.at("shape")[0].get<double>();
    const int64_t cols = linear.at("shape")[1].get<int64_t>();
    if (name != "k" && name != "v" && name != "up") {
      const double c = static_cast<double>(cols);
      flops += 2.0 * (4.0 / 3.0) * c * c * c;
    }
    for (int64_t i1 = 0; i1 < cols; i1 += kBlock) {
      const int64_t i2 = std::min(i1 + kBlock, cols);
      const double width = static_cast<double>(i2 - i1);
      flops += 2.0 * rows * width * (width + 1) / 2;                          // in-block updates
      flops += 2.0 * rows * width * static_cast<double>(cols - i2);          // lazy update
    }
  }
  return flops;
}

// Compute threads of each rank as pipeprune picks them (launch/common_options.cpp): OMP_NUM_THREADS
// when set, else the rank's share of the node's cores (all ranks of these runs share one node).
// Null when the caller did not say how many cores there are.
json threads_per_rank(const json& info, int64_t world_size) {
  if (!info.contains("cores")) return nullptr;
  const std::string omp = info.value("omp_num_threads", std::string("unset"));
  if (omp != "unset" && std::atoi(omp.c_str()) > 0) return std::atoi(omp.c_str());
  return std::max<int64_t>(1, std::stoll(info.at("cores").get<std::string>()) / std::max<int64_t>(1, world_size));
}

json summarize_method(const std::string& label, const json& report, const json& probe, const json& info) {
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
  // Reports from before pipelines existed have no world_size: one rank.
  const int64_t world_size = report.value("world_size", int64_t{1});
  out["world_size"] = world_size;
  out["calibration"] = report.value("calibration", std::string("sequential"));
  out["threads_per_rank"] = threads_per_rank(info, world_size);
  // The rank with the highest measured peak, and the memory plan's estimate for that rank
  // (reports written before the estimator existed have none); and every rank's own figures.
  int64_t peak = 0;
  json estimate = nullptr;
  json ranks = json::array();
  for (const auto& rank : report.at("ranks")) {
    const int64_t rss = rank.at("peak_rss_bytes").get<int64_t>();
    const json rank_estimate = rank.contains("estimated_peak_bytes") ? rank.at("estimated_peak_bytes") : json(nullptr);
    // "layers" of a rank is its half-open range [first, end).
    const json range = rank.value("layers", json::array());
    const int64_t owned = range.size() == 2 ? range[1].get<int64_t>() - range[0].get<int64_t>() : 0;
    ranks.push_back({{"rank", rank.value("rank", int64_t{0})},
                     {"layers", owned},
                     {"peak_rss_bytes", rss},
                     {"estimated_peak_bytes", rank_estimate}});
    if (rss < peak) continue;
    peak = rss;
    estimate = rank_estimate;
  }
  PIPEPRUNE_CHECK(static_cast<int64_t>(ranks.size()) == world_size, FormatError,
                  "e2e_summary: the " << label << " report has world_size " << world_size << " but memory of "
                                      << ranks.size() << " rank(s)");
  out["peak_rss_bytes"] = peak;
  out["peak_estimate_bytes"] = estimate;
  out["ranks"] = ranks;
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
  if (method == "sparsegpt" && prune > 0) {
    const double flops = sparsegpt_prune_flops(probe);
    const double at_gemm = flops / (gemm * 1e9);
    out["prune_phase"] = {{"gflops_per_layer", flops * 1e-9},
                          {"seconds_per_layer", prune / n_layers},
                          {"seconds_at_gemm_rate", at_gemm},
                          {"times_gemm_rate", prune / n_layers / at_gemm}};
  }
  return out;
}

bool multi_rank(const json& m) { return m.at("world_size").get<int64_t>() > 1; }

// The published loop's run of a row's job (benchmarks/reference_loop.py), attached to the row.
void add_reference(json& methods, const std::string& label, const json& reference, const json& walls) {
  for (auto& m : methods) {
    if (m.at("label") != label) continue;
    PIPEPRUNE_CHECK(!multi_rank(m), ConfigError, "e2e_summary: --reference " << label << " names a multi-rank row");
    PIPEPRUNE_CHECK(walls.contains(label), ConfigError,
                    "e2e_summary: --reference " << label << " needs --wall " << label << "=SECONDS (pipeprune's process)");
    // Magnitude reads no calibration: its report says 0 samples.
    for (const char* key : {"method", "nsamples", "seqlen"}) {
      if (m.at("method") == "magnitude" && std::string(key) != "method") continue;
      PIPEPRUNE_CHECK(reference.at(key) == m.at(key), ConfigError,
                      "e2e_summary: --reference " << label << " ran " << key << " " << reference.at(key).dump()
                                                  << ", the row " << m.at(key).dump());
    }
    const double seconds = reference.at("seconds_total").get<double>();
    m["reference"] = {{"seconds_total", seconds},
                      {"seconds_loop", reference.at("seconds_loop")},
                      {"peak_rss_bytes", reference.at("peak_rss_bytes")},
                      {"threads", reference.at("threads")},
                      {"torch", reference.at("torch")},
                      {"compared", reference.value("compared", json::object())}};
    m["process_seconds"] = walls.at(label);
    m["speedup_vs_reference"] = seconds / walls.at(label).get<double>();
    return;
  }
  PIPEPRUNE_FAIL(ConfigError, "e2e_summary: --reference " << label << " names no --report row");
}

// Each multi-rank row against its 1-rank counterpart: the row labelled like it without the
// ", N ranks" suffix, with the same method and workload (else the comparison would mislead).
void add_speedups(json& methods) {
  for (auto& m : methods) {
    if (!multi_rank(m)) continue;
    const std::string label = m.at("label").get<std::string>();
    const std::string suffix = fmt::format(", {} ranks", m.at("world_size").get<int64_t>());
    if (label.size() <= suffix.size() || label.compare(label.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const std::string base_label = label.substr(0, label.size() - suffix.size());
    for (const auto& base : methods) {
      if (multi_rank(base) || base.at("label") != base_label) continue;
      bool same = true;
      for (const char* key : {"method", "pattern", "nsamples", "seqlen", "layers"}) same = same && base.at(key) == m.at(key);
      if (!same) continue;
      m["baseline_label"] = base_label;
      m["speedup_vs_1_rank"] = base.at("seconds_total").get<double>() / m.at("seconds_total").get<double>();
    }
  }
}

// The run's settings and machine, from the --info keys run_e2e.sh passes.
std::string run_lines(const json& info, const json& methods) {
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
  // One line per world size above 1, from its first row (run_e2e.sh runs them all alike).
  std::vector<int64_t> described;
  for (const auto& m : methods) {
    const int64_t world = m.at("world_size").get<int64_t>();
    if (world == 1 || std::find(described.begin(), described.end(), world) != described.end()) continue;
    described.push_back(world);
    std::string split;
    for (const auto& rank : m.at("ranks")) split += fmt::format("{}{}", split.empty() ? "" : " + ", rank.at("layers").get<int64_t>());
    const json& threads = m.at("threads_per_rank");
    const std::string share =
        threads.is_number()
            ? fmt::format("{} compute thread{} per rank ({})", threads.get<int64_t>(), threads.get<int64_t>() == 1 ? "" : "s",
                          std::atoi(get("omp_num_threads").c_str()) > 0
                              ? std::string("OMP_NUM_THREADS")
                              : fmt::format("pipeprune's default: its share of the {} cores", get("cores")))
                            : std::string("pipeprune's default threads per rank (its share of the cores)");
    const std::string overlap =
        m.at("calibration") == "dense"
            ? "every stage runs its layers on each sample as it arrives, so the ranks compute at the same time"
            : "a stage starts once the previous one has sent the outputs of its last layer for all samples, so "
              "the ranks compute one after the other, except magnitude's, which need no activations";
    md += fmt::format("- Rows marked \"{} ranks\": the same prune under `mpirun -np {}` on this machine, the layers in "
                      "{} pipeline stages ({}), {}; `--calibration {}`: {}. Their per-layer seconds, forward rates "
                      "and mask times are one rank's on its share of the cores, so they are not judged against "
                      "the targets; job totals are rank 0's `seconds_total` (both ranks done, mpirun's start-up "
                      "not counted).\n",
                      world, world, world, split, share, m.at("calibration").get<std::string>(), overlap);
  }
  for (const auto& m : methods) {
    if (!m.contains("reference")) continue;
    const json& r = m.at("reference");
    md += fmt::format("- Reference: `benchmarks/reference_loop.py`, the published loops (locuslab/wanda `prune_magnitude` "
                      "and `prune_wanda`, IST-DASLab/sparsegpt `llama_sequential`) on transformers' LlamaForCausalLM in "
                      "the stored dtype, each layer computed in fp32, torch {} ({} threads), in its own process after "
                      "pipeprune's. Both columns are process wall times (pipeprune's includes writing the pruned "
                      "model, which the reference loop does not do); in brackets each tool's own timer of its job "
                      "(pipeprune's report `seconds_total`, the reference's loop after loading). Masks are compared "
                      "after the timing.\n",
                      r.at("torch").get<std::string>(), r.at("threads").dump());
    break;
  }
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

std::string estimate_cell(int64_t peak, const json& estimate) {
  return estimate.is_number() ? fmt::format("{} (measured {:.0f}%)", gb(estimate.get<int64_t>()),
                                            100.0 * static_cast<double>(peak) / estimate.get<double>())
                              : "n/a";
}

std::string phase_table(const json& methods) {
  std::string md =
      "| method | layers | stats s/layer | prune s/layer | output s/layer | job total s | sparsity | peak RSS | estimate |\n"
      "|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& m : methods) {
    const auto& s = m.at("seconds_per_layer");
    std::string layers = fmt::format("{}", m.at("layers").get<int>());
    std::string peak = gb(m.at("peak_rss_bytes").get<int64_t>());
    std::string estimated = estimate_cell(m.at("peak_rss_bytes").get<int64_t>(), m.at("peak_estimate_bytes"));
    if (multi_rank(m)) {
      // Each rank's layers, peak and estimate, in rank order: the job's peak is per process.
      std::string split;
      peak.clear();
      estimated.clear();
      for (const auto& rank : m.at("ranks")) {
        const int64_t rss = rank.at("peak_rss_bytes").get<int64_t>();
        const std::string sep = split.empty() ? "" : ", ";
        split += fmt::format("{}{}", split.empty() ? "" : " + ", rank.at("layers").get<int64_t>());
        peak += sep + gb(rss);
        estimated += sep + estimate_cell(rss, rank.at("estimated_peak_bytes"));
      }
      layers += " (" + split + ")";
    }
    md += fmt::format("| {} {} | {} | {:.2f} | {:.2f} | {:.2f} | {:.1f} | {:.4f} | {} | {} |\n", m.at("label").get<std::string>(),
                      m.at("pattern").get<std::string>(), layers, s.at("stats").get<double>(),
                      s.at("prune").get<double>(), s.at("output").get<double>(), m.at("seconds_total").get<double>(),
                      m.at("sparsity").get<double>(), peak, estimated);
  }
  // Below the table, so that the 1-rank rows keep their columns: what the multi-rank cells mean
  // and each multi-rank job total against its 1-rank row.
  std::string compared;
  bool any = false;
  for (const auto& m : methods) {
    if (!multi_rank(m)) continue;
    any = true;
    const std::string label = m.at("label").get<std::string>();
    if (!m.contains("speedup_vs_1_rank")) {
      compared += fmt::format("{}{}: no 1-rank row to compare", compared.empty() ? "" : "; ", label);
      continue;
    }
    const double seconds = m.at("seconds_total").get<double>();
    const double speedup = m.at("speedup_vs_1_rank").get<double>();
    compared += fmt::format("{}{} {:.2f}x ({:.1f} s with 1 rank, {:.1f} s with {})", compared.empty() ? "" : "; ",
                            m.at("baseline_label").get<std::string>(), speedup, speedup * seconds, seconds,
                            label.substr(m.at("baseline_label").get<std::string>().size() + 2));
  }
  if (any) {
    md += "\nRows with several ranks: layers per rank in brackets; peak RSS and estimate of each rank, in rank "
          "order. Job total against the 1-rank row of the same method (1-rank seconds / multi-rank seconds; "
          "above 1 is faster): " + compared + ".\n";
  }
  return md;
}

std::string forward_table(const json& methods, const json& probe) {
  const double gemm = probe.at("gemm_layer_gflops").get<double>();
  std::string md = fmt::format(
      "| forward | GFLOP/s | GEMM GFLOP/s (same run) | fraction of GEMM | target >= {:.0f}% |\n|---|---|---|---|---|\n",
      kForwardTarget * 100);
  // An empty note judges the row against the target; otherwise the note says why it is not.
  auto row = [&](const std::string& name, double gflops, const std::string& note = "") {
    // Truncated, not rounded: 59.96% must not print as a "60%" that missed the target.
    md += fmt::format("| {} | {:.1f} | {:.1f} | {:.1f}% | {} |\n", name, gflops, gemm, std::floor(1000 * gflops / gemm) / 10,
                      !note.empty() ? note : gflops / gemm >= kForwardTarget ? "met" : "missed");
  };
  row("isolated layer forward (gemm_probe)", probe.at("isolated_forward_gflops").get<double>());
  if (probe.contains("options")) {
    const json& o = probe.at("options");
    row(fmt::format("GEMMs of all {} samples at once (batched)", o.at("batch").get<int64_t>()),
        o.at("batched_gemm_layer_gflops").get<double>(), "(yardstick)");
  }
  for (const auto& m : methods) {
    if (!m.contains("forward")) continue;
    // A multi-rank pass's rate is one rank's (its layers' FLOPs over its layers' seconds), on
    // that rank's share of the cores, while the GEMM rate uses all of them: shown, not judged.
    const json& threads = m.at("threads_per_rank");
    const std::string per_rank =
        !multi_rank(m) ? ""
        : threads.is_number() ? fmt::format("(one rank, {} thread{})", threads.get<int64_t>(), threads.get<int64_t>() == 1 ? "" : "s")
                              : "(one rank)";
    for (const auto& [pass, f] : m.at("forward").items()) {
      const bool judged = pass != "stats_with_hessian";
      const std::string name = judged ? fmt::format("{} {} pass", m.at("label").get<std::string>(), pass)
                                      : fmt::format("{} stats pass counting the Hessian updates", m.at("label").get<std::string>());
      row(name, f.at("gflops").get<double>(), !judged ? "(yardstick)" : per_rank);
    }
  }
  return md;
}

// Each row with a reference run: both wall times, the ratio against the method's target, both
// peaks, and the masks' agreement with each pipeprune build the reference was compared with.
std::string reference_table(const json& methods) {
  std::string md =
      "| method | pipeprune s (its job alone) | reference s (its loop alone) | reference / pipeprune | target | pipeprune peak RSS | "
      "reference peak RSS | masks agree, largest kept-weight difference |\n|---|---|---|---|---|---|---|---|\n";
  bool any = false;
  for (const auto& m : methods) {
    if (!m.contains("reference")) continue;
    any = true;
    const json& r = m.at("reference");
    const double ratio = m.at("speedup_vs_reference").get<double>();
    const double target = speedup_target(m.at("method").get<std::string>());
    std::string agreement;
    for (const auto& [build, c] : r.at("compared").items()) {
      agreement += fmt::format("{}{}: {:.6f}, {:.3g}", agreement.empty() ? "" : "; ", build,
                               c.at("mask_agreement").get<double>(), c.at("kept_weight_difference").get<double>());
    }
    md += fmt::format("| {} | {:.1f} ({:.1f}) | {:.1f} ({:.1f}) | {:.2f}x | {} | {} | {} | {} |\n",
                      m.at("label").get<std::string>(), m.at("process_seconds").get<double>(),
                      m.at("seconds_total").get<double>(), r.at("seconds_total").get<double>(),
                      r.at("seconds_loop").get<double>(), ratio,
                      target > 0 ? fmt::format(">= {:.1f}x, {}", target, ratio >= target ? "met" : "missed") : "none",
                      gb(m.at("peak_rss_bytes").get<int64_t>()), gb(r.at("peak_rss_bytes").get<int64_t>()),
                      agreement.empty() ? "not compared" : agreement);
  }
  return any ? md : "";
}

std::string prune_phase_lines(const json& methods) {
  std::string md;
  for (const auto& m : methods) {
    if (!m.contains("prune_phase") || multi_rank(m)) continue;
    const json& p = m.at("prune_phase");
    const double times = p.at("times_gemm_rate").get<double>();
    md += fmt::format("\n{}: prune phase {:.2f} s per layer for {:.0f} GFLOP (H^-1 factors and column sweeps, "
                      "`sparsegpt_prune_flops`), {:.2f} s at the GEMM rate: {:.1f}x (target <= {:.0f}x, {}).\n",
                      m.at("label").get<std::string>(), p.at("seconds_per_layer").get<double>(),
                      p.at("gflops_per_layer").get<double>(), p.at("seconds_at_gemm_rate").get<double>(), times,
                      kSweepTarget, times <= kSweepTarget ? "met" : "missed");
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
      // Judged on 1-rank columns only: a multi-rank column is one rank on its share of the cores.
      const bool wanda = m.at("method") == "wanda" && !multi_rank(m);
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
    json info = args.info;
    for (const auto& [label, path] : args.reports) {
      methods.push_back(bench::summarize_method(label, read_json_file(path), probe, info));
    }
    bench::add_speedups(methods);
    for (const auto& [label, path] : args.references) bench::add_reference(methods, label, read_json_file(path), args.walls);
    if (!args.model.empty()) info["parameters"] = count_parameters(ModelConfig::from_file(args.model));
    const json summary = {{"run", info}, {"probe", probe}, {"methods", methods}};
    write_file_atomic(args.json_out, summary.dump(2) + "\n");
    const std::string references = bench::reference_table(methods);
    const std::string md = bench::run_lines(info, methods) +
                           (references.empty() ? "" : "\n### Against the published loop (same job, same run)\n\n" + references) +
                           "\n### Seconds per phase and peak memory\n\n" + bench::phase_table(methods) +
                           "\n### Forward passes against the GEMM rate\n\n" + bench::forward_table(methods, probe) +
                           bench::options_line(probe) + bench::prune_phase_lines(methods) +
                           "\n### Mask time per linear (mean over layers) against one read+write pass\n\n" +
                           bench::mask_table(methods, probe);
    write_file_atomic(args.markdown_out, md);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
