// PruneOptions::validate: every bad pruning option is one ConfigError naming its flag, from
// the one place the CLI, the job and the pruners all call; and against a model, an N:M pattern
// that does not divide a linear's input columns names that linear.
#include "core/prune/prune_options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "core/common/error.h"
#include "core/model/model_config.h"
#include "core/prune/pruner.h"
#include "support/expect_error.h"

namespace pipeprune {
namespace {

using ::testing::HasSubstr;

std::string config_error(const std::function<void()>& fn) { return testing::error_message<ConfigError>(fn); }

PruneOptions options(PruneMethod method, const char* pattern = "unstructured") {
  PruneOptions o;
  o.method = method;
  o.pattern = SparsityPattern::parse(pattern, 0.5);
  return o;
}

TEST(PruneOptionsValidate, Defaults_AreValidForEveryMethodAndPattern) {
  for (PruneMethod m : {PruneMethod::kMagnitude, PruneMethod::kWanda, PruneMethod::kSparseGPT}) {
    for (const char* p : {"unstructured", "2:4", "4:8"}) EXPECT_NO_THROW(options(m, p).validate()) << p;
  }
  PruneOptions variant = options(PruneMethod::kWanda);
  variant.use_variant = true;
  EXPECT_NO_THROW(variant.validate());
}

TEST(PruneOptionsValidate, EachBadOption_NamesItsFlag) {
  PruneOptions sparsity = options(PruneMethod::kWanda);
  for (double s : {1.0, -0.1, std::numeric_limits<double>::quiet_NaN()}) {
    sparsity.pattern.sparsity = s;
    EXPECT_THAT(config_error([&] { sparsity.validate(); }), HasSubstr("--sparsity")) << s;
  }
  for (auto [method, pattern] : {std::pair{PruneMethod::kWanda, "2:4"}, std::pair{PruneMethod::kSparseGPT, "unstructured"},
                                 std::pair{PruneMethod::kMagnitude, "unstructured"}}) {
    PruneOptions variant = options(method, pattern);
    variant.use_variant = true;
    EXPECT_THAT(config_error([&] { variant.validate(); }), HasSubstr("--use-variant")) << pattern;
  }
  PruneOptions blocksize = options(PruneMethod::kWanda);
  blocksize.blocksize = 0;
  EXPECT_THAT(config_error([&] { blocksize.validate(); }), HasSubstr("--blocksize 0 must be at least 1"));
  PruneOptions damp = options(PruneMethod::kMagnitude);
  damp.percdamp = std::numeric_limits<double>::infinity();
  EXPECT_THAT(config_error([&] { damp.validate(); }), HasSubstr("--percdamp"));
  PruneOptions factor = options(PruneMethod::kWanda);
  factor.hinv_factor = HinvFactor::kBlocked;
  EXPECT_THAT(config_error([&] { factor.validate(); }), HasSubstr("--hinv-factor blocked applies to --method sparsegpt"));
  factor.method = PruneMethod::kSparseGPT;
  EXPECT_NO_THROW(factor.validate());
  EXPECT_THAT(config_error([] { parse_hinv_factor("fast"); }), HasSubstr("--hinv-factor must be reference"));
  PruneOptions multiple = options(PruneMethod::kSparseGPT, "4:8");
  multiple.blocksize = 12;
  EXPECT_THAT(config_error([&] { multiple.validate(); }), HasSubstr("--blocksize 12 is not a multiple of M=8"));
  // Only SparseGPT's blocks restart N:M groups; Wanda ignores the block size.
  PruneOptions wanda_blocks = options(PruneMethod::kWanda, "4:8");
  wanda_blocks.blocksize = 12;
  EXPECT_NO_THROW(wanda_blocks.validate());
}

TEST(PruneOptionsValidate, AgainstAModel_NMColumnsNameTheLinear) {
  ModelConfig config;
  config.hidden_size = 64;
  config.intermediate_size = 172;  // stories260K's: a multiple of 4, not of 8
  config.n_heads = 8;
  config.n_kv_heads = 4;
  config.head_dim = 8;
  EXPECT_NO_THROW(options(PruneMethod::kWanda, "2:4").validate(config));
  EXPECT_THAT(config_error([&] { options(PruneMethod::kWanda, "4:8").validate(config); }),
              HasSubstr("model.layers.*.mlp.down_proj.weight has 172 input columns, not a multiple of M=8"));
}

TEST(PruneOptionsValidate, TheSameMessageWhereverItIsCalled) {
  PruneOptions bad = options(PruneMethod::kSparseGPT);
  bad.percdamp = -1;
  const std::string from_validate = config_error([&] { bad.validate(); });
  const std::string from_pruner = config_error([&] { make_linear_pruner(bad, 4, 8, c10::Device(c10::kCPU)); });
  EXPECT_FALSE(from_validate.empty());
  EXPECT_EQ(from_validate, from_pruner);
}

TEST(NeedsActivations, OnlyMagnitudeNeedsNone) {
  EXPECT_FALSE(needs_activations(PruneMethod::kMagnitude));
  EXPECT_TRUE(needs_activations(PruneMethod::kWanda));
  EXPECT_TRUE(needs_activations(PruneMethod::kSparseGPT));
}

}  // namespace
}  // namespace pipeprune
