// The resume journal's run.json (what --resume compares against the command).
#include "core/io/run_journal.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pipeprune;
  const auto staged = fuzz::scratch_dir() / "staged";
  fuzz::write_input(std::string("staged/") + run_journal::kFolder + "/run.json", data, size);
  fuzz::expect_clean([&] {
    const auto saved = run_journal::read_fingerprint(staged);
    if (saved) fingerprint_difference(*saved, {{"method", "wanda"}});
  });
  return 0;
}
