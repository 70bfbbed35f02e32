// A --config TOML file of `prune`, expanded into options and parsed by the real command line
// (every subcommand registered as in main()).
#include <CLI/CLI.hpp>

#include <algorithm>

#include "fuzz/fuzz_input.h"
#include "launch/commands.h"
#include "launch/config_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pipeprune;
  const auto path = fuzz::write_input("prune.toml", data, size);
  CLI::App app{"pipeprune"};
  app.require_subcommand(1);
  // The runners own the option structs CLI11 writes into: kept alive for the parse.
  const CommandRunner runners[] = {add_prune_command(app), add_eval_command(app), add_generate_command(app)};
  fuzz::expect_clean([&] {
    std::vector<std::string> args = expand_config_file(app, {"prune", "--config", path.string()}, {"prune", "eval", "generate"});
    std::reverse(args.begin(), args.end());
    try {
      app.parse(args);
    } catch (const CLI::ParseError&) {
      // The command line's own rejection (a missing --model, a bad value): a clean error too.
    }
  });
  return 0;
}
