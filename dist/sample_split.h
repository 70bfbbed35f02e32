// Which rank holds which calibration samples (or evaluation windows) under --parallel samples,
// and the rounds in which their statistics are reduced.
//
// The samples are cut into blocks of `block_size` consecutive samples (the last may be
// shorter); block b belongs to rank b mod W. A reduction folds the blocks' sums in block order,
// one round of W blocks at a time (round t: blocks tW..tW+W-1 on ranks 0..W-1, added in rank
// order by Transport::reduce_sum_into). The fold is the same sequence of additions at every
// world size, so the reduced statistics, and everything computed from them, are the same bits
// at W = 1, 2, 3, ... The block size only sets how often the ranks reduce (and how evenly a
// world size divides the blocks); it is part of the result, like --nsamples.
#pragma once

#include <cstdint>
#include <vector>

namespace pipeprune {

// By default the samples make 8 blocks (--sample-block 0): every world size of 1, 2, 4 or 8
// ranks gets the same number of samples, and a layer's owner receives at most 7 block sums of
// each statistic per layer (at W = 8; 4 at W = 2), which keeps the reduction a small share even
// for 70B-sized Hessians. More ranks than blocks leave ranks idle: lower --sample-block.
constexpr int64_t kDefaultSampleBlocks = 8;
// --sample-block as given, or for 0 the block size giving kDefaultSampleBlocks blocks.
int64_t resolve_sample_block(int64_t sample_block, int64_t n_samples);

class SampleSplit {
 public:
  // ConfigError naming --sample-block unless block_size >= 1.
  SampleSplit(int64_t n_samples, int64_t block_size, int world_size);

  int64_t n_samples() const { return n_samples_; }
  int64_t block_size() const { return block_size_; }
  int64_t n_blocks() const { return (n_samples_ + block_size_ - 1) / block_size_; }
  int world_size() const { return world_size_; }
  // Rounds of the reduction: ceil(n_blocks / W).
  int64_t n_rounds() const { return (n_blocks() + world_size_ - 1) / world_size_; }
  // Ranks with a block in round t (0..k-1).
  int contributors(int64_t round) const;
  // The rank holding sample s, and its place among that rank's samples.
  int rank_of(int64_t sample) const;
  int64_t local_index(int64_t sample) const;
  // The samples rank r holds, in increasing order.
  std::vector<int64_t> samples_of(int rank) const;
  int64_t count_of(int rank) const { return static_cast<int64_t>(samples_of(rank).size()); }
  // Rank r's block in round t as [begin, end) of its local indices; begin == end when it has none.
  std::pair<int64_t, int64_t> local_block(int rank, int64_t round) const;
  // The most samples any rank holds (what the memory plan sizes activation stores for).
  int64_t max_count() const;

 private:
  int64_t n_samples_;
  int64_t block_size_;
  int world_size_;
};

}  // namespace pipeprune
