#include "core/io/npy.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <cstring>
#include <sstream>

#include "core/common/error.h"
#include "core/common/files.h"

namespace pipeprune {
namespace {

using nlohmann::json;

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicBytes = 6;
constexpr size_t kAlign = 64;  // numpy aligns the data start to 64 bytes
constexpr int kMaxDepth = 16;

// Parses the Python literal of an .npy header (dict, tuple, list, str, int, True/False/None)
// into JSON, so the fields can be checked with the usual JSON type tests.
class PythonLiteral {
 public:
  PythonLiteral(const std::string& text, const std::string& file) : text_(text), file_(file) {}

  json parse() {
    json value = parse_value(0);
    skip_space();
    if (pos_ != text_.size()) fail("unexpected text after the header dict");
    return value;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    PIPEPRUNE_FAIL(FormatError, file_ << ": cannot parse the .npy header (" << what << " at character " << pos_
                                      << "); the file is corrupt or not written by numpy");
  }
  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool take(const std::string& word) {
    if (text_.compare(pos_, word.size(), word) != 0) return false;
    pos_ += word.size();
    return true;
  }

  json parse_value(int depth) {
    if (depth > kMaxDepth) fail("nesting too deep");
    skip_space();
    if (pos_ >= text_.size()) fail("unexpected end");
    const char c = text_[pos_];
    if (c == '{') return parse_dict(depth);
    if (c == '(' || c == '[') return parse_sequence(depth, c == '(' ? ')' : ']');
    if (c == '\'' || c == '"') return parse_string();
    if (c == '-' || std::isdigit(static_cast<unsigned char>(c))) return parse_int();
    if (take("True")) return true;
    if (take("False")) return false;
    if (take("None")) return nullptr;
    fail(std::string("unexpected character '") + c + "'");
  }

  json parse_dict(int depth) {
    json out = json::object();
    ++pos_;
    for (;;) {
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == '}') break;
      const json key = parse_value(depth + 1);
      if (!key.is_string()) fail("a dict key is not a string");
      skip_space();
      if (!take(":")) fail("expected ':'");
      out[key.get<std::string>()] = parse_value(depth + 1);
      skip_space();
      if (take(",")) continue;
      if (pos_ >= text_.size() || text_[pos_] != '}') fail("expected ',' or '}'");
    }
    ++pos_;
    return out;
  }

  json parse_sequence(int depth, char close) {
    json out = json::array();
    ++pos_;
    for (;;) {
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == close) break;
      out.push_back(parse_value(depth + 1));
      skip_space();
      if (take(",")) continue;
      if (pos_ >= text_.size() || text_[pos_] != close) fail(std::string("expected ',' or '") + close + "'");
    }
    ++pos_;
    return out;
  }

  json parse_string() {
    const char quote = text_[pos_++];
    std::string out;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      if (text_[pos_] == '\\' && pos_ + 1 < text_.size()) ++pos_;
      out += text_[pos_++];
    }
    if (pos_ >= text_.size()) fail("unterminated string");
    ++pos_;
    return out;
  }

  json parse_int() {
    const bool negative = text_[pos_] == '-';
    if (negative) ++pos_;
    if (pos_ >= text_.size() || !std::isdigit(static_cast<unsigned char>(text_[pos_]))) fail("expected a digit");
    int64_t value = 0;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) {
      if (__builtin_mul_overflow(value, 10, &value) || __builtin_add_overflow(value, text_[pos_] - '0', &value)) {
        fail("integer too large");
      }
      ++pos_;
    }
    take("L");  // Python 2 wrote long integers as 3L
    return negative ? -value : value;
  }

  const std::string& text_;
  const std::string& file_;
  size_t pos_ = 0;
};

struct NpyHeader {
  std::string descr;
  std::vector<int64_t> shape;
  int64_t numel = 1;
  size_t data_offset = 0;
};

// The shape as Python writes a tuple, "(2, 3)" or "(5,)": the npy header's own notation.
std::string python_tuple(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << "(";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << (shape.size() == 1 ? ",)" : ")");
  return out.str();
}

uint64_t read_le(const std::string& bytes, size_t at, size_t n) {
  uint64_t v = 0;
  for (size_t i = n; i-- > 0;) v = (v << 8) | static_cast<uint8_t>(bytes[at + i]);
  return v;
}

// A header value for an error message: the header's bytes need not be UTF-8 (the Python
// literal parser keeps them as they are), and json::dump throws on invalid UTF-8.
std::string printable(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

// Magic, version, header length and the header dict; checks every field it returns.
NpyHeader parse_header(const std::string& file, const std::string& bytes) {
  PIPEPRUNE_CHECK(bytes.size() >= 10 && bytes.compare(0, kMagicBytes, kMagic, kMagicBytes) == 0, FormatError,
                  file << ": not a .npy file (no \\x93NUMPY magic); save the array with numpy.save");
  const int major = static_cast<uint8_t>(bytes[6]);
  PIPEPRUNE_CHECK(major >= 1 && major <= 3, FormatError,
                  file << ": .npy format version " << major << "." << static_cast<int>(static_cast<uint8_t>(bytes[7]))
                       << " is not supported (1.0, 2.0 and 3.0 are)");
  const size_t length_bytes = major == 1 ? 2 : 4;
  PIPEPRUNE_CHECK(bytes.size() >= 8 + length_bytes, FormatError, file << ": the .npy header is truncated");
  const uint64_t header_len = read_le(bytes, 8, length_bytes);
  const size_t start = 8 + length_bytes;
  PIPEPRUNE_CHECK(header_len <= bytes.size() - start, FormatError,
                  file << ": the .npy header length " << header_len << " runs past the end of the file ("
                       << bytes.size() << " bytes); the file is truncated");
  const json dict = PythonLiteral(bytes.substr(start, header_len), file).parse();
  PIPEPRUNE_CHECK(dict.is_object() && dict.contains("descr") && dict.contains("fortran_order") && dict.contains("shape"),
                  FormatError, file << ": the .npy header is not a dict with 'descr', 'fortran_order' and 'shape'");
  PIPEPRUNE_CHECK(dict["descr"].is_string(), FormatError,
                  file << ": structured dtype " << printable(dict["descr"]) << " is not supported; save a plain array");
  PIPEPRUNE_CHECK(dict["fortran_order"].is_boolean(), FormatError, file << ": 'fortran_order' is not True or False");
  PIPEPRUNE_CHECK(!dict["fortran_order"].get<bool>(), FormatError,
                  file << ": the array is stored in Fortran order; save it C-ordered (numpy.ascontiguousarray)");
  PIPEPRUNE_CHECK(dict["shape"].is_array(), FormatError, file << ": 'shape' is not a tuple");
  NpyHeader header;
  header.descr = dict["descr"].get<std::string>();
  for (const json& d : dict["shape"]) {
    PIPEPRUNE_CHECK(d.is_number_integer() && d.get<int64_t>() >= 0, FormatError,
                    file << ": shape " << printable(dict["shape"]) << " has a dimension that is not a non-negative integer");
    header.shape.push_back(d.get<int64_t>());
    PIPEPRUNE_CHECK(!__builtin_mul_overflow(header.numel, header.shape.back(), &header.numel), FormatError,
                    file << ": shape " << python_tuple(header.shape) << " overflows a 64-bit element count");
  }
  header.data_offset = start + header_len;
  return header;
}

// Maps a descr to a dtype; nullopt for anything not read here.
std::optional<std::pair<c10::ScalarType, int64_t>> dtype_of(std::string descr) {
  if (!descr.empty() && descr[0] == '=') descr[0] = '<';  // native order on a little-endian build
  if (descr == "<i4") return std::make_pair(c10::ScalarType::Int, int64_t{4});
  if (descr == "<i8") return std::make_pair(c10::ScalarType::Long, int64_t{8});
  if (descr == "<f4") return std::make_pair(c10::ScalarType::Float, int64_t{4});
  return std::nullopt;
}

NpyArray decode(const std::string& file, const std::string& bytes, const NpyHeader& header) {
  const auto dtype = dtype_of(header.descr);
  PIPEPRUNE_CHECK(dtype.has_value(), FormatError,
                  file << ": dtype " << header.descr
                       << " is not supported; pipeprune reads int32 (<i4), int64 (<i8) and float32 (<f4) .npy arrays");
  int64_t n_bytes = 0;
  PIPEPRUNE_CHECK(!__builtin_mul_overflow(header.numel, dtype->second, &n_bytes), FormatError,
                  file << ": shape " << python_tuple(header.shape) << " overflows a 64-bit byte count");
  const int64_t found = static_cast<int64_t>(bytes.size() - header.data_offset);
  PIPEPRUNE_CHECK(found >= n_bytes, FormatError,
                  file << ": truncated: shape " << python_tuple(header.shape) << " of " << header.descr << " needs "
                       << n_bytes << " data bytes but the file holds " << found);
  PIPEPRUNE_CHECK(found == n_bytes, FormatError,
                  file << ": " << found << " data bytes where shape " << python_tuple(header.shape) << " of "
                       << header.descr << " needs " << n_bytes << "; the file is corrupt");
  NpyArray out;
  out.descr = header.descr;
  out.shape = header.shape;
  out.data = at::empty(header.shape, at::TensorOptions().dtype(dtype->first));
  if (n_bytes > 0) std::memcpy(out.data.data_ptr(), bytes.data() + header.data_offset, static_cast<size_t>(n_bytes));
  return out;
}

}  // namespace

NpyArray read_npy(const std::filesystem::path& path) {
  const std::string bytes = read_file(path);
  return decode(path.string(), bytes, parse_header(path.string(), bytes));
}

at::Tensor read_token_matrix(const std::filesystem::path& path, int64_t vocab_size) {
  const std::string file = path.string();
  const std::string bytes = read_file(path);
  const NpyHeader header = parse_header(file, bytes);
  const auto dtype = dtype_of(header.descr);
  PIPEPRUNE_CHECK(dtype.has_value() && dtype->first != c10::ScalarType::Float, FormatError,
                  file << ": dtype " << header.descr << "; --calib-tokens needs int32 or int64");
  PIPEPRUNE_CHECK(header.shape.size() == 2, FormatError,
                  file << ": shape " << python_tuple(header.shape)
                       << " is not 2-D; --calib-tokens needs token ids shaped [n_samples, seqlen]");
  PIPEPRUNE_CHECK(header.numel > 0, FormatError, file << ": shape " << python_tuple(header.shape) << " holds no tokens");
  const at::Tensor tokens = decode(file, bytes, header).data.to(at::kLong).contiguous();
  const int64_t* ids = tokens.data_ptr<int64_t>();
  const int64_t cols = header.shape[1];
  for (int64_t i = 0; i < tokens.numel(); ++i) {
    PIPEPRUNE_CHECK(ids[i] >= 0 && (vocab_size <= 0 || ids[i] < vocab_size), FormatError,
                    file << ": token id " << ids[i] << " at [" << i / cols << ", " << i % cols << "] is outside "
                         << (vocab_size > 0 ? "the vocabulary [0, " + std::to_string(vocab_size) + ")" : "[0, inf)"));
  }
  return tokens;
}

void write_npy(const std::filesystem::path& path, const at::Tensor& tensor) {
  const char* descr = nullptr;
  switch (tensor.scalar_type()) {
    case c10::ScalarType::Long: descr = "<i8"; break;
    case c10::ScalarType::Int: descr = "<i4"; break;
    case c10::ScalarType::Float: descr = "<f4"; break;
    default:
      PIPEPRUNE_FAIL(FormatError, path.string() << ": cannot write dtype " << c10::toString(tensor.scalar_type())
                                                << " to .npy; write_npy takes int64, int32 or float32");
  }
  const at::Tensor data = tensor.to(at::kCPU).contiguous();
  std::string dict = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " +
                     python_tuple(data.sizes().vec()) + ", }";
  // numpy's rule: pad with spaces so magic + version + length + header + '\n' is a multiple of 64.
  const size_t padding = kAlign - ((10 + dict.size() + 1) % kAlign);
  dict.append(padding, ' ');
  dict += '\n';
  PIPEPRUNE_CHECK(dict.size() <= 0xFFFF, FormatError, path.string() << ": .npy header too long for format 1.0");
  std::string out(kMagic, kMagicBytes);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(dict.size() & 0xFF);
  out += static_cast<char>((dict.size() >> 8) & 0xFF);
  out += dict;
  if (data.nbytes() > 0) out.append(static_cast<const char*>(data.data_ptr()), data.nbytes());
  write_file_atomic(path, out);
}

}  // namespace pipeprune
