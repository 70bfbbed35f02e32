// random_tokens: a --calib-tokens file of uniformly random ids, for pruning synthetic models
// (which have no tokenizer) without Python.
//
//   random_tokens --vocab V --nsamples N --seqlen L [--seed 0] --output tokens.npy
//
// Writes int64 [N, L] with ids in [0, V), the same file for the same arguments.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstdio>
#include <map>
#include <string>

#include "core/common/error.h"
#include "core/io/npy.h"

int main(int argc, char** argv) {
  using namespace pipeprune;
  try {
    std::map<std::string, std::string> args;
    for (int i = 1; i + 1 < argc; i += 2) args[argv[i]] = argv[i + 1];
    for (const char* required : {"--vocab", "--nsamples", "--seqlen", "--output"}) {
      PIPEPRUNE_CHECK(args.count(required), ConfigError,
                      "random_tokens: missing " << required
                                                << " (usage: random_tokens --vocab V --nsamples N --seqlen L [--seed 0] --output F.npy)");
    }
    const int64_t vocab = std::stoll(args.at("--vocab"));
    const int64_t nsamples = std::stoll(args.at("--nsamples"));
    const int64_t seqlen = std::stoll(args.at("--seqlen"));
    const uint64_t seed = args.count("--seed") ? std::stoull(args.at("--seed")) : 0;
    PIPEPRUNE_CHECK(vocab >= 1 && nsamples >= 1 && seqlen >= 1, ConfigError,
                    "random_tokens: --vocab, --nsamples and --seqlen must be >= 1");
    at::Generator gen = at::detail::createCPUGenerator(seed);
    write_npy(args.at("--output"), at::randint(vocab, {nsamples, seqlen}, gen, at::TensorOptions().dtype(at::kLong)));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
