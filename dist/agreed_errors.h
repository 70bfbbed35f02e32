// Failures every rank must learn of, so that no rank waits at a collective for a rank that gave
// up, and every rank stops with the same error.
//
// Both helpers are collective: every rank calls them, in the same order. An error travels as
// its kind and message (core/common/error.h), so it is thrown again with its own type on every
// rank: a ConfigError on the root is a ConfigError everywhere. Only pipeprune::Error is carried;
// anything else (a bug, std::bad_alloc) propagates on its own rank, and main() aborts the job.
#pragma once

#include <functional>

#include "dist/transport/transport.h"

namespace pipeprune {

// Runs `work` on `root` only (tokenizing, creating the output folder). If it throws an Error
// there, every rank (the root included) throws that error.
void run_on_root(Transport& transport, int root, const std::function<void()>& work);

// Runs `work` on every rank (each its own part: a budget check, a plan). If it throws an Error
// on any rank, every rank throws the error of the lowest failing rank.
void run_agreed(Transport& transport, const std::function<void()>& work);

}  // namespace pipeprune
