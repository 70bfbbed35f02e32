// The pipeprune entry point: parses the command line, runs one subcommand, and turns any
// failure into one error line and a non-zero exit. Under mpirun, a failing rank removes its
// temporary outputs and aborts the whole job so the other ranks never wait forever.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <string>

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>

#include "core/common/error.h"
#include "core/common/large_page_allocator.h"
#include "core/common/log.h"
#include "dist/abort_cleanup.h"
#include "launch/commands.h"
#include "launch/config_file.h"
#include "launch/common_options.h"

namespace {

int fail(const std::string& message) {
  pipeprune::log::error("{}", message);
  pipeprune::run_abort_cleanup();
  pipeprune::Transport* transport = pipeprune::current_transport();
  if (transport != nullptr && transport->size() > 1) transport->abort(1);
  return 1;
}

}  // namespace

// libgomp reads OMP_WAIT_POLICY once, when it is loaded, before main() runs. Its default
// (spin after each parallel region) next to OpenBLAS's own spinning pthreads makes small ATen
// operations wait for a scheduler slice whenever the cores are shared: measured here, a
// 512K-float multiply after a GEMM took 5-8 ms instead of 0.2 ms and SparseGPT's prune phase
// 13.3 s per layer instead of 9.5 s (docs/performance.md). So, unless the user chose a policy,
// the process re-executes itself once with PASSIVE; the pid stays the same, so mpirun and srun
// do not notice, and nothing has been initialised yet.
void ensure_passive_wait_policy(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);
  // execv failed (no /proc): carry on with the default policy.
}

int main(int argc, char** argv) {
  ensure_passive_wait_policy(argv);
  CLI::App app{"pipeprune: one-shot pruning (magnitude, Wanda, SparseGPT) of Llama-family models,\n"
               "on one CPU, one GPU, or a pipeline of ranks under mpirun"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "pipeprune 0.1.0");
  std::map<std::string, pipeprune::CommandRunner> runners;
  runners["prune"] = pipeprune::add_prune_command(app);
  runners["eval"] = pipeprune::add_eval_command(app);
  runners["generate"] = pipeprune::add_generate_command(app);
  runners["plan"] = pipeprune::add_plan_command(app);
  runners["estimate"] = pipeprune::add_estimate_command(app);
  runners["synth"] = pipeprune::add_synth_command(app);
  runners["tokenize"] = pipeprune::add_tokenize_command(app);
  runners["merge"] = pipeprune::add_merge_command(app);
  runners["report"] = pipeprune::add_report_command(app);
  try {
    // Large tensors go back to the system when freed, those of 4 MiB and more in transparent
    // huge pages (core/common/large_page_allocator.h). Before parsing, which makes no tensors,
    // so that a bad PIPEPRUNE_ALLOCATOR is a one-line error.
    pipeprune::configure_host_allocation();
    std::vector<std::string> args(argv + 1, argv + argc);
    args = pipeprune::expand_config_file(app, args, {"prune", "eval", "generate", "merge"});
    // CLI11 takes the arguments in reverse order.
    std::reverse(args.begin(), args.end());
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const pipeprune::Error& e) {
    pipeprune::log::error("{}", e.what());
    return 1;
  }
  int code = 1;
  try {
    for (const CLI::App* command : app.get_subcommands()) code = runners.at(command->get_name())();
    pipeprune::release_environment();
  } catch (const pipeprune::Error& e) {
    return fail(e.what());
  } catch (const c10::Error& e) {
    return fail(std::string("internal tensor error: ") + e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    return fail("out of host memory; lower --nsamples/--seqlen or give the job more ranks or --max-memory");
  } catch (const std::exception& e) {
    return fail(std::string("unexpected error: ") + e.what());
  }
  return code;
}
