// `pipeprune tokenize`: the token ids pipeprune gives a text with a model's tokenizer, as a JSON
// list on stdout or an int64 .npy, to compare with another tokenizer or to make --calib-tokens.
#include <ATen/ATen.h>

#include <cstdio>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/common/error.h"
#include "core/common/files.h"
#include "core/io/npy.h"
#include "core/tokenizer/tokenizer.h"
#include "launch/commands.h"

namespace pipeprune {
namespace {

struct TokenizeCli {
  std::string model;
  std::string text;
  std::string file;
  bool no_bos = false;
  std::string output;
};

int run(const TokenizeCli& cli) {
  PIPEPRUNE_CHECK(cli.text.empty() != cli.file.empty(), ConfigError, "give exactly one of --text and --file");
  const std::string text = cli.file.empty() ? cli.text : read_file(cli.file);
  const auto tokenizer = load_tokenizer(cli.model);
  const std::vector<int64_t> ids = cli.no_bos ? tokenizer->encode(text) : tokenizer->encode_with_bos(text);
  if (!cli.output.empty()) {
    write_npy(cli.output, at::tensor(ids, at::kLong));
    return 0;
  }
  std::fputs(fmt::format("[{}]\n", fmt::join(ids, ", ")).c_str(), stdout);
  return 0;
}

}  // namespace

CommandRunner add_tokenize_command(CLI::App& app) {
  auto cli = std::make_shared<TokenizeCli>();
  CLI::App* command = app.add_subcommand("tokenize", "print the token ids of a text (BOS first when the tokenizer adds one)");
  command->add_option("--model", cli->model, "folder with tokenizer.json or tokenizer.model")->required();
  command->add_option("--text", cli->text, "the text");
  command->add_option("--file", cli->file, "a UTF-8 file whose whole content is the text");
  command->add_flag("--no-bos", cli->no_bos, "the ids of the text alone, without BOS");
  command->add_option("--output", cli->output, "write the ids as int64 .npy instead of printing them");
  return [cli] { return run(*cli); };
}

}  // namespace pipeprune
