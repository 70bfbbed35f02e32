#include "core/common/error.h"

#include <cstring>

namespace pipeprune {

ErrorKind error_kind(const Error& error) {
  if (dynamic_cast<const ConfigError*>(&error)) return ErrorKind::kConfig;
  if (dynamic_cast<const FormatError*>(&error)) return ErrorKind::kFormat;
  if (dynamic_cast<const IoError*>(&error)) return ErrorKind::kIo;
  if (dynamic_cast<const CommError*>(&error)) return ErrorKind::kComm;
  if (dynamic_cast<const OutOfMemoryError*>(&error)) return ErrorKind::kOutOfMemory;
  return ErrorKind::kError;
}

void throw_error(ErrorKind kind, const std::string& message) {
  switch (kind) {
    case ErrorKind::kConfig: throw ConfigError(message);
    case ErrorKind::kFormat: throw FormatError(message);
    case ErrorKind::kIo: throw IoError(message);
    case ErrorKind::kComm: throw CommError(message);
    case ErrorKind::kOutOfMemory: throw OutOfMemoryError(message);
    case ErrorKind::kError: break;
  }
  throw Error(message);
}

namespace detail {

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

}  // namespace detail
}  // namespace pipeprune
