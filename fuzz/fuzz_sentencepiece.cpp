// tokenizer.model through the SentencePiece backend, then a round trip of a fixed text.
#include "core/tokenizer/tokenizer.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pipeprune;
  const auto path = fuzz::write_input("sp/tokenizer.model", data, size);
  fuzz::expect_clean([&] {
    const auto tokenizer = load_sentencepiece_model(path);
    tokenizer->decode(tokenizer->encode("Once upon a time, héllo 😀 twice."));
  });
  return 0;
}
