#include "dist/agreed_errors.h"

#include <cstdlib>
#include <string>

#include "core/common/error.h"

namespace pipeprune {
namespace {

// "" when `work` succeeded, else "KIND:message" (the message already carries its origin).
std::string outcome_of(const std::function<void()>& work) {
  try {
    work();
  } catch (const Error& e) {
    return std::to_string(static_cast<int>(error_kind(e))) + ":" + e.what();
  }
  return "";
}

void rethrow_outcome(const std::string& outcome) {
  const size_t colon = outcome.find(':');
  const int kind = std::atoi(outcome.substr(0, colon).c_str());
  throw_error(static_cast<ErrorKind>(kind), outcome.substr(colon + 1));
}

}  // namespace

void run_on_root(Transport& transport, int root, const std::function<void()>& work) {
  std::string outcome;
  if (transport.rank() == root) outcome = outcome_of(work);
  outcome = transport.broadcast_string(outcome, root);
  if (!outcome.empty()) rethrow_outcome(outcome);
}

void run_agreed(Transport& transport, const std::function<void()>& work) {
  for (const std::string& outcome : transport.all_gather_string(outcome_of(work))) {
    if (!outcome.empty()) rethrow_outcome(outcome);
  }
}

}  // namespace pipeprune
