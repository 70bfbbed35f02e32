// The pipeprune entry point: parses the command line and runs one subcommand.
#include <cstdio>

#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
  CLI::App app{"pipeprune: one-shot pruning of Llama-family models"};
  app.require_subcommand(1);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
