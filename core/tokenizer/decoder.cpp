#include "core/tokenizer/decoder.h"

#include "core/common/error.h"
#include "core/tokenizer/unicode_text.h"

namespace pipeprune::tok {
namespace {

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t last = 0;
  for (size_t hit = s.find(from); hit != std::string_view::npos; hit = s.find(from, last)) {
    out.append(s.substr(last, hit - last));
    out.append(to);
    last = hit + from.size();
  }
  out.append(s.substr(last));
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The byte of a "<0xNN>" piece, or -1.
int byte_piece_value(std::string_view token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
  const int hi = hex_value(token[3]), lo = hex_value(token[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

std::string one_char(const Json& j, const char* key, const std::string& fallback,
                     const std::string& where) {
  const std::string s = json_string_or(j, key, fallback, where);
  size_t i = 0;
  PIPEPRUNE_CHECK(!s.empty() && utf8_is_valid(s) && (utf8_next(s, i), i == s.size()), FormatError,
                  where << "." << key << " must be a single character");
  return s;
}

// ByteLevel: every character stands for one byte; a token with a character outside the map
// (an added token) contributes its own UTF-8 bytes. The bytes are read as lossy UTF-8.
std::vector<std::string> decode_byte_level(const std::vector<std::string>& tokens) {
  std::string bytes;
  for (const std::string& token : tokens) {
    const size_t mark = bytes.size();
    bool mapped = true;
    for (size_t i = 0; i < token.size() && mapped;) {
      const int b = byte_level_byte(utf8_next(token, i));
      mapped = b >= 0;
      if (mapped) bytes.push_back(static_cast<char>(b));
    }
    if (!mapped) {
      bytes.resize(mark);
      bytes.append(token);
    }
  }
  return {utf8_lossy(bytes)};
}

// ByteFallback: runs of "<0xNN>" pieces become their UTF-8 text, or one U+FFFD per byte
// when the run is not valid UTF-8.
std::vector<std::string> decode_byte_fallback(std::vector<std::string> tokens) {
  std::vector<std::string> out;
  out.reserve(tokens.size());
  std::string run;
  auto flush = [&] {
    if (run.empty()) return;
    if (utf8_is_valid(run)) {
      out.push_back(run);
    } else {
      for (size_t i = 0; i < run.size(); ++i) out.emplace_back(kReplacementChar);
    }
    run.clear();
  };
  for (std::string& token : tokens) {
    const int b = byte_piece_value(token);
    if (b >= 0) {
      run.push_back(static_cast<char>(b));
    } else {
      flush();
      out.push_back(std::move(token));
    }
  }
  flush();
  return out;
}

std::string strip_chars(const std::string& token, const std::string& c, int64_t start, int64_t stop) {
  size_t begin = 0, end = token.size();
  for (int64_t k = 0; k < start && token.compare(begin, c.size(), c) == 0 && begin < end; ++k) {
    begin += c.size();
  }
  for (int64_t k = 0; k < stop && end >= begin + c.size() &&
                      token.compare(end - c.size(), c.size(), c) == 0;
       ++k) {
    end -= c.size();
  }
  return token.substr(begin, end - begin);
}

}  // namespace

Decoder::Decoder(const Json& j, const std::string& where) {
  if (j.is_null()) {
    join_with_spaces_ = true;
  } else {
    add(j, where);
  }
}

void Decoder::add(const Json& j, const std::string& where) {
  const std::string type = json_type(j, where);
  if (type == "Sequence") {
    const Json& list = json_field(j, "decoders", where);
    PIPEPRUNE_CHECK(list.is_array(), FormatError, where << ".decoders must be a list");
    for (size_t i = 0; i < list.size(); ++i) add(list[i], where + ".decoders[" + std::to_string(i) + "]");
  } else if (type == "ByteLevel") {
    steps_.push_back({Kind::kByteLevel, "", ""});
  } else if (type == "Replace") {
    bool is_regex = false;
    std::string from = json_pattern(j, "pattern", &is_regex, where);
    PIPEPRUNE_CHECK(!is_regex, FormatError, where << ".pattern: a Regex Replace decoder is not supported");
    PIPEPRUNE_CHECK(!from.empty(), FormatError, where << ".pattern.String is empty");
    steps_.push_back({Kind::kReplace, std::move(from), json_string(j, "content", where)});
  } else if (type == "ByteFallback") {
    steps_.push_back({Kind::kByteFallback, "", ""});
    has_byte_fallback_ = true;
  } else if (type == "Fuse") {
    steps_.push_back({Kind::kFuse, "", ""});
  } else if (type == "Strip") {
    Step step{Kind::kStrip, one_char(j, "content", " ", where), ""};
    step.start = json_int_or(j, "start", 0, where);
    step.stop = json_int_or(j, "stop", 0, where);
    steps_.push_back(std::move(step));
  } else if (type == "Metaspace") {
    Step step{Kind::kMetaspace, one_char(j, "replacement", "\xE2\x96\x81", where), " "};
    if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null()) {
      step.strip_first = json_string(j, "prepend_scheme", where) != "never";
    } else {
      step.strip_first = json_bool_or(j, "add_prefix_space", true, where);
    }
    steps_.push_back(std::move(step));
  } else {
    PIPEPRUNE_FAIL(FormatError, where << ".type '" << type
                                      << "' is not supported (supported: Sequence, ByteLevel, "
                                         "Replace, ByteFallback, Fuse, Strip, Metaspace)");
  }
}

bool Decoder::is_byte_piece(std::string_view token) const {
  return has_byte_fallback_ && byte_piece_value(token) >= 0;
}

std::string Decoder::decode(std::vector<std::string> tokens) const {
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::kByteLevel:
        tokens = decode_byte_level(tokens);
        break;
      case Kind::kReplace:
        for (std::string& token : tokens) token = replace_all(token, step.from, step.to);
        break;
      case Kind::kByteFallback:
        tokens = decode_byte_fallback(std::move(tokens));
        break;
      case Kind::kFuse: {
        std::string fused;
        for (const std::string& token : tokens) fused += token;
        tokens.assign(1, std::move(fused));
        break;
      }
      case Kind::kStrip:
        for (std::string& token : tokens) token = strip_chars(token, step.from, step.start, step.stop);
        break;
      case Kind::kMetaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          // Hugging Face drops every replacement character of the first token, not just one.
          tokens[i] = replace_all(tokens[i], step.from, i == 0 && step.strip_first ? "" : step.to);
        }
        break;
    }
  }
  std::string text;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (join_with_spaces_ && i > 0) text += ' ';
    text += tokens[i];
  }
  return text;
}

}  // namespace pipeprune::tok
