// UTF-8 and Unicode helpers shared by the tokenizer backends (internal to core/tokenizer).
//
// Pure functions over bytes; thread-safe. Invalid UTF-8 is replaced the way Rust's
// String::from_utf8_lossy does it (one U+FFFD per maximal invalid subpart), which is what
// Hugging Face `tokenizers` produces when it decodes bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pipeprune::tok {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Bytes taken by the character at s[i]: its length when valid; otherwise the length of the
// maximal invalid subpart (at least 1) and *valid is set to false.
size_t utf8_scan(std::string_view s, size_t i, bool* valid);
bool utf8_is_valid(std::string_view s);
// Every invalid subpart replaced by U+FFFD; valid input is returned unchanged.
std::string utf8_lossy(std::string_view bytes);
// Decodes the (valid) character at s[i] and advances i past it.
char32_t utf8_next(std::string_view s, size_t& i);
void utf8_append(std::string& out, char32_t cp);
// Length of the (valid) character starting with lead byte c.
inline size_t utf8_char_length(unsigned char c) {
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };
// Unicode normalization through utf8proc; s must be valid UTF-8.
std::string unicode_normalize(std::string_view s, NormalForm form);

// Rust's char::is_whitespace (the White_Space property), as HF uses for added-token stripping.
bool is_unicode_whitespace(char32_t cp);
// A regex \w character: letter, mark, decimal or letter number, connector punctuation.
bool is_word_char(char32_t cp);

// GPT-2's bytes-to-unicode map: byte b is written as the UTF-8 of a printable code point.
const std::array<std::string, 256>& byte_level_chars();
// The byte a byte-level code point stands for, or -1 when cp is not one of the 256.
int byte_level_byte(char32_t cp);

}  // namespace pipeprune::tok
