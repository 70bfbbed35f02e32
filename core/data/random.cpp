#include "core/data/random.h"

#include "core/common/error.h"

namespace pipeprune {

int64_t SeededRandom::uniform_int(int64_t low, int64_t high) {
  PIPEPRUNE_CHECK(low <= high, Error, "uniform_int: empty range [" << low << ", " << high << "]");
  const uint64_t span = static_cast<uint64_t>(high - low) + 1;  // 0 means the full 2^64 range
  if (span == 0) return static_cast<int64_t>(engine_());
  // Reject draws from the incomplete last block so every value is equally likely.
  const uint64_t limit = UINT64_MAX - (UINT64_MAX % span + 1) % span;
  uint64_t draw = engine_();
  while (draw > limit) draw = engine_();
  return low + static_cast<int64_t>(draw % span);
}

}  // namespace pipeprune
