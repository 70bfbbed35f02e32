// Helpers for the torch.save tests: a builder of the protocol-2 pickle torch.save writes for a
// state dict (to make malformed ones on purpose), and archives written with LibTorch's own
// PyTorchStreamWriter, the writer torch.save uses.
#pragma once

#include <caffe2/serialize/inline_container.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace pipeprune::testing {

class PickleBuilder {
 public:
  static std::string unicode(const std::string& s) {
    std::string out = "X";
    for (int i = 0; i < 4; ++i) out += static_cast<char>((s.size() >> (8 * i)) & 0xFF);
    return out + s;
  }
  // LONG1 with 8 bytes: any int64.
  static std::string integer(int64_t v) {
    std::string out = "\x8a\x08";
    for (int i = 0; i < 8; ++i) out += static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xFF);
    return out;
  }
  static std::string int_tuple(const std::vector<int64_t>& values) {
    std::string out = "(";
    for (const int64_t v : values) out += integer(v);
    return out + "t";
  }

  void begin_dict() { out_ = std::string("\x80\x02}(", 4); }
  void tensor(const std::string& name, const std::string& storage_type, const std::string& key, int64_t numel,
              int64_t offset, const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides) {
    out_ += unicode(name) + "ctorch._utils\n_rebuild_tensor_v2\n(" + storage(storage_type, key, numel) + integer(offset) +
            int_tuple(sizes) + int_tuple(strides) + "\x89" + "ccollections\nOrderedDict\n)Rt" + "R";
  }
  // A _rebuild_tensor_v2 call whose size argument is `raw` pickle bytes.
  void tensor_with_raw_size(const std::string& name, const std::string& raw) {
    out_ += unicode(name) + "ctorch._utils\n_rebuild_tensor_v2\n(" + storage("FloatStorage", "0", 4) + integer(0) + raw +
            int_tuple({1}) + "\x89" + "ccollections\nOrderedDict\n)Rt" + "R";
  }
  std::string finish() { return out_ + "u."; }

 private:
  static std::string storage(const std::string& type, const std::string& key, int64_t numel) {
    return "(" + unicode("storage") + "ctorch\n" + type + "\n" + unicode(key) + unicode("cpu") + integer(numel) + "tQ";
  }
  std::string out_;
};

// Writes a zip archive as torch.save does: "data.pkl", then "data/<key>" for each record
// (stored, or deflated when `compress`), with the archive folder named after the file.
inline void write_archive(const std::filesystem::path& path, const std::string& pickle,
                          const std::map<std::string, std::string>& records, bool compress = false) {
  caffe2::serialize::PyTorchStreamWriter writer(path.string());
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  for (const auto& [key, bytes] : records) writer.writeRecord("data/" + key, bytes.data(), bytes.size(), compress);
  writer.writeEndOfFile();
}

}  // namespace pipeprune::testing
