#include "core/memory/hdf5_activation_store.h"

#include <hdf5.h>

#include <ATen/ATen.h>

#include <system_error>
#include <utility>
#include <vector>

#include "core/common/error.h"
#include "core/common/shape_text.h"
#include "core/common/log.h"
#include "core/memory/host_memory.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;

// HDF5 keeps its automatic error printing per thread in a thread-safe build: switch it off
// in every thread that touches a store, once.
void silence_hdf5_errors() {
  thread_local bool silenced = false;
  if (!silenced) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    silenced = true;
  }
}

// The most specific line of HDF5's error stack ("File too large" out of the sec2 driver's
// long write-failure text), then the stack is cleared. Empty when there is none.
std::string hdf5_error_detail() {
  std::string detail;
  auto innermost = [](unsigned n, const H5E_error2_t* entry, void* data) -> herr_t {
    if (n == 0 && entry->desc != nullptr) *static_cast<std::string*>(data) = entry->desc;
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost, &detail);
  H5Eclear2(H5E_DEFAULT);
  const std::string key = "error message = '";
  const size_t at = detail.find(key);
  if (at != std::string::npos) {
    const size_t end = detail.find('\'', at + key.size());
    detail = detail.substr(at + key.size(), end == std::string::npos ? std::string::npos : end - at - key.size());
  }
  for (char& c : detail) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return detail.empty() ? "no detail from HDF5" : detail;
}

// One HDF5 identifier and the function that closes it.
class H5Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Handle() = default;
  H5Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  H5Handle(H5Handle&& other) noexcept : id_(std::exchange(other.id_, -1)), closer_(other.closer_) {}
  H5Handle& operator=(H5Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, -1);
      closer_ = other.closer_;
    }
    return *this;
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  ~H5Handle() { reset(); }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now; returns false when HDF5 reports a failure (a final flush that did not fit).
  bool reset() {
    bool ok = true;
    if (id_ >= 0 && closer_ != nullptr) ok = closer_(id_) >= 0;
    id_ = -1;
    return ok;
  }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

// Bit-exact storage type: native floats where HDF5 has them, otherwise unsigned integers of
// the element width (no conversion ever happens: memory and file types are the same).
hid_t storage_type(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::kFloat: return H5T_NATIVE_FLOAT;
    case c10::kDouble: return H5T_NATIVE_DOUBLE;
    default: break;
  }
  switch (c10::elementSize(dtype)) {
    case 1: return H5T_NATIVE_UINT8;
    case 2: return H5T_NATIVE_UINT16;
    case 4: return H5T_NATIVE_UINT32;
    case 8: return H5T_NATIVE_UINT64;
    default: return H5T_NATIVE_UINT8;
  }
}

const char* dtype_name(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::kFloat: return "float32";
    case c10::kDouble: return "float64";
    case c10::kHalf: return "float16";
    case c10::kBFloat16: return "bfloat16";
    default: return c10::toString(dtype);
  }
}

// The samples of one (shape, dtype): dataset [n_samples, ...shape], one sample per chunk,
// with the file and memory dataspaces kept for reuse by every put/get.
struct SpillDataset {
  std::vector<int64_t> shape;
  c10::ScalarType dtype = c10::kFloat;
  int64_t sample_bytes = 0;
  hid_t type = -1;
  H5Handle dataset;
  H5Handle file_space;
  H5Handle memory_space;
  std::vector<hsize_t> start;  // [index, 0, 0, ...]
  std::vector<hsize_t> count;  // [1, ...shape]
};

struct Slot {
  at::Tensor ram;    // defined while the sample is held in RAM
  int dataset = -1;  // index into datasets_ while the sample is on disk
};

class Hdf5ActivationStore final : public SpillingActivationStore {
 public:
  Hdf5ActivationStore(int64_t n_samples, int64_t ram_budget_bytes, fs::path path)
      : slots_(static_cast<size_t>(n_samples)), budget_(ram_budget_bytes), path_(std::move(path)) {
    silence_hdf5_errors();
    std::error_code ec;
    PIPEPRUNE_CHECK(!fs::exists(path_, ec), IoError,
                    path_.string() << ": activation spill file already exists; another run may be using this "
                                      "--spill-dir: remove the file if not, or choose another --spill-dir");
    H5Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    if (fapl.valid()) {
      H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
      // The file is private to this process; flock fails on some cluster file systems.
      H5Pset_file_locking(fapl.get(), false, true);
    }
    file_ = H5Handle(H5Fcreate(path_.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get()), H5Fclose);
    PIPEPRUNE_CHECK(file_.valid(), IoError,
                    path_.string() << ": cannot create activation spill file (" << hdf5_error_detail()
                                   << "); make --spill-dir writable or choose another");
  }

  ~Hdf5ActivationStore() override {
    datasets_.clear();
    if (!file_.reset()) hdf5_error_detail();  // a final flush that failed: the file goes anyway
    std::error_code ec;
    fs::remove(path_, ec);
    if (ec) log::warn("{}: could not remove activation spill file: {}", path_.string(), ec.message());
  }

  int64_t size() const override { return static_cast<int64_t>(slots_.size()); }
  int64_t bytes_in_memory() const override { return bytes_in_memory_; }
  // Bytes of the samples that live on disk now (a sample rewritten in RAM no longer counts,
  // though HDF5 keeps its chunk allocated in the file).
  int64_t bytes_spilled() const override { return bytes_spilled_; }
  int64_t samples_spilled() const override { return samples_spilled_; }
  const fs::path& spill_path() const override { return path_; }

  void put(int64_t index, const at::Tensor& activation) override {
    check_index(index);
    silence_hdf5_errors();
    Slot& slot = slots_[static_cast<size_t>(index)];
    const int64_t bytes = static_cast<int64_t>(activation.nbytes());
    const int64_t ram_now = slot.ram.defined() ? static_cast<int64_t>(slot.ram.nbytes()) : 0;
    if (bytes_in_memory_ - ram_now + bytes <= budget_) {
      put_in_ram(slot, activation);
    } else {
      put_on_disk(index, slot, activation);
    }
  }

  at::Tensor get(int64_t index) const override {
    check_index(index);
    const Slot& slot = slots_[static_cast<size_t>(index)];
    if (slot.ram.defined()) return slot.ram;
    PIPEPRUNE_CHECK(slot.dataset >= 0, Error, "activation " << index << " was read before it was written");
    silence_hdf5_errors();
    const SpillDataset& d = datasets_[static_cast<size_t>(slot.dataset)];
    at::Tensor out = at::empty(d.shape, at::TensorOptions().dtype(d.dtype));
    const bool ok = select_sample(d, index) &&
                    H5Dread(d.dataset.get(), d.type, d.memory_space.get(), d.file_space.get(), H5P_DEFAULT,
                            out.data_ptr()) >= 0;
    PIPEPRUNE_CHECK(ok, IoError,
                    path_.string() << ": cannot read activation " << index << " back from the spill file ("
                                   << hdf5_error_detail() << "); was the file changed or removed during the run?");
    return out;
  }

 private:
  void check_index(int64_t index) const {
    PIPEPRUNE_CHECK(index >= 0 && index < size(), Error,
                    "activation index " << index << " outside [0, " << size() << ")");
  }

  void put_in_ram(Slot& slot, const at::Tensor& activation) {
    if (slot.ram.defined() && slot.ram.sizes() == activation.sizes() && slot.ram.dtype() == activation.dtype()) {
      slot.ram.copy_(activation);
    } else {
      if (slot.ram.defined()) bytes_in_memory_ -= static_cast<int64_t>(slot.ram.nbytes());
      slot.ram = at::Tensor();
      slot.ram = activation.to(at::TensorOptions().device(at::kCPU), /*non_blocking=*/false, /*copy=*/true,
                               at::MemoryFormat::Contiguous);
      bytes_in_memory_ += static_cast<int64_t>(slot.ram.nbytes());
    }
    forget_disk_copy(slot);
  }

  void put_on_disk(int64_t index, Slot& slot, const at::Tensor& activation) {
    // No copy for a contiguous CPU tensor: HDF5 writes straight from its storage.
    const at::Tensor source = activation.to(at::kCPU).contiguous();
    const int dataset = dataset_for(source);
    SpillDataset& d = datasets_[static_cast<size_t>(dataset)];
    // The old value is gone once we start writing over it: a failed write leaves the slot empty.
    forget_disk_copy(slot);
    if (slot.ram.defined()) {
      bytes_in_memory_ -= static_cast<int64_t>(slot.ram.nbytes());
      slot.ram = at::Tensor();
    }
    const bool ok = select_sample(d, index) &&
                    H5Dwrite(d.dataset.get(), d.type, d.memory_space.get(), d.file_space.get(), H5P_DEFAULT,
                             source.data_ptr()) >= 0;
    PIPEPRUNE_CHECK(ok, IoError,
                    path_.string() << ": cannot write activation spill file (disk full?): activation " << index
                                   << " of " << format_bytes(d.sample_bytes) << " after "
                                   << format_bytes(bytes_spilled_) << " spilled (" << hdf5_error_detail()
                                   << "); free space in --spill-dir, choose another, or raise the host memory budget");
    slot.dataset = dataset;
    bytes_spilled_ += d.sample_bytes;
    ++samples_spilled_;
  }

  void forget_disk_copy(Slot& slot) {
    if (slot.dataset < 0) return;
    bytes_spilled_ -= datasets_[static_cast<size_t>(slot.dataset)].sample_bytes;
    --samples_spilled_;
    slot.dataset = -1;
  }

  static bool select_sample(const SpillDataset& d, int64_t index) {
    std::vector<hsize_t> start = d.start;
    start[0] = static_cast<hsize_t>(index);
    return H5Sselect_hyperslab(d.file_space.get(), H5S_SELECT_SET, start.data(), nullptr, d.count.data(),
                               nullptr) >= 0;
  }

  // The dataset holding samples of this tensor's shape and dtype, created on first use.
  int dataset_for(const at::Tensor& sample) {
    for (size_t i = 0; i < datasets_.size(); ++i) {
      if (datasets_[i].dtype == sample.scalar_type() && at::IntArrayRef(datasets_[i].shape) == sample.sizes()) {
        return static_cast<int>(i);
      }
    }
    datasets_.push_back(create_dataset(sample));
    return static_cast<int>(datasets_.size() - 1);
  }

  SpillDataset create_dataset(const at::Tensor& sample) {
    SpillDataset d;
    d.shape = sample.sizes().vec();
    d.dtype = sample.scalar_type();
    d.sample_bytes = static_cast<int64_t>(sample.nbytes());
    d.type = storage_type(d.dtype);
    const std::string what = shape_text(sample.sizes()) + " " + dtype_name(d.dtype);
    PIPEPRUNE_CHECK(d.shape.size() + 1 <= H5S_MAX_RANK, Error,
                    path_.string() << ": cannot spill activations of " << d.shape.size() << " dimensions");
    PIPEPRUNE_CHECK(d.sample_bytes < (int64_t{1} << 32), Error,
                    path_.string() << ": one activation of " << what << " (" << format_bytes(d.sample_bytes)
                                   << ") exceeds HDF5's 4 GiB chunk limit; use a shorter --seqlen");
    d.count.push_back(1);
    for (int64_t n : d.shape) d.count.push_back(static_cast<hsize_t>(n));
    d.start.assign(d.count.size(), 0);
    std::vector<hsize_t> dims = d.count;
    dims[0] = static_cast<hsize_t>(slots_.size());
    const std::string name = datasets_.empty() ? "activations" : "activations_" + std::to_string(datasets_.size());

    H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    H5Handle dapl(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
    H5Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
    bool ok = dcpl.valid() && dapl.valid() && space.valid() &&
              H5Pset_chunk(dcpl.get(), static_cast<int>(d.count.size()), d.count.data()) >= 0 &&
              H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER) >= 0 &&
              H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_INCR) >= 0 &&
              // Every access is one whole chunk: a cache would only add a copy and delay errors.
              H5Pset_chunk_cache(dapl.get(), H5D_CHUNK_CACHE_NSLOTS_DEFAULT, 0, H5D_CHUNK_CACHE_W0_DEFAULT) >= 0;
    if (ok) {
      d.dataset = H5Handle(H5Dcreate2(file_.get(), name.c_str(), d.type, space.get(), H5P_DEFAULT, dcpl.get(),
                                      dapl.get()),
                           H5Dclose);
      d.file_space = H5Handle(H5Dget_space(d.dataset.get()), H5Sclose);
      d.memory_space =
          H5Handle(H5Screate_simple(static_cast<int>(d.count.size()), d.count.data(), nullptr), H5Sclose);
      ok = d.dataset.valid() && d.file_space.valid() && d.memory_space.valid() && write_dtype_attribute(d);
    }
    PIPEPRUNE_CHECK(ok, IoError,
                    path_.string() << ": cannot create the dataset for activations of " << what << " ("
                                   << hdf5_error_detail() << "); free space in --spill-dir or choose another");
    return d;
  }

  static bool write_dtype_attribute(const SpillDataset& d) {
    const std::string value = dtype_name(d.dtype);
    H5Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    if (!type.valid() || !space.valid() || H5Tset_size(type.get(), value.size()) < 0) return false;
    H5Handle attribute(H5Acreate2(d.dataset.get(), "dtype", type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                       H5Aclose);
    return attribute.valid() && H5Awrite(attribute.get(), type.get(), value.data()) >= 0;
  }

  std::vector<Slot> slots_;
  int64_t budget_;
  fs::path path_;
  H5Handle file_;
  std::vector<SpillDataset> datasets_;  // closed before file_
  int64_t bytes_in_memory_ = 0;
  int64_t bytes_spilled_ = 0;
  int64_t samples_spilled_ = 0;
};

}  // namespace

std::unique_ptr<SpillingActivationStore> make_spilling_activation_store(int64_t n_samples,
                                                                        int64_t ram_budget_bytes,
                                                                        const fs::path& spill_dir,
                                                                        const std::string& file_stem) {
  PIPEPRUNE_CHECK(n_samples >= 0, ConfigError, "activation store: n_samples " << n_samples << " is negative");
  PIPEPRUNE_CHECK(ram_budget_bytes >= 0, ConfigError,
                  "activation store: RAM budget " << ram_budget_bytes << " bytes is negative");
  PIPEPRUNE_CHECK(!file_stem.empty() && file_stem.find('/') == std::string::npos, Error,
                  "activation store: file stem '" << file_stem << "' must be a plain non-empty file name");
  std::error_code ec;
  PIPEPRUNE_CHECK(fs::is_directory(spill_dir, ec), IoError,
                  spill_dir.string() << ": --spill-dir is not an existing directory; create it or choose another");
  return std::make_unique<Hdf5ActivationStore>(n_samples, ram_budget_bytes, spill_dir / (file_stem + ".h5"));
}

}  // namespace pipeprune
