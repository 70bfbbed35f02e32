#include "core/tokenizer/sentencepiece_tokenizer.h"

#include <dlfcn.h>
#include <sentencepiece_processor.h>

#include <new>

#include "core/common/error.h"
#include "core/common/sanitizer.h"
#include "core/tokenizer/unicode_text.h"

namespace pipeprune::tok {
namespace {

namespace spm = sentencepiece;

constexpr const char* kLibrary = "libsentencepiece.so.0";

// AddressSanitizer kills the process on any dlopen with RTLD_DEEPBIND (google/sanitizers#611):
// the library would bind malloc and operator new past the sanitizer's own. Without DEEPBIND the
// protobuf clash above comes back, so an ASan build refuses tokenizer.model with an error.

// The isolated libsentencepiece and the non-virtual functions this file needs from it.
struct SpmLibrary {
  void (*construct)(spm::SentencePieceProcessor*) = nullptr;
  void (*destroy_status)(spm::util::Status*) = nullptr;
  std::string (*status_string)(const spm::util::Status*) = nullptr;
  std::string error;  // why the library is unusable; empty when it loaded

  static const SpmLibrary& get() {
    static const SpmLibrary library = load();
    return library;
  }

 private:
  static SpmLibrary load() {
    SpmLibrary lib;
    if (kAddressSanitizer) {
      lib.error = "this build has AddressSanitizer, which cannot load it; use a build without ASan";
      return lib;
    }
    // Never closed: the processors created from it may live until exit.
    void* handle = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (handle == nullptr) {
      const char* why = dlerror();
      lib.error = why != nullptr ? why : "dlopen failed";
      return lib;
    }
    lib.construct = reinterpret_cast<decltype(construct)>(
        dlsym(handle, "_ZN13sentencepiece22SentencePieceProcessorC1Ev"));
    lib.destroy_status =
        reinterpret_cast<decltype(destroy_status)>(dlsym(handle, "_ZN13sentencepiece4util6StatusD1Ev"));
    lib.status_string = reinterpret_cast<decltype(status_string)>(
        dlsym(handle, "_ZNK13sentencepiece4util6Status8ToStringB5cxx11Ev"));
    if (!lib.construct || !lib.destroy_status || !lib.status_string) {
      lib.error = "its C++ symbols are not the ones of sentencepiece 0.1.9x";
    }
    return lib;
  }
};

// A util::Status returned by a virtual call, destroyed through the library (its destructor
// is not inline, and referring to it would link libsentencepiece into the process).
class StatusHolder {
 public:
  template <typename Call>
  explicit StatusHolder(Call&& call) {
    status_ = ::new (static_cast<void*>(&storage_)) spm::util::Status(call());
  }
  ~StatusHolder() { SpmLibrary::get().destroy_status(status_); }
  StatusHolder(const StatusHolder&) = delete;
  StatusHolder& operator=(const StatusHolder&) = delete;

  bool ok() const { return status_->ok(); }
  std::string message() const { return SpmLibrary::get().status_string(status_); }

 private:
  alignas(spm::util::Status) unsigned char storage_[sizeof(spm::util::Status)];
  spm::util::Status* status_ = nullptr;
};

}  // namespace

void SentencePieceTokenizer::ProcessorDeleter::operator()(spm::SentencePieceProcessor* p) const {
  p->~SentencePieceProcessor();  // virtual: runs the library's destructor
  ::operator delete(static_cast<void*>(p));
}

SentencePieceTokenizer::SentencePieceTokenizer(const std::filesystem::path& file) : file_(file.string()) {
  PIPEPRUNE_CHECK(std::filesystem::is_regular_file(file), IoError,
                  file_ << ": cannot open for reading (no such file)");
  const SpmLibrary& lib = SpmLibrary::get();
  PIPEPRUNE_CHECK(lib.error.empty(), IoError,
                  file_ << ": cannot load " << kLibrary << " (" << lib.error
                        << "); install Debian's libsentencepiece0 or use a tokenizer.json");
  void* memory = ::operator new(sizeof(spm::SentencePieceProcessor));
  lib.construct(static_cast<spm::SentencePieceProcessor*>(memory));
  processor_.reset(static_cast<spm::SentencePieceProcessor*>(memory));
  const StatusHolder status([&] { return processor_->Load(file_); });
  PIPEPRUNE_CHECK(status.ok(), FormatError,
                  file_ << ": not a SentencePiece model (" << status.message()
                        << "); use the model's tokenizer.model or tokenizer.json");
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int64_t> SentencePieceTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  const std::string valid = utf8_lossy(text);
  const StatusHolder status([&] { return processor_->Encode(valid, &ids); });
  PIPEPRUNE_CHECK(status.ok(), FormatError, file_ << ": SentencePiece encode failed (" << status.message() << ")");
  return {ids.begin(), ids.end()};
}

std::string SentencePieceTokenizer::decode_ids(const std::vector<int>& ids) const {
  std::string text;
  const StatusHolder status([&] { return processor_->Decode(ids, &text); });
  PIPEPRUNE_CHECK(status.ok(), FormatError, file_ << ": SentencePiece decode failed (" << status.message() << ")");
  return text;
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  std::vector<int> plain;                            // ids SentencePiece decodes itself
  std::vector<std::pair<size_t, int>> controls;  // (ids of `plain` before it, control id)
  plain.reserve(ids.size());
  const int64_t size = vocab_size();
  for (int64_t id64 : ids) {
    if (id64 < 0 || id64 >= size) continue;
    const int id = static_cast<int>(id64);
    // <unk> is a special token in the equivalent tokenizer.json, so it is skipped as well.
    const bool special = processor_->IsControl(id) || processor_->IsUnknown(id);
    if (skip_special && special) continue;
    if (processor_->IsControl(id)) {
      controls.emplace_back(plain.size(), id);
    } else {
      plain.push_back(id);
    }
  }
  const std::string text = decode_ids(plain);
  if (controls.empty()) return text;
  // SentencePiece prints control pieces as nothing; put their names where they stood.
  std::string out;
  size_t copied = 0;
  for (const auto& [before, id] : controls) {
    const std::vector<int> head(plain.begin(), plain.begin() + static_cast<std::ptrdiff_t>(before));
    const size_t at = std::max(copied, std::min(decode_ids(head).size(), text.size()));
    out.append(text, copied, at - copied);
    out += processor_->IdToPiece(id);
    copied = at;
  }
  out.append(text, copied, std::string::npos);
  return out;
}

int64_t SentencePieceTokenizer::vocab_size() const { return processor_->GetPieceSize(); }

std::optional<int64_t> SentencePieceTokenizer::token_to_id(std::string_view token) const {
  const int id = processor_->PieceToId(token);
  if (id < 0 || id >= processor_->GetPieceSize() || processor_->IdToPiece(id) != token) {
    return std::nullopt;
  }
  return id;
}

bool SentencePieceTokenizer::is_byte_piece(int64_t id) const {
  return id >= 0 && id < vocab_size() && processor_->IsByte(static_cast<int>(id));
}

std::optional<int64_t> SentencePieceTokenizer::model_bos() const {
  const int id = processor_->bos_id();
  return id >= 0 ? std::optional<int64_t>(id) : std::nullopt;
}

std::optional<int64_t> SentencePieceTokenizer::model_eos() const {
  const int id = processor_->eos_id();
  return id >= 0 ? std::optional<int64_t>(id) : std::nullopt;
}

}  // namespace pipeprune::tok
