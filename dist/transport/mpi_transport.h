// The MPI backend, for the factory and for tests (no <mpi.h> here).
//
// Each MpiTransport works on its own duplicate of MPI_COMM_WORLD, so several can coexist (the
// NCCL backend keeps one for bootstrap and headers). Creating one is collective over
// MPI_COMM_WORLD. The first one initialises MPI with MPI_THREAD_FUNNELED unless MPI already is,
// and registers MPI_Finalize to run at exit. Only the thread that initialised MPI may use it.
// Tensors on other devices are staged through host memory.
#pragma once

#include <cstdint>
#include <memory>

#include "dist/transport/transport.h"

namespace pipeprune {

struct MpiTransportOptions {
  // Payloads are sent in messages of at most this many bytes (MPI counts are int). The receiver
  // follows the sender's value from the header, so ranks may differ. 1 .. INT_MAX.
  int64_t chunk_bytes = int64_t{1} << 30;
};

std::unique_ptr<Transport> create_mpi_transport(const MpiTransportOptions& options = {});

}  // namespace pipeprune
