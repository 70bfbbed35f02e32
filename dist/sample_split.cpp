#include "dist/sample_split.h"

#include <algorithm>

#include "core/common/error.h"

namespace pipeprune {

int64_t resolve_sample_block(int64_t sample_block, int64_t n_samples) {
  PIPEPRUNE_CHECK(sample_block >= 0, ConfigError, "--sample-block " << sample_block << ": must be at least 1 sample (0: automatic)");
  if (sample_block > 0) return sample_block;
  return std::max<int64_t>(1, (n_samples + kDefaultSampleBlocks - 1) / kDefaultSampleBlocks);
}

SampleSplit::SampleSplit(int64_t n_samples, int64_t block_size, int world_size)
    : n_samples_(n_samples), block_size_(block_size), world_size_(world_size) {
  PIPEPRUNE_CHECK(block_size >= 1, ConfigError, "--sample-block " << block_size << ": must be at least 1 sample");
  PIPEPRUNE_CHECK(n_samples >= 0 && world_size >= 1, Error,
                  "SampleSplit of " << n_samples << " samples over " << world_size << " ranks");
}

int SampleSplit::contributors(int64_t round) const {
  const int64_t left = n_blocks() - round * world_size_;
  return static_cast<int>(std::clamp<int64_t>(left, 0, world_size_));
}

int SampleSplit::rank_of(int64_t sample) const { return static_cast<int>((sample / block_size_) % world_size_); }

int64_t SampleSplit::local_index(int64_t sample) const {
  const int64_t block = sample / block_size_;
  // Full blocks of this rank before this one, then the place inside the block.
  return (block / world_size_) * block_size_ + sample % block_size_;
}

std::vector<int64_t> SampleSplit::samples_of(int rank) const {
  std::vector<int64_t> samples;
  for (int64_t block = rank; block < n_blocks(); block += world_size_) {
    for (int64_t s = block * block_size_; s < std::min(n_samples_, (block + 1) * block_size_); ++s) samples.push_back(s);
  }
  return samples;
}

std::pair<int64_t, int64_t> SampleSplit::local_block(int rank, int64_t round) const {
  const int64_t block = round * world_size_ + rank;
  if (rank >= contributors(round)) return {0, 0};
  const int64_t begin = round * block_size_;
  const int64_t size = std::min(n_samples_, (block + 1) * block_size_) - block * block_size_;
  return {begin, begin + size};
}

int64_t SampleSplit::max_count() const {
  int64_t most = 0;
  for (int r = 0; r < world_size_; ++r) most = std::max(most, count_of(r));
  return most;
}

}  // namespace pipeprune
