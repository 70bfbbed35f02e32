#include "core/io/torch_archive.h"

#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>

#include "core/common/error.h"
#include "core/common/shape_text.h"
#include "core/io/torch_pickle.h"

namespace pipeprune {
namespace {

// PyTorchStreamReader reads through this adapter, straight from the caller's mapping; a read
// past the end comes back short, which miniz reports as a corrupt archive.
class MappedReadAdapter final : public caffe2::serialize::ReadAdapterInterface {
 public:
  MappedReadAdapter(const uint8_t* base, int64_t size) : base_(base), size_(static_cast<size_t>(size)) {}
  size_t size() const override { return size_; }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    // miniz asks for 0 bytes into a null buffer for an empty record (fuzz_torch_bin, UBSan:
    // memcpy's arguments must not be null even for 0 bytes).
    if (pos >= size_ || n == 0) return 0;
    n = std::min<size_t>(n, size_ - static_cast<size_t>(pos));
    std::memcpy(buf, base_ + pos, n);
    return n;
  }

 private:
  const uint8_t* base_;
  size_t size_;
};

uint64_t le(const uint8_t* p, int n_bytes) {
  uint64_t v = 0;
  for (int i = n_bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// What the zip central directory says of one record. PyTorchStreamReader gives the data
// offset; LibTorch 1.13 has no call for a record's size or compression (getRecordSize came
// later, and getRecord reads the whole record), so those come from the directory itself.
struct ZipEntry {
  uint64_t method = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;
};

// Central directory entries by full name ("archive/data/0"), zip64 included (shards > 4 GiB).
// Read before PyTorchStreamReader sees the archive (refuse_impossible_records).
std::map<std::string, ZipEntry> zip_directory(const std::string& file, const uint8_t* base, int64_t size) {
  const auto corrupt = [&](const char* what) {
    PIPEPRUNE_FAIL(FormatError, file << ": zip central directory: " << what << "; the file is truncated or corrupt");
  };
  constexpr int64_t kEndSize = 22;
  int64_t end = -1;
  for (int64_t at = size - kEndSize; at >= 0 && at >= size - kEndSize - 0xFFFF; --at) {
    if (le(base + at, 4) == 0x06054b50) {
      end = at;
      break;
    }
  }
  if (end < 0) corrupt("no end-of-directory record");
  uint64_t entries = le(base + end + 10, 2);
  uint64_t dir_size = le(base + end + 12, 4);
  uint64_t dir_offset = le(base + end + 16, 4);
  // zip64: a locator just before the end record points at the zip64 end record. miniz reads it
  // whenever it is there, not only when the 32-bit fields are saturated, so this reader must
  // too, or the two see different directories (fuzz_torch_bin: an end record of 0 entries in
  // front of a zip64 one listing a record of 2^56 bytes).
  const bool locator = end >= 20 && le(base + end - 20, 4) == 0x07064b50;
  if (locator || entries == 0xFFFF || dir_size == 0xFFFFFFFF || dir_offset == 0xFFFFFFFF) {
    if (!locator) corrupt("no zip64 locator");
    const uint64_t end64 = le(base + end - 20 + 8, 8);
    if (size < 56 || end64 > static_cast<uint64_t>(size) - 56 || le(base + end64, 4) != 0x06064b50) corrupt("bad zip64 end record");
    entries = le(base + end64 + 32, 8);
    dir_size = le(base + end64 + 40, 8);
    dir_offset = le(base + end64 + 48, 8);
  }
  if (dir_offset > static_cast<uint64_t>(size) || dir_size > static_cast<uint64_t>(size) - dir_offset) {
    corrupt("the directory lies outside the file");
  }
  std::map<std::string, ZipEntry> out;
  const uint8_t* p = base + dir_offset;
  const uint8_t* const dir_end = p + dir_size;
  for (uint64_t i = 0; i < entries; ++i) {
    if (dir_end - p < 46 || le(p, 4) != 0x02014b50) corrupt("an entry header is missing");
    const uint64_t name_len = le(p + 28, 2), extra_len = le(p + 30, 2), comment_len = le(p + 32, 2);
    if (static_cast<uint64_t>(dir_end - p - 46) < name_len + extra_len + comment_len) corrupt("an entry runs past the end");
    ZipEntry e{le(p + 10, 2), le(p + 20, 4), le(p + 24, 4)};
    // The zip64 extra field (id 1) holds, in order, those of the sizes stored as 0xFFFFFFFF.
    for (const uint8_t* x = p + 46 + name_len; x + 4 <= p + 46 + name_len + extra_len;) {
      const uint64_t id = le(x, 2), len = le(x + 2, 2);
      const uint8_t* field = x + 4;
      if (field + len > p + 46 + name_len + extra_len) corrupt("an extra field runs past its entry");
      if (id == 1) {
        for (uint64_t* v : {&e.size, &e.compressed_size}) {
          if (*v != 0xFFFFFFFF) continue;
          if (field + 8 > x + 4 + len) corrupt("a zip64 field is short");
          *v = le(field, 8);
          field += 8;
        }
      }
      x += 4 + len;
    }
    out[std::string(reinterpret_cast<const char*>(p + 46), name_len)] = e;
    p += 46 + name_len + extra_len + comment_len;
  }
  return out;
}

// torch's dtype spelling of a storage class, for the error on one pipeprune cannot read.
std::string storage_dtype_name(const std::string& type) {
  static const std::map<std::string, std::string> names = {
      {"FloatStorage", "float32"},   {"HalfStorage", "float16"},    {"BFloat16Storage", "bfloat16"},
      {"DoubleStorage", "float64"},  {"LongStorage", "int64"},      {"IntStorage", "int32"},
      {"ShortStorage", "int16"},     {"CharStorage", "int8"},       {"ByteStorage", "uint8"},
      {"BoolStorage", "bool"},       {"ComplexFloatStorage", "complex64"},
      {"ComplexDoubleStorage", "complex128"}};
  const auto it = names.find(type);
  return it == names.end() ? type : it->second;
}

std::optional<DType> storage_dtype(const std::string& type) {
  if (type == "FloatStorage") return DType::kF32;
  if (type == "HalfStorage") return DType::kF16;
  if (type == "BFloat16Storage") return DType::kBF16;
  return std::nullopt;
}

// Where one storage record's bytes lie in the file.
struct Record {
  int64_t offset = 0;
  int64_t size = 0;
};

class ArchiveReader {
 public:
  ArchiveReader(const std::string& file, const uint8_t* base, int64_t size)
      : file_(file), base_(base), size_(size), reader_(std::make_shared<MappedReadAdapter>(base, size)) {}

  std::vector<TensorInfo> tensors() {
    check_byte_order();
    PIPEPRUNE_CHECK(reader_.hasRecord("data.pkl"), FormatError,
                    file_ << ": the zip archive has no data.pkl record; it is not a torch.save checkpoint "
                          << "(a TorchScript module?)");
    const auto [pickle, n] = reader_.getRecord("data.pkl");
    std::vector<TensorInfo> out;
    for (const PickledTensor& t : parse_torch_state_dict(file_, static_cast<const uint8_t*>(pickle.get()), n)) {
      out.push_back(tensor_info(t));
    }
    std::sort(out.begin(), out.end(), [](const TensorInfo& a, const TensorInfo& b) {
      return a.file_offset != b.file_offset ? a.file_offset < b.file_offset : a.name < b.name;
    });
    return out;
  }

 private:
  void check_byte_order() {
    // Written since PyTorch 2.1; older archives are little-endian, as is every machine we run on.
    if (!reader_.hasRecord("byteorder")) return;
    const auto [bytes, n] = reader_.getRecord("byteorder");
    const std::string order(static_cast<const char*>(bytes.get()), n);
    PIPEPRUNE_CHECK(order == "little", FormatError,
                    file_ << ": saved on a " << order << "-endian machine; pipeprune reads little-endian checkpoints");
  }

  // Directory entries by record name: the directory's names carry the archive's folder
  // ("pytorch_model/data/0"), PyTorchStreamReader's do not (it has checked that every record
  // shares that one folder).
  const std::map<std::string, ZipEntry>& directory() {
    if (directory_.empty()) {
      for (auto& [full, e] : zip_directory(file_, base_, size_)) {
        const size_t slash = full.find('/');
        if (slash != std::string::npos) directory_.emplace(full.substr(slash + 1), e);
      }
    }
    return directory_;
  }

  // The storage's record, checked once per key: present, stored uncompressed, inside the file.
  Record record(const std::string& key) {
    const auto cached = records_.find(key);
    if (cached != records_.end()) return cached->second;
    const std::string name = "data/" + key;
    PIPEPRUNE_CHECK(reader_.hasRecord(name), FormatError,
                    file_ << ": data.pkl refers to storage " << key << " but the archive has no record " << name
                          << "; the file is corrupt");
    const auto found = directory().find(name);
    PIPEPRUNE_CHECK(found != directory().end(), FormatError,
                    file_ << ": record " << name << " is missing from the zip central directory; the file is corrupt");
    const ZipEntry* entry = &found->second;
    PIPEPRUNE_CHECK(entry->method == 0 && entry->compressed_size == entry->size, FormatError,
                    file_ << ": record " << name << " is compressed (zip method " << entry->method
                          << "); torch.save stores storages uncompressed, so the file was repacked: "
                          << "re-save it with torch.save or convert it to safetensors");
    Record r;
    r.offset = static_cast<int64_t>(reader_.getRecordOffset(name));
    PIPEPRUNE_CHECK(entry->size <= static_cast<uint64_t>(size_) && r.offset <= size_ - static_cast<int64_t>(entry->size),
                    FormatError,
                    file_ << ": record " << name << " (" << entry->size << " bytes at offset " << r.offset
                          << ") runs past the end of the file (" << size_ << " bytes); the file is truncated");
    r.size = static_cast<int64_t>(entry->size);
    records_.emplace(key, r);
    return r;
  }

  TensorInfo tensor_info(const PickledTensor& t) {
    const std::string where = file_ + ": tensor " + t.name;
    const std::optional<DType> dtype = storage_dtype(t.storage.type);
    PIPEPRUNE_CHECK(dtype.has_value(), FormatError,
                    where << " has dtype " << storage_dtype_name(t.storage.type) << " (torch." << t.storage.type
                          << "); pipeprune reads F32, F16 and BF16");
    const auto [known, inserted] = storages_.emplace(t.storage.key, t.storage);
    PIPEPRUNE_CHECK(inserted || (known->second.type == t.storage.type && known->second.numel == t.storage.numel),
                    FormatError,
                    where << ": storage " << t.storage.key << " is described with two types or sizes; the file is corrupt");
    TensorInfo info;
    info.name = t.name;
    info.dtype = *dtype;
    info.shape = t.sizes;
    const int64_t esize = element_size(*dtype);
    int64_t numel = 1;
    for (const int64_t d : t.sizes) {
      PIPEPRUNE_CHECK(d >= 0 && !__builtin_mul_overflow(numel, d, &numel), FormatError,
                      where << ": size " << shape_text(t.sizes) << " is negative or overflows; the file is corrupt");
    }
    info.numel = numel;
    // torch's is_contiguous(): a dimension of size 1 may carry any stride, an empty tensor any
    // strides; the bytes are the same as those of the contiguous tensor.
    int64_t expected = 1;
    for (size_t d = t.sizes.size(); d-- > 0 && numel > 0;) {
      PIPEPRUNE_CHECK(t.sizes[d] == 1 || t.strides[d] == expected, FormatError,
                      where << " is not contiguous (size " << shape_text(t.sizes) << ", stride "
                            << shape_text(t.strides) << "); save it after .contiguous(), or as safetensors");
      expected *= t.sizes[d];
    }
    const PickledStorage& s = t.storage;
    int64_t storage_bytes = 0;
    PIPEPRUNE_CHECK(s.numel >= 0 && t.storage_offset >= 0 && t.storage_offset <= s.numel &&
                        numel <= s.numel - t.storage_offset,
                    FormatError,
                    where << ": storage_offset " << t.storage_offset << " + " << numel << " elements do not fit its storage "
                          << s.key << " of " << s.numel << " elements; the file is corrupt");
    PIPEPRUNE_CHECK(!__builtin_mul_overflow(s.numel, esize, &storage_bytes), FormatError,
                    where << ": storage " << s.key << " of " << s.numel
                          << " elements overflows a 64-bit byte count; the file is corrupt");
    const Record r = record(s.key);
    PIPEPRUNE_CHECK(storage_bytes <= r.size, FormatError,
                    where << ": storage " << s.key << " of " << s.numel << " " << storage_dtype_name(s.type)
                          << " elements needs " << storage_bytes << " bytes but its record holds " << r.size
                          << "; the file is corrupt");
    info.n_bytes = numel * esize;  // <= storage_bytes: no overflow
    info.file_offset = r.offset + t.storage_offset * esize;
    return info;
  }

  const std::string& file_;
  const uint8_t* base_;
  int64_t size_;
  caffe2::serialize::PyTorchStreamReader reader_;
  std::map<std::string, ZipEntry> directory_;
  std::map<std::string, Record> records_;
  std::map<std::string, PickledStorage> storages_;
};

// torch.save before 1.6 (or with _use_new_zipfile_serialization=False) writes a pickle stream,
// not a zip: anything not starting with a zip local header is reported as that.
bool is_zip(const uint8_t* base, int64_t size) { return size >= 4 && le(base, 4) == 0x04034b50; }

// PyTorchStreamReader (miniz) allocates the size the zip directory claims for a record before
// reading a byte of it, already in its constructor (the version record), so corrupt sizes must
// be refused before it runs: found by fuzz_torch_bin (records claiming 0x32000000000002e7 and
// 0x10000000002 bytes in a 3174-byte file). A stored record fits in the file; a deflated one
// expands at most 1032 times (deflate's limit).
void refuse_impossible_records(const std::string& file, const uint8_t* base, int64_t size) {
  for (const auto& [name, e] : zip_directory(file, base, size)) {
    const uint64_t limit =
        e.method == 0 ? static_cast<uint64_t>(size) : std::min<uint64_t>(e.compressed_size, size) * 1032;
    PIPEPRUNE_CHECK(e.size <= limit, FormatError,
                    file << ": the zip directory gives record " << name << " " << e.size << " bytes, more than the "
                         << size << "-byte file can hold; the file is corrupt");
  }
}

}  // namespace

std::vector<TensorInfo> read_torch_archive(const std::string& file, const uint8_t* base, int64_t size) {
  PIPEPRUNE_CHECK(is_zip(base, size), FormatError,
                  file << ": not a zip-format torch.save archive (saved by PyTorch < 1.6?); re-save it with a "
                       << "current PyTorch or convert it to safetensors");
  refuse_impossible_records(file, base, size);
  try {
    ArchiveReader reader(file, base, size);
    return reader.tensors();
  } catch (const c10::Error& e) {
    // PyTorchStreamReader's (miniz's) complaint: the first line, without LibTorch's backtrace.
    std::string what = e.what_without_backtrace();
    what = what.substr(0, what.find('\n'));
    PIPEPRUNE_FAIL(FormatError, file << ": not a readable torch.save zip archive (" << what
                                     << "); the file is truncated or corrupt");
  }
}

}  // namespace pipeprune
