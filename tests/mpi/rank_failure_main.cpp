// A job in which rank 1 fails while the other ranks wait for it (rank 0 in a recv from rank 1,
// the rest in a barrier). Run by expect_job_fails.sh: the job must end non-zero, quickly.
//   throw: rank 1 throws; main catches, logs with the rank and calls transport->abort(3), as
//          launch/main.cpp does.
//   crash: rank 1 dies without a word (std::abort); the MPI runtime must end the job.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/common/error.h"
#include "core/common/log.h"
#include "dist/transport/transport.h"

int main(int argc, char** argv) {
  using namespace pipeprune;
  std::string mode = argc > 1 ? argv[1] : "throw";
  TransportOptions options;
  options.kind = TransportKind::kMpi;
  std::unique_ptr<Transport> transport = create_transport(options);
  log::set_rank(transport->rank(), transport->size());
  log::set_all_ranks_verbose(true);
  try {
    transport->barrier();  // everyone is up
    if (transport->rank() == 1) {
      if (mode == "crash") std::abort();
      PIPEPRUNE_FAIL(CommError, "rank 1: deliberate failure for the abort test");
    }
    if (transport->rank() == 0) transport->recv(1);  // never arrives
    transport->barrier();
    log::info("finished normally (must not happen)");
  } catch (const std::exception& e) {
    log::error("{}", e.what());
    transport->abort(3);
  }
  return 0;
}
