// tokenizer.json (normalizer, pre-tokenizer, BPE model, added tokens, decoder), then a round
// trip of a fixed text through the loaded tokenizer.
#include "core/tokenizer/tokenizer.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pipeprune;
  const auto path = fuzz::write_input("tok/tokenizer.json", data, size);
  fuzz::expect_clean([&] {
    const auto tokenizer = load_tokenizer_json(path);
    const auto ids = tokenizer->encode("Once upon a time, a 12-year-old said \"héllo\" 😀\n\n  twice.");
    tokenizer->decode(ids);
  });
  return 0;
}
