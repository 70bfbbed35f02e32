#include "dist/root_work.h"

#include "core/common/error.h"

namespace pipeprune {

void run_on_root(Transport& transport, int root, const std::function<void()>& work) {
  std::string error;
  if (transport.rank() == root) {
    try {
      work();
    } catch (const Error& e) {
      error = e.what();
    }
  }
  error = transport.broadcast_string(error, root);
  // The message already carries its origin; thrown as is, without a second location.
  if (!error.empty()) throw Error(error);
}

}  // namespace pipeprune
