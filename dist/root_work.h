// Work that one rank does for all (tokenizing, creating the output folder) and whose failure
// every rank must learn, so that no rank waits at a collective for a rank that gave up.
#pragma once

#include <functional>

#include "dist/transport/transport.h"

namespace pipeprune {

// Runs `work` on `root` only. Collective: if it throws a pipeprune::Error there, every rank
// (the root included) throws an Error with the same message.
void run_on_root(Transport& transport, int root, const std::function<void()>& work);

}  // namespace pipeprune
