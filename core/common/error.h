// Error types of pipeprune and the check macros that throw them.
//
// Every failure the library reports is an exception derived from pipeprune::Error. The message
// is one line meant for the user: it names the file, flag or tensor at fault and what to do.
// The check macros append the source location in brackets so a bug report carries it.
// The library never calls exit(); launch/main.cpp catches, logs with the rank and aborts the job.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace pipeprune {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A bad option, flag or config.json field.
class ConfigError : public Error {
 public:
  using Error::Error;
};
// A file whose content does not follow its format (safetensors, JSON, npy, tokenizer).
class FormatError : public Error {
 public:
  using Error::Error;
};
// A file that cannot be opened, read, written or renamed.
class IoError : public Error {
 public:
  using Error::Error;
};
// A failure between ranks: a peer died, a header mismatch, a backend error.
class CommError : public Error {
 public:
  using Error::Error;
};
// A memory budget that cannot hold the work, or an allocation that failed on a device.
class OutOfMemoryError : public Error {
 public:
  using Error::Error;
};

// The type of an Error as a value, so that an error raised on one rank can be thrown again on
// the others with its type (ConfigError stays ConfigError) as well as its message.
enum class ErrorKind { kError = 0, kConfig, kFormat, kIo, kComm, kOutOfMemory };
ErrorKind error_kind(const Error& error);
// Throws an exception of `kind` carrying `message` as it is (no second location is added).
[[noreturn]] void throw_error(ErrorKind kind, const std::string& message);

namespace detail {
std::string with_location(const std::string& message, const char* file, int line);
}  // namespace detail

}  // namespace pipeprune

// PIPEPRUNE_CHECK(cond, ErrorType, stream-expression): throws ErrorType with the streamed message.
#define PIPEPRUNE_CHECK(cond, ErrorType, msg)                                              \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::ostringstream pipeprune_check_stream_;                                          \
      pipeprune_check_stream_ << msg;                                                      \
      throw ErrorType(::pipeprune::detail::with_location(pipeprune_check_stream_.str(),    \
                                                         __FILE__, __LINE__));             \
    }                                                                                      \
  } while (0)

// PIPEPRUNE_FAIL(ErrorType, stream-expression): throws unconditionally.
#define PIPEPRUNE_FAIL(ErrorType, msg) PIPEPRUNE_CHECK(false, ErrorType, msg)
