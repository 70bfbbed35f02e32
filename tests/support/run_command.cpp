#include "support/run_command.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace pipeprune::testing {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace

std::string fresh_temp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("pipeprune_test_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

CommandResult run_command(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
  static int counter = 0;
  const std::string base = std::filesystem::temp_directory_path() /
                           ("pipeprune_cmd_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  const std::string out_path = base + ".out";
  const std::string err_path = base + ".err";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> environment;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string key = entry.substr(0, entry.find('='));
    if (env.count(key) == 0) environment.push_back(entry);
  }
  for (const auto& [key, value] : env) environment.push_back(key + "=" + value);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + args[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = slurp(out_path);
  result.err = slurp(err_path);
  std::filesystem::remove(out_path);
  std::filesystem::remove(err_path);
  return result;
}

CommandResult run_pipeprune(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
  std::vector<std::string> full{PIPEPRUNE_BINARY};
  full.insert(full.end(), args.begin(), args.end());
  std::map<std::string, std::string> environment{{"OMP_NUM_THREADS", "1"}};
  for (const auto& kv : env) environment[kv.first] = kv.second;
  return run_command(full, environment);
}

CommandResult run_pipeprune_ranks(int np, const std::vector<std::string>& args) {
  std::vector<std::string> command{PIPEPRUNE_MPIEXEC, "-np", std::to_string(np), "--oversubscribe",
                                   "--allow-run-as-root", "--bind-to", "none", "-x", "OMP_NUM_THREADS=1",
                                   "-x", "OMPI_MCA_btl_vader_single_copy_mechanism=none", PIPEPRUNE_BINARY};
  command.insert(command.end(), args.begin(), args.end());
  return run_command(command);
}

int count_lines(const std::string& text) {
  int lines = 0;
  for (char c : text) lines += c == '\n';
  if (!text.empty() && text.back() != '\n') ++lines;
  return lines;
}

}  // namespace pipeprune::testing
