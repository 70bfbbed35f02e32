// Shared by the libFuzzer targets: the input as a file (every parser under test reads files),
// and the rule that a parser may reject bad bytes only with a pipeprune::Error. Anything else
// (another exception escaping, a crash, a sanitizer report) is a finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/common/error.h"
#include "core/common/log.h"

namespace pipeprune::fuzz {

// A folder of this process for the input files (/dev/shm when there is one: no disk writes).
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const std::filesystem::path base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    std::filesystem::path d = base / ("pipeprune-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    log::set_quiet(true);
    return d;
  }();
  return dir;
}

// Writes the input to scratch_dir()/name and returns the path.
inline std::filesystem::path write_input(const std::string& name, const uint8_t* data, size_t size) {
  const std::filesystem::path path = scratch_dir() / name;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

// Runs the parser; a pipeprune::Error is a correct rejection of bad input.
template <typename Fn>
void expect_clean(Fn&& fn) {
  try {
    fn();
  } catch (const pipeprune::Error&) {
  }
}

}  // namespace pipeprune::fuzz
