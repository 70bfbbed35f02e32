#include "core/tokenizer/tokenizer.h"

#include "core/tokenizer/unicode_text.h"

namespace pipeprune {

// Why windows: decoders treat the first token of a decode specially (SentencePiece strips its
// leading space; Metaspace drops its "▁"), so new text is the difference between decoding
// ids_[prefix_:] and ids_[prefix_:read_] -- both start with the same first visible token, so
// the special treatment cancels out. The window start moves to the ids printed last time:
// they always hold the non-special id whose text was printed, and they end outside any run
// of byte pieces and outside any unfinished UTF-8 character, so nothing before the window
// can change the text inside it.

std::optional<std::string> StreamingDecoder::pending_text(bool final) const {
  const auto begin = ids_.begin() + static_cast<std::ptrdiff_t>(prefix_);
  const std::string before =
      read_ > prefix_ ? tokenizer_.decode({begin, ids_.begin() + static_cast<std::ptrdiff_t>(read_)})
                      : std::string();
  const std::string after = tokenizer_.decode({begin, ids_.end()});
  if (!final) {
    const std::string_view fffd = tok::kReplacementChar;
    if (after.size() <= before.size()) return std::nullopt;
    // A trailing U+FFFD may be the first bytes of a character the next ids complete.
    if (after.size() >= fffd.size() && after.compare(after.size() - fffd.size(), fffd.size(), fffd) == 0) {
      return std::nullopt;
    }
  }
  return after.size() > before.size() ? after.substr(before.size()) : std::string();
}

std::string StreamingDecoder::push(int64_t id) {
  ids_.push_back(id);
  // A byte piece's text depends on the byte pieces after it (a run that is not valid UTF-8
  // decodes to one U+FFFD per byte), so nothing is printed until the run ends.
  if (tokenizer_.is_byte_piece(id)) return {};
  std::optional<std::string> text = pending_text(/*final=*/false);
  if (!text) return {};
  prefix_ = read_;
  read_ = ids_.size();
  return std::move(*text);
}

void StreamingDecoder::push_context(const std::vector<int64_t>& ids) {
  for (int64_t id : ids) push(id);
  read_ = ids_.size();
}

std::string StreamingDecoder::flush() {
  std::string text = read_ < ids_.size() ? pending_text(/*final=*/true).value_or("") : "";
  ids_.clear();
  prefix_ = read_ = 0;
  return text;
}

}  // namespace pipeprune
