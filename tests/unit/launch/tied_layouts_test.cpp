// The layouts tied embeddings come in (stories260K ties them): stored as
// model.embed_tokens.weight (save_pretrained), as lm_head.weight with the metadata alias
// safetensors.torch.save_model writes, as lm_head.weight alone, or under both names. Each
// evaluates to the plain layout's NLL, and its pruned output keeps its own tensor names and
// aliases while holding the plain layout's pruned weights.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <regex>

#include "core/io/safetensors.h"
#include "core/io/safetensors_writer.h"
#include "support/run_command.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using testing::run_pipeprune;

const std::string& kModel = testing::kDemoModel;
const std::string& kText = testing::kDemoText;
constexpr const char* kEmbed = "model.embed_tokens.weight";
constexpr const char* kHead = "lm_head.weight";

struct Layout {
  std::string name;
  bool embed;  // stored as model.embed_tokens.weight
  bool head;   // stored as lm_head.weight
  bool alias;  // metadata {"model.embed_tokens.weight": "lm_head.weight"}
};

// The demo model re-saved in `layout` (its other files copied).
fs::path write_layout(const Layout& layout) {
  const fs::path dir = testing::fresh_temp_dir("tied_" + layout.name);
  for (const auto& entry : fs::directory_iterator(kModel)) {
    if (entry.path().extension() != ".safetensors") fs::copy_file(entry.path(), dir / entry.path().filename());
  }
  const SafetensorsCheckpoint input = SafetensorsCheckpoint::open(kModel);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const std::string& name : input.names()) {
    if (name != kEmbed) tensors.emplace_back(name, input.load(name));
  }
  if (layout.embed) tensors.emplace_back(kEmbed, input.load(kEmbed));
  if (layout.head) tensors.emplace_back(kHead, input.load(kEmbed));
  std::vector<TensorSpec> specs;
  for (const auto& [name, tensor] : tensors) specs.push_back({name, DType::kF32, tensor.sizes().vec()});
  FileMetadata metadata;
  if (layout.alias) metadata[kEmbed] = kHead;
  ShardWriter writer(dir, plan_layout_by_size(specs, int64_t{1} << 40, metadata));
  writer.create_files();
  for (const auto& [name, tensor] : tensors) writer.write(name, tensor);
  writer.finish();
  return dir;
}

std::string total_nll(const fs::path& model) {
  const auto result = run_pipeprune({"eval", "--model", model.string(), "--data", kText, "--seqlen", "128",
                                     "--max-chunks", "4"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  std::smatch m;
  return std::regex_search(result.out, m, std::regex("total nll ([0-9.e+-]+)")) ? m[1].str() : "?";
}

fs::path prune(const fs::path& model, const std::string& out) {
  const fs::path output = testing::fresh_temp_dir("tied_out") + "/" + out;
  const auto result = run_pipeprune({"prune", "--model", model.string(), "--output", output.string(), "--method",
                                     "sparsegpt", "--calib-data", kText, "--nsamples", "4", "--seqlen", "64", "--quiet"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return output;
}

std::string bytes_of(const SafetensorsCheckpoint& checkpoint, const std::string& name) {
  const at::Tensor t = checkpoint.load(name);
  return std::string(static_cast<const char*>(t.data_ptr()), t.nbytes());
}

TEST(TiedLayouts, EveryLayoutEvaluatesAndPrunesLikeThePlainOneAndKeepsItsNames) {
  const Layout plain{"embed_only", true, false, false};
  const std::string reference_nll = total_nll(write_layout(plain));
  ASSERT_NE(reference_nll, "?");
  const SafetensorsCheckpoint reference = SafetensorsCheckpoint::open(prune(write_layout(plain), "plain"));
  for (const Layout& layout : {Layout{"head_with_alias", false, true, true}, Layout{"head_only", false, true, false},
                               Layout{"both_names", true, true, false}}) {
    SCOPED_TRACE(layout.name);
    const fs::path model = write_layout(layout);
    EXPECT_EQ(total_nll(model), reference_nll);
    const fs::path output = prune(model, layout.name);
    const SafetensorsCheckpoint input = SafetensorsCheckpoint::open(model);
    const SafetensorsCheckpoint pruned = SafetensorsCheckpoint::open(output);
    EXPECT_EQ(pruned.names(), input.names()) << "the output keeps the input's tensor names";
    EXPECT_EQ(pruned.aliases(), input.aliases()) << "and its aliases";
    EXPECT_EQ(pruned.metadata(), input.metadata());
    for (const std::string& name : pruned.names()) {
      const std::string reference_name = name == kHead ? kEmbed : name;
      EXPECT_EQ(bytes_of(pruned, name), bytes_of(reference, reference_name)) << name;
    }
  }
}

}  // namespace
}  // namespace pipeprune
