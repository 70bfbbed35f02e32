// For the shell tests: exits 0 when this machine's GEMM gives the same bits at every thread
// count (tests/support/gemm_threads.h), 1 with the reason on stdout when it does not.
#include <cstdio>

#include "support/gemm_threads.h"

int main() {
  if (pipeprune::testing::gemm_same_at_every_thread_count()) return 0;
  std::puts(pipeprune::testing::kGemmThreadsSkip);
  return 1;
}
