// Running the pipeprune binary (or any command) from a test and capturing what it printed.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace pipeprune::testing {

// The bundled demo model and text every end-to-end test uses.
inline const std::string kSourceDir = PIPEPRUNE_SOURCE_DIR;
inline const std::string kDemoModel = kSourceDir + "/examples/stories260K";
inline const std::string kDemoText = kSourceDir + "/examples/text/tinystories_val.txt";

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs `args` (args[0] is the program) with extra environment variables, waits for it and
// returns its exit code and output. No shell is involved, so arguments need no quoting.
CommandResult run_command(const std::vector<std::string>& args,
                          const std::map<std::string, std::string>& env = {});

// PIPEPRUNE_BINARY followed by args.
CommandResult run_pipeprune(const std::vector<std::string>& args,
                            const std::map<std::string, std::string>& env = {});

// PIPEPRUNE_BINARY followed by args as `np` ranks under mpirun on this machine (oversubscribed,
// as root if need be, one thread per rank, no shared-memory single copy: restricted containers).
CommandResult run_pipeprune_ranks(int np, const std::vector<std::string>& args);

// A fresh empty folder under the system temp dir, unique to this process and name.
std::string fresh_temp_dir(const std::string& name);

// The number of lines of text (ignoring one trailing newline).
int count_lines(const std::string& text);

}  // namespace pipeprune::testing
