// Inputs the fuzz targets (fuzz/, scripts/fuzz.sh) found, each refused with a FormatError naming
// the file. The first two are JSON numbers too large for a double (e.g. 1e405): nlohmann throws
// out_of_range for them, not parse_error, and that escaped as an "unexpected error". The third
// is an .npy header whose shape holds a string of bytes that are not UTF-8: printing it in the
// error message threw nlohmann's type_error.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/common/error.h"
#include "core/io/npy.h"
#include "core/io/safetensors.h"
#include "core/model/model_config.h"

namespace pipeprune {
namespace {

const std::filesystem::path kData = std::filesystem::path(PIPEPRUNE_SOURCE_DIR) / "tests" / "data" / "fuzz";

template <typename Fn>
std::string format_error(Fn&& fn) {
  try {
    fn();
  } catch (const FormatError& e) {
    return e.what();
  }
  return "no FormatError";
}

TEST(FuzzRegressions, ConfigJsonNumberOverflow_FormatErrorNamingTheFile) {
  const auto path = kData / "config_number_overflow.json";
  const std::string what = format_error([&] { ModelConfig::from_file(path); });
  EXPECT_NE(what.find(path.string() + ": invalid JSON"), std::string::npos) << what;
}

TEST(FuzzRegressions, SafetensorsHeaderNumberOverflow_FormatErrorNamingTheFile) {
  const auto path = kData / "safetensors_number_overflow.safetensors";
  const std::string what = format_error([&] { SafetensorsFile::open(path); });
  EXPECT_NE(what.find(path.string()), std::string::npos) << what;
}

TEST(FuzzRegressions, NpyHeaderWithInvalidUtf8_FormatErrorNamingTheFile) {
  const auto path = kData / "npy_invalid_utf8_shape.npy";
  const std::string what = format_error([&] { read_npy(path); });
  EXPECT_NE(what.find(path.string() + ": shape"), std::string::npos) << what;
}

}  // namespace
}  // namespace pipeprune
