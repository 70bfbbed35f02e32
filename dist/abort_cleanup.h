// Paths to remove when this process ends a job after a fatal error.
//
// A rank that fails aborts the whole job (MPI_Abort), which kills the other ranks before their
// destructors run. So the temporary output folder is registered here, and main() removes the
// registered paths on the failing rank just before it aborts: no half-written folder is left.
#pragma once

#include <filesystem>

namespace pipeprune {

void register_abort_cleanup(const std::filesystem::path& path);
void unregister_abort_cleanup(const std::filesystem::path& path);
// Removes every registered path (best effort, never throws), except a staged output whose
// resume journal records finished layers (core/io/run_journal.h): that one is kept, with a
// warning saying how to resume it.
void run_abort_cleanup() noexcept;

}  // namespace pipeprune
