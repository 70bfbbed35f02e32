// SampleSplit against a naive deal of blocks to ranks: every sample on exactly one rank, local
// indices dense and in order, and the rounds of the reduction visiting the blocks in order.
#include "dist/sample_split.h"

#include <gtest/gtest.h>

#include "core/common/error.h"

namespace pipeprune {
namespace {

TEST(SampleSplit, EverySampleOnceAndRoundsVisitBlocksInOrder) {
  for (int64_t n : {1, 7, 12, 128}) {
    for (int64_t block : {1, 3, 4, 16}) {
      for (int world : {1, 2, 3, 5}) {
        const SampleSplit split(n, block, world);
        std::vector<int> seen(static_cast<size_t>(n), 0);
        for (int r = 0; r < world; ++r) {
          const auto mine = split.samples_of(r);
          for (size_t i = 0; i < mine.size(); ++i) {
            EXPECT_EQ(split.rank_of(mine[i]), r);
            EXPECT_EQ(split.local_index(mine[i]), static_cast<int64_t>(i));
            ++seen[static_cast<size_t>(mine[i])];
          }
        }
        for (int v : seen) EXPECT_EQ(v, 1);
        // The rounds' blocks, rank by rank, are the samples 0..n-1 in order.
        int64_t next = 0;
        for (int64_t round = 0; round < split.n_rounds(); ++round) {
          for (int r = 0; r < split.contributors(round); ++r) {
            const auto [begin, end] = split.local_block(r, round);
            const auto mine = split.samples_of(r);
            for (int64_t i = begin; i < end; ++i) EXPECT_EQ(mine[static_cast<size_t>(i)], next++);
          }
          for (int r = split.contributors(round); r < world; ++r) {
            const auto [begin, end] = split.local_block(r, round);
            EXPECT_EQ(begin, end);
          }
        }
        EXPECT_EQ(next, n) << n << " samples, blocks of " << block << ", world " << world;
      }
    }
  }
}

TEST(SampleSplit, MaxCountAndBadBlock) {
  EXPECT_EQ(SampleSplit(128, 4, 3).max_count(), 44);  // 32 blocks: 11, 11, 10
  EXPECT_EQ(SampleSplit(10, 4, 2).max_count(), 6);    // blocks 4, 4, 2: rank 0 holds 4 + 2
  EXPECT_THROW(SampleSplit(8, 0, 2), ConfigError);
}

}  // namespace
}  // namespace pipeprune
