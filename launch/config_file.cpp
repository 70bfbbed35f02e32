#include "launch/config_file.h"

#include <algorithm>

#include "core/common/error.h"
#include "launch/merge_config.h"

namespace pipeprune {
namespace {

// Whether any name of `option` was given on the command line.
bool given_on_command_line(const CLI::Option& option, const std::vector<std::string>& args) {
  for (const std::string& name : option.get_lnames()) {
    const std::string flag = "--" + name;
    for (const std::string& arg : args) {
      if (arg == flag || arg.rfind(flag + "=", 0) == 0) return true;
    }
  }
  return false;
}

}  // namespace

std::vector<std::string> expand_config_file(CLI::App& app, const std::vector<std::string>& args,
                                            const std::vector<std::string>& toml_commands) {
  // The subcommand is the first argument naming one; its --config follows it.
  CLI::App* command = nullptr;
  size_t command_at = 0;
  for (size_t i = 0; i < args.size() && command == nullptr; ++i) {
    for (CLI::App* candidate : app.get_subcommands({})) {
      if (candidate->get_name() == args[i]) {
        command = candidate;
        command_at = i;
      }
    }
  }
  if (command == nullptr) return args;
  if (std::find(toml_commands.begin(), toml_commands.end(), command->get_name()) == toml_commands.end()) return args;
  std::string path;
  for (size_t i = command_at + 1; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) path = args[i + 1];
    if (args[i].rfind("--config=", 0) == 0) path = args[i].substr(9);
  }
  if (path.empty()) return args;

  std::vector<CLI::ConfigItem> items;
  try {
    items = CLI::ConfigTOML().from_file(path);
  } catch (const CLI::Error& e) {
    PIPEPRUNE_FAIL(ConfigError, path << ": cannot read the config file (" << e.what() << ")");
  }
  if (command->get_name() == "merge") {
    // mergekit's per-model tables become the models/weights/density keys the loop below reads.
    const CLI::Option* models = command->get_option_no_throw("--models");
    items = expand_model_tables(path, items, command->get_name(),
                                models != nullptr && given_on_command_line(*models, args));
  }
  std::vector<std::string> expanded = args;
  for (const CLI::ConfigItem& item : items) {
    // Section markers of TOML tables; a [prune] table holds the prune command's keys.
    if (item.name == "++" || item.name == "--") continue;
    const bool ours = item.parents.empty() || (item.parents.size() == 1 && item.parents[0] == command->get_name());
    PIPEPRUNE_CHECK(ours, ConfigError, path << ": section [" << item.parents[0] << "] is not the "
                                            << command->get_name() << " command");
    const CLI::Option* option = command->get_option_no_throw("--" + item.name);
    PIPEPRUNE_CHECK(option != nullptr && item.name != "config", ConfigError,
                    path << ": unknown option '" << item.name << "' for pipeprune " << command->get_name()
                         << " (see --help)");
    if (given_on_command_line(*option, args)) continue;
    const std::string flag = "--" + item.name;
    if (option->get_expected_min() == 0) {  // a flag: true/false
      PIPEPRUNE_CHECK(item.inputs.size() == 1, ConfigError, path << ": '" << item.name << "' takes true or false");
      std::string value = item.inputs[0];
      std::transform(value.begin(), value.end(), value.begin(), ::tolower);
      if (value == "true" || value == "1") expanded.push_back(flag);
      continue;
    }
    for (const std::string& input : item.inputs) {
      expanded.push_back(flag);
      expanded.push_back(input);
    }
  }
  return expanded;
}

}  // namespace pipeprune
