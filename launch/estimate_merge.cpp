#include "launch/estimate_merge.h"

#include <cstdio>
#include <optional>

#include <c10/util/accumulate.h>
#include <fmt/format.h>

#include "core/common/dtype.h"
#include "core/common/error.h"
#include "core/common/shape_text.h"
#include "core/memory/host_memory.h"
#include "core/merge/merge_memory.h"
#include "core/merge/merge_method.h"
#include "dist/budget.h"

namespace pipeprune {
namespace {

int64_t numel_of(const SpecTensor& t) { return c10::multiply_integers(t.shape); }

}  // namespace

void print_merge_estimate(const ModelSpec& spec, const MergeEstimateRequest& request) {
  const MergeMethod method = parse_merge_method(request.method);
  PIPEPRUNE_CHECK(request.merge_models >= 1, ConfigError, "--merge-models must be >= 1");
  PIPEPRUNE_CHECK(request.world >= 1, ConfigError, "--world must be >= 1");
  std::optional<DType> out_dtype;
  if (!request.out_dtype.empty()) {
    out_dtype = dtype_from_option(request.out_dtype);
    PIPEPRUNE_CHECK(out_dtype.has_value(), ConfigError,
                    "--out-dtype: use float32, float16 or bfloat16 (got '" << request.out_dtype << "')");
  }
  // The largest tensor of the checkpoint sets every rank's plan: any rank may be given it.
  const SpecTensor* largest = &spec.embedding;
  auto consider = [&](const SpecTensor& t) {
    if (numel_of(t) > numel_of(*largest)) largest = &t;
  };
  for (const auto& layer : spec.layers) {
    for (const SpecTensor& t : layer) consider(t);
  }
  for (const SpecTensor& t : spec.head) consider(t);
  const int64_t numel = numel_of(*largest);
  const int64_t inputs = request.merge_models + (uses_base(method) ? 1 : 0);
  const MergeRankMemory memory =
      estimate_merge_rank(request.process_bytes, numel, largest->n_bytes,
                          numel * element_size(out_dtype.value_or(largest->dtype)), inputs);
  std::printf("merge %s of %lld model(s)%s: %lld inputs, largest tensor %s %s (%s stored)\n",
              merge_method_name(method).c_str(), static_cast<long long>(request.merge_models),
              uses_base(method) ? " onto a base" : "", static_cast<long long>(inputs), largest->name.c_str(),
              shape_text(largest->shape).c_str(), format_bytes(largest->n_bytes).c_str());
  std::printf("%4s %11s %12s %14s %11s %11s %11s  %s\n", "rank", "process", "fp32 copies", "mapped inputs", "output",
              "total", "budget", "fits");
  for (int rank = 0; rank < request.world; ++rank) {
    const std::optional<int64_t> budget = budget_from_spec(request.max_memory, rank, c10::kCPU);
    std::printf("%4d %11s %12s %14s %11s %11s %11s  %s\n", rank, format_bytes(memory.process).c_str(),
                format_bytes(memory.fp32_copies).c_str(), format_bytes(memory.mapped_inputs).c_str(),
                format_bytes(memory.output).c_str(), format_bytes(memory.total()).c_str(),
                budget ? format_bytes(*budget).c_str() : "-",
                !budget ? "-" : memory.total() <= *budget ? "yes" : "NO");
  }
  std::printf("one tensor of every input at a time (mapped, not loaded whole); %d rank(s) split the %s of tensors by "
              "bytes, each rank's peak set by the largest tensor it is given\n",
              request.world, format_bytes(spec.bytes_total()).c_str());
}

}  // namespace pipeprune
