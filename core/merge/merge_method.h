// The merge methods of `pipeprune merge`, their settings and mergekit's defaults for each.
//
// The names, defaults and parameter rules are mergekit's (generalized_task_arithmetic.py,
// linear.py, registry.py at a6e4028; see /work/shared/MERGE_SEMANTICS.md). Everything here is
// plain data and pure functions: stateless, callable from any thread, on any rank. Bad names
// and bad parameters throw ConfigError naming the flag at fault.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pipeprune {

enum class MergeMethod { kLinear, kTaskArithmetic, kTies, kDareTies, kDareLinear };

// How a sparsified task vector is scaled back: not at all, to its L1 norm before the drop
// (mergekit since v0.1.0), or by 1/density (the DARE paper, mergekit up to v0.0.6).
enum class Rescale { kNone, kL1, kInvDensity };

// How TIES elects the sign of each element: by the sign of the sum of the weighted deltas, or by
// the sign of the sum of their signs. kNone: no election (task arithmetic, dare_linear).
enum class Consensus { kNone, kSum, kCount };

// linear | task_arithmetic | ties | dare_ties | dare_linear; "dare_task_arithmetic" is accepted
// as dare_linear. Anything else: ConfigError naming --method.
MergeMethod parse_merge_method(const std::string& name);
// Whether parse_merge_method accepts `name` (estimate tells merge methods from prune methods).
bool is_merge_method_name(const std::string& name);
// The canonical (mergekit) name: dare_linear for kDareLinear.
std::string merge_method_name(MergeMethod method);

// none | l1 | inv_density; else ConfigError naming --rescale.
Rescale parse_rescale(const std::string& name);
std::string rescale_name(Rescale rescale);

// sum | count; else ConfigError naming --consensus. kNone is never parsed: it is what the
// methods without an election get from default_settings.
Consensus parse_consensus(const std::string& name);
std::string consensus_name(Consensus consensus);

// The settings global to one merge job.
struct MergeSettings {
  MergeMethod method = MergeMethod::kLinear;
  bool normalize = true;                    // divide by the (agreeing) weights' sum
  Rescale rescale = Rescale::kNone;         // only read by the sparsifying methods
  Consensus consensus = Consensus::kNone;   // only ties and dare_ties may set it
  double lambda = 1.0;                      // scales the mixed task vector
  uint64_t seed = 0;                        // DARE's drop: the mask depends on it alone
};

// mergekit's defaults for `method`:
//   linear           normalize
//   task_arithmetic  -
//   ties             consensus sum, normalize
//   dare_ties        consensus sum, rescale l1
//   dare_linear      rescale l1
MergeSettings default_settings(MergeMethod method);

bool uses_base(MergeMethod method);       // every method but linear: they merge task vectors
bool uses_density(MergeMethod method);    // ties, dare_ties, dare_linear: they sparsify
bool uses_consensus(MergeMethod method);  // ties, dare_ties: they elect a sign

// The parameters of one model (the base has none): its weight and the fraction of its task
// vector that sparsification keeps.
struct ModelParams {
  double weight = 1.0;
  double density = 1.0;
};

// Checks a job's parameters before any tensor is read, so that a bad flag fails in a second and
// not after an hour of merging: at least one model; weights finite (--weights); densities in
// (0, 1] (--density); a consensus only for ties and dare_ties (--consensus); lambda finite
// (--lambda); linear with normalize: weights that do not sum to 0 (--weights), since mergekit
// divides by that sum unguarded. Throws ConfigError.
void validate_merge(const MergeSettings& settings, const std::vector<ModelParams>& params);

}  // namespace pipeprune
