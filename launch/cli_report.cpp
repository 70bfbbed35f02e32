// `pipeprune report RUN.json [--html PAGE]`: the JSON of `prune --report` as one HTML page
// (core/report/html_report.h, docs/report.md). Reads and writes files only: no ranks, no model.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "core/report/html_report.h"
#include "launch/commands.h"

namespace pipeprune {
namespace {

struct ReportCli {
  std::string json;
  std::string html;
};

int run(const ReportCli& cli) {
  const std::filesystem::path html = cli.html.empty() ? default_html_path(cli.json) : std::filesystem::path(cli.html);
  write_html_report(cli.json, html);
  std::printf("%s\n", html.string().c_str());
  return 0;
}

}  // namespace

CommandRunner add_report_command(CLI::App& app) {
  auto cli = std::make_shared<ReportCli>();
  CLI::App* command = app.add_subcommand("report", "turn the JSON of prune --report into one self-contained HTML page");
  command->add_option("json", cli->json, "the JSON written by pipeprune prune --report")->required();
  command->add_option("--html", cli->html, "the page to write (default: the JSON's path with .html)");
  return [cli] { return run(*cli); };
}

}  // namespace pipeprune
