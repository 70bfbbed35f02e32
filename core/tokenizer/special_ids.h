// BOS/EOS of a tokenizer from the Hugging Face config files beside it (internal to
// core/tokenizer).
//
// BOS is set only when the tokenizer adds it: tokenizer_config.json `add_bos_token` decides
// when present (the id of its `bos_token`), else the backend's default (a TemplateProcessing
// post-processor that starts with a special token; SentencePiece's bos id).
// EOS ids: generation_config.json `eos_token_id` (int or list), else tokenizer_config.json
// `eos_token`, else config.json `eos_token_id`, else the backend's default.
// Missing config files are fine; malformed ones are FormatErrors naming the file and field.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "core/tokenizer/tokenizer.h"

namespace pipeprune::tok {

struct SpecialDefaults {
  std::optional<int64_t> bos;
  std::vector<int64_t> eos;
};

void assign_special_ids(Tokenizer& tokenizer, const std::filesystem::path& config_dir,
                        const SpecialDefaults& defaults);

}  // namespace pipeprune::tok
