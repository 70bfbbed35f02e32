// The per-model tables of `pipeprune merge --config F.toml`, mergekit's `models:` list in TOML:
//
//   [[models]]
//   model = "math-7b"          # or "MODEL+ADAPTER", as on the command line
//   weight = 0.6               # optional; --weights
//   density = 0.5              # optional; --density
//   [[models]]
//   model = "code-7b"
//   [models.parameters]        # mergekit's layout: the same keys one table down
//   weight = 0.4
//   density = 0.7
//
// The tables become the keys `models = "math-7b,code-7b"`, `weights = "0.6,0.4"` and
// `density = "0.5,0.7"`, which launch/config_file.cpp turns into options as it does every key,
// so a `--weights` on the command line wins over the tables' weights as over any key.
//
// CLI11 2.1's TOML reader (Debian 12) delivers each table as items between a "++" and a "--"
// marker whose parents are {"models"} ({"merge", "models"} inside [merge]); the nested table's
// parents are {"models", "parameters"}. It strips the quotes of strings, so `weight = "0.6"`
// reads as 0.6 and a `[models]` table as an array of one; numbers are checked by parsing them.
// Pure functions of their arguments; any thread.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace pipeprune {

// Returns `items` (CLI11's reading of the merge command's config file `path`) with its
// [[models]] tables replaced by the `models`, `weights` and `density` keys they stand for;
// `items` as they are when there are no tables. `models_on_command_line`: whether --models was
// given too, which is refused (as is a `models` key beside the tables): neither place wins.
// ConfigError naming `path`, the table (counting from 1) and the key, on an unknown key, a value
// that is not one number, a table without `model`, or a parameter that some tables lack.
std::vector<CLI::ConfigItem> expand_model_tables(const std::string& path, const std::vector<CLI::ConfigItem>& items,
                                                 const std::string& command, bool models_on_command_line);

}  // namespace pipeprune
