#include "launch/merge_config.h"

#include <map>

#include "core/common/error.h"
#include "launch/common_options.h"

namespace pipeprune {
namespace {

// A per-model key of a table (mergekit's name) and the merge option it fills.
struct PerModelKey {
  const char* key;
  const char* option;
};
constexpr PerModelKey kPerModelKeys[] = {{"weight", "weights"}, {"density", "density"}};

struct ModelTable {
  std::string model;                          // "" until the table's `model` key
  std::map<std::string, std::string> values;  // per-model key -> its number as written
};

// The prefix of every message about table `index` (counting from 1) of `path`.
std::string table_name(const std::string& path, size_t index) {
  return path + ": [[models]] table " + std::to_string(index);
}

const PerModelKey* find_per_model_key(const std::string& key) {
  for (const PerModelKey& entry : kPerModelKeys) {
    if (key == entry.key) return &entry;
  }
  return nullptr;
}

// The item's section below the command's own: [merge.models] reads as [models].
std::vector<std::string> section_of(const CLI::ConfigItem& item, const std::string& command) {
  std::vector<std::string> section = item.parents;
  if (!section.empty() && section.front() == command) section.erase(section.begin());
  return section;
}

bool in_model_tables(const std::vector<std::string>& section) {
  return !section.empty() && section.front() == "models";
}

// One key = value of table `index`; `in_parameters`: it sits in the nested [models.parameters].
void add_key(const std::string& path, size_t index, const CLI::ConfigItem& item, bool in_parameters,
             ModelTable& table) {
  const std::string where = table_name(path, index);
  // CLI11 gives a repeated key or an array as several inputs, an empty array as none.
  PIPEPRUNE_CHECK(item.inputs.size() == 1, ConfigError,
                  where << ": " << item.name << " takes one value, not " << item.inputs.size()
                        << " (one table per model; give each its own)");
  const std::string& value = item.inputs.front();
  if (item.name == "model" && !in_parameters) {
    PIPEPRUNE_CHECK(!value.empty(), ConfigError, where << ": model is empty; give model = \"PATH\"");
    // The tables travel as one comma-separated --models, which cannot carry a comma.
    PIPEPRUNE_CHECK(value.find(',') == std::string::npos, ConfigError,
                    where << ": model '" << value << "' holds a ','; pipeprune cannot read such a path");
    table.model = value;
    return;
  }
  PIPEPRUNE_CHECK(find_per_model_key(item.name) != nullptr, ConfigError,
                  where << ": unknown key '" << item.name << "'"
                        << (in_parameters ? " in [models.parameters] (it takes weight, density)"
                                          : " (a table takes model, weight, density and [models.parameters])"));
  PIPEPRUNE_CHECK(parse_number(value).has_value(), ConfigError,
                  where << ": " << item.name << " = '" << value << "' is not a number");
  PIPEPRUNE_CHECK(table.values.count(item.name) == 0, ConfigError,
                  where << ": " << item.name << " is given twice (in the table and in [models.parameters]); keep one");
  table.values[item.name] = value;
}

// Reads the tables out of `items`; the other items go to `rest`, in order.
std::vector<ModelTable> read_tables(const std::string& path, const std::vector<CLI::ConfigItem>& items,
                                    const std::string& command, std::vector<CLI::ConfigItem>& rest) {
  std::vector<ModelTable> tables;
  bool open = false;
  for (const CLI::ConfigItem& item : items) {
    const std::vector<std::string> section = section_of(item, command);
    if (!in_model_tables(section)) {
      rest.push_back(item);
      continue;
    }
    const bool in_parameters = section.size() == 2 && section[1] == "parameters";
    PIPEPRUNE_CHECK(section.size() == 1 || in_parameters, ConfigError,
                    path << ": [" << item.fullname().substr(0, item.fullname().rfind('.'))
                         << "] is not a table pipeprune reads (a [[models]] table may hold [models.parameters])");
    if (item.name == "++" || item.name == "--") {
      if (in_parameters) continue;  // the nested table's markers sit inside its model's
      open = item.name == "++";
      if (open) tables.emplace_back();
      continue;
    }
    PIPEPRUNE_CHECK(open, ConfigError,
                    path << ": " << item.fullname() << " is outside a table; give each model as a [[models]] table");
    add_key(path, tables.size(), item, in_parameters, tables.back());
  }
  return tables;
}

// Every table names its model, and gives each parameter if any table does.
void check_tables(const std::string& path, const std::vector<ModelTable>& tables) {
  for (size_t i = 0; i < tables.size(); ++i) {
    PIPEPRUNE_CHECK(!tables[i].model.empty(), ConfigError,
                    table_name(path, i + 1) << " has no model; give model = \"PATH\" (or \"PATH+ADAPTER\")");
  }
  for (const PerModelKey& entry : kPerModelKeys) {
    size_t given = 0;
    for (const ModelTable& table : tables) given += table.values.count(entry.key);
    if (given == 0) continue;
    for (size_t i = 0; i < tables.size(); ++i) {
      PIPEPRUNE_CHECK(tables[i].values.count(entry.key) == 1, ConfigError,
                      table_name(path, i + 1) << " (" << tables[i].model << ") has no " << entry.key << "; give "
                                              << entry.key << " for every model or for none");
    }
  }
}

bool has_key(const std::vector<CLI::ConfigItem>& items, const std::string& command, const std::string& key) {
  for (const CLI::ConfigItem& item : items) {
    if (item.name == key && section_of(item, command).empty()) return true;
  }
  return false;
}

// The option `key` of the tables as one comma-separated key, in table order.
CLI::ConfigItem joined_key(const std::string& option, const std::vector<ModelTable>& tables, const std::string& key) {
  std::string joined;
  for (const ModelTable& table : tables) {
    if (!joined.empty()) joined += ",";
    joined += key == "model" ? table.model : table.values.at(key);
  }
  CLI::ConfigItem item;
  item.name = option;
  item.inputs = {joined};
  return item;
}

}  // namespace

std::vector<CLI::ConfigItem> expand_model_tables(const std::string& path, const std::vector<CLI::ConfigItem>& items,
                                                 const std::string& command, bool models_on_command_line) {
  std::vector<CLI::ConfigItem> expanded;
  const std::vector<ModelTable> tables = read_tables(path, items, command, expanded);
  if (tables.empty()) return items;
  // Two lists of models would need a rule for which wins; refusing needs none.
  PIPEPRUNE_CHECK(!models_on_command_line, ConfigError,
                  path << ": [[models]] tables and --models on the command line both name the models; give them in "
                          "one place");
  PIPEPRUNE_CHECK(!has_key(expanded, command, "models"), ConfigError,
                  path << ": [[models]] tables and the models key both name the models; give them in one place");
  check_tables(path, tables);
  expanded.push_back(joined_key("models", tables, "model"));
  for (const PerModelKey& entry : kPerModelKeys) {
    if (tables.front().values.count(entry.key) == 0) continue;
    PIPEPRUNE_CHECK(!has_key(expanded, command, entry.option), ConfigError,
                    path << ": " << entry.option << " is given as a key and as " << entry.key
                         << " in the [[models]] tables; give it in one place");
    expanded.push_back(joined_key(entry.option, tables, entry.key));
  }
  return expanded;
}

}  // namespace pipeprune
