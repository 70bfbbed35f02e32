// The subcommands of the pipeprune binary. Each add_*_command() declares its options on the
// app and returns the function that runs it after parsing (0 on success).
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace pipeprune {

using CommandRunner = std::function<int()>;

CommandRunner add_prune_command(CLI::App& app);
CommandRunner add_eval_command(CLI::App& app);
CommandRunner add_generate_command(CLI::App& app);
CommandRunner add_plan_command(CLI::App& app);
CommandRunner add_estimate_command(CLI::App& app);
CommandRunner add_synth_command(CLI::App& app);
CommandRunner add_tokenize_command(CLI::App& app);
CommandRunner add_merge_command(CLI::App& app);
CommandRunner add_report_command(CLI::App& app);

}  // namespace pipeprune
