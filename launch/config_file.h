// `--config F.toml` for subcommands.
//
// CLI11 2.1 (Debian 12) does not read a config file declared on a subcommand, so the file is
// read here before parsing and its keys become ordinary command-line options: `key = value`
// becomes `--key value` (a boolean true becomes the flag `--key`). An option given on the
// command line wins over the file. Keys are the long option names (Wanda aliases included);
// an unknown key is an error naming the file and the key. For `merge`, [[models]] tables
// (mergekit's per-model parameters) become its models/weights/density keys first
// (launch/merge_config.h).
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace pipeprune {

// Returns `args` (argv without the program name) with the options of the subcommand's config
// file appended, for the subcommands named in `toml_commands` (others, like `synth`, use
// --config for something else). ConfigError naming the file on a bad file or key.
std::vector<std::string> expand_config_file(CLI::App& app, const std::vector<std::string>& args,
                                            const std::vector<std::string>& toml_commands);

}  // namespace pipeprune
