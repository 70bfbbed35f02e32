// Tensors of the input that the forward does not use (an old rotary_emb.inv_freq buffer inside
// a decoder layer, another outside the layers) pass through `prune` unchanged, byte for byte, at
// one rank and at two (where a layer's owner copies its own extras): never dropped, never
// left zero-filled. Every other tensor is exactly what pruning the model without them gives.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>

#include "core/io/safetensors.h"
#include "support/run_command.h"
#include "unit/io/io_test_util.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using testing::read_bytes;
using testing::run_pipeprune;

const std::string& kModel = testing::kDemoModel;
const std::string& kText = testing::kDemoText;

struct Extra {
  std::string name;
  std::vector<int64_t> shape;
  std::string bytes;  // F32
};

// Recognisable F32 values (never zero: a zero-filled copy must not pass).
std::string f32_bytes(int64_t n, float first) {
  std::string out(static_cast<size_t>(n) * 4, '\0');
  for (int64_t i = 0; i < n; ++i) {
    const float v = first + 0.25f * static_cast<float>(i);
    std::memcpy(&out[static_cast<size_t>(i) * 4], &v, 4);
  }
  return out;
}

// A copy of the demo model with `extras` appended to model.safetensors (header entries added
// after the existing data, written independently of the product's writer).
fs::path model_with(const std::vector<Extra>& extras) {
  const fs::path dir = testing::fresh_temp_dir("extra_tensors_model");
  for (const auto& entry : fs::directory_iterator(kModel)) fs::copy_file(entry.path(), dir / entry.path().filename());
  const std::string bytes = read_bytes(dir / "model.safetensors");
  uint64_t length = 0;
  std::memcpy(&length, bytes.data(), 8);
  nlohmann::ordered_json header = nlohmann::ordered_json::parse(bytes.substr(8, length));
  std::string data = bytes.substr(8 + length);
  for (const Extra& extra : extras) {
    header[extra.name] = {{"dtype", "F32"}, {"shape", extra.shape}, {"data_offsets", {data.size(), data.size() + extra.bytes.size()}}};
    data += extra.bytes;
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text += ' ';
  testing::write_bytes(dir / "model.safetensors", testing::le64(text.size()) + text + data);
  return dir;
}

std::vector<std::string> prune_args(const fs::path& model, const fs::path& out) {
  return {"prune", "--model", model.string(), "--output", out.string(), "--method", "sparsegpt",
          "--calib-data", kText, "--nsamples", "4", "--seqlen", "64", "--quiet"};
}

std::string tensor_bytes(const SafetensorsCheckpoint& checkpoint, const std::string& name) {
  const at::Tensor t = checkpoint.load(name);
  return std::string(static_cast<const char*>(t.data_ptr()), t.nbytes());
}

TEST(ExtraTensors, UnusedTensorsInsideAndOutsideTheLayers_PassThroughPruneUnchangedAtOneAndTwoRanks) {
  const std::vector<Extra> extras = {
      {"model.layers.1.self_attn.rotary_emb.inv_freq", {4}, f32_bytes(4, 1.0f)},
      {"model.layers.4.self_attn.rotary_emb.inv_freq", {4}, f32_bytes(4, 3.0f)},  // the second rank's layer
      {"model.rotary_emb.inv_freq", {4}, f32_bytes(4, 5.0f)}};
  const fs::path model = model_with(extras);
  const fs::path dir = testing::fresh_temp_dir("extra_tensors_out");
  const auto plain = run_pipeprune(prune_args(kModel, dir / "plain"));
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const SafetensorsCheckpoint expected = SafetensorsCheckpoint::open(dir / "plain");
  for (int world : {1, 2}) {
    const fs::path out = dir / ("with_extras_w" + std::to_string(world));
    const auto result =
        world == 1 ? run_pipeprune(prune_args(model, out)) : testing::run_pipeprune_ranks(2, prune_args(model, out));
    ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
    const SafetensorsCheckpoint pruned = SafetensorsCheckpoint::open(out);
    EXPECT_EQ(pruned.names().size(), expected.names().size() + extras.size()) << "world " << world;
    for (const Extra& extra : extras) {
      ASSERT_TRUE(pruned.has(extra.name)) << extra.name << " was dropped at world " << world;
      EXPECT_EQ(pruned.info(extra.name).shape, extra.shape);
      EXPECT_EQ(tensor_bytes(pruned, extra.name), extra.bytes) << extra.name << " changed at world " << world;
    }
    for (const std::string& name : expected.names()) {
      EXPECT_EQ(tensor_bytes(pruned, name), tensor_bytes(expected, name)) << name << " at world " << world;
    }
  }
}

}  // namespace
}  // namespace pipeprune
