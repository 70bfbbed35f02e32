#include "core/common/error.h"

#include <cstring>

namespace pipeprune::detail {

std::string with_location(const std::string& message, const char* file, int line) {
  // Keep only the path below the repository root so messages do not leak build paths.
  const char* shown = file;
  for (const char* root : {"/core/", "/dist/", "/launch/", "/tests/", "/benchmarks/"}) {
    if (const char* hit = std::strstr(file, root)) {
      shown = hit + 1;
      break;
    }
  }
  std::string out = message;
  out += " [";
  out += shown;
  out += ":";
  out += std::to_string(line);
  out += "]";
  return out;
}

}  // namespace pipeprune::detail
