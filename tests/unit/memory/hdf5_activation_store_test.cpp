#include "core/memory/hdf5_activation_store.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/resource.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <limits>
#include <thread>
#include <vector>

#include "core/common/error.h"
#include "support/run_command.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A fresh folder, removed with what is left in it when the test binary ends.
fs::path temp_dir(const std::string& name) {
  struct Cleanup {
    std::vector<fs::path> dirs;
    ~Cleanup() {
      std::error_code ec;
      for (const auto& dir : dirs) fs::remove_all(dir, ec);
    }
  };
  static Cleanup cleanup;
  cleanup.dirs.push_back(testing::fresh_temp_dir("spill_" + name));
  return cleanup.dirs.back();
}

// Same dtype, same shape, same bytes (NaN payloads and -0.0 included).
bool same_bytes(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const at::Tensor ca = a.contiguous();
  const at::Tensor cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

// Seeded values with the awkward ones up front: NaN, -0.0, infinities, a denormal.
at::Tensor sample(at::IntArrayRef shape, at::ScalarType dtype, uint64_t seed) {
  at::Tensor t = at::randn(shape, at::make_generator<at::CPUGeneratorImpl>(seed), at::kFloat);
  float* p = t.data_ptr<float>();
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), -0.0f, std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(), 1e-40f};
  for (int64_t i = 0; i < std::min<int64_t>(5, t.numel()); ++i) p[i] = specials[i];
  return t.to(dtype);
}

int64_t nbytes(at::IntArrayRef shape, at::ScalarType dtype) {
  int64_t n = c10::elementSize(dtype);
  for (int64_t d : shape) n *= d;
  return n;
}

TEST(SpillingActivationStore, RoundTrip_IdenticalBytesInRamAndOnDisk) {
  const fs::path dir = temp_dir("round_trip");
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (int64_t budget : {int64_t{0}, int64_t{1} << 30}) {
      auto store = make_spilling_activation_store(3, budget, dir, "rt");
      std::vector<at::Tensor> put;
      for (int i = 0; i < 3; ++i) {
        put.push_back(sample({1, 5, 7}, dtype, 10 + i));
        store->put(i, put.back());
      }
      for (int i = 0; i < 3; ++i) {
        EXPECT_TRUE(same_bytes(store->get(i), put[i])) << c10::toString(dtype) << " budget " << budget << " #" << i;
      }
      EXPECT_EQ(store->samples_spilled(), budget == 0 ? 3 : 0);
    }
  }
}

TEST(SpillingActivationStore, MoreThanBudget_FirstFitInRamRestOnDisk) {
  const fs::path dir = temp_dir("budget");
  const std::vector<int64_t> shape = {1, 16, 64};  // 4 KiB in fp32
  const int64_t each = nbytes(shape, at::kFloat);
  auto store = make_spilling_activation_store(7, 2 * each + each / 2, dir, "budget");
  EXPECT_EQ(store->spill_path(), dir / "budget.h5");
  EXPECT_TRUE(fs::exists(store->spill_path()));
  std::vector<at::Tensor> put;
  for (int i = 0; i < 7; ++i) {
    put.push_back(sample(shape, at::kFloat, 100 + i));
    store->put(i, put.back());
    EXPECT_LE(store->bytes_in_memory(), 2 * each + each / 2);
  }
  EXPECT_EQ(store->bytes_in_memory(), 2 * each);
  EXPECT_EQ(store->bytes_spilled(), 5 * each);
  EXPECT_EQ(store->samples_spilled(), 5);
  EXPECT_GE(static_cast<int64_t>(fs::file_size(store->spill_path())), 5 * each);
  for (int i = 0; i < 7; ++i) EXPECT_TRUE(same_bytes(store->get(i), put[i])) << i;
  // A RAM sample is the stored tensor itself (no copy per get); a disk sample a fresh one.
  EXPECT_EQ(store->get(0).data_ptr(), store->get(0).data_ptr());
  EXPECT_NE(store->get(6).data_ptr(), store->get(6).data_ptr());
}

TEST(SpillingActivationStore, PutTwice_LatestValueWherePlaced) {
  const fs::path dir = temp_dir("overwrite");
  const std::vector<int64_t> shape = {2, 32};
  const int64_t each = nbytes(shape, at::kFloat);
  auto store = make_spilling_activation_store(3, each, dir, "ow");
  store->put(0, sample(shape, at::kFloat, 1));  // RAM
  store->put(1, sample(shape, at::kFloat, 2));  // disk
  const void* ram_storage = store->get(0).data_ptr();

  const at::Tensor a = sample(shape, at::kFloat, 3);
  store->put(0, a);  // RAM -> RAM, same shape: copied into the same storage
  EXPECT_EQ(store->get(0).data_ptr(), ram_storage);
  EXPECT_TRUE(same_bytes(store->get(0), a));
  const at::Tensor b = sample(shape, at::kFloat, 4);
  store->put(1, b);  // disk -> disk
  EXPECT_TRUE(same_bytes(store->get(1), b));
  EXPECT_EQ(store->bytes_in_memory(), each);
  EXPECT_EQ(store->bytes_spilled(), each);

  const at::Tensor big = sample({4, 32}, at::kFloat, 5);
  store->put(0, big);  // grows past the budget: RAM -> disk, in a second dataset
  EXPECT_EQ(store->bytes_in_memory(), 0);
  EXPECT_EQ(store->bytes_spilled(), each + 2 * each);
  const at::Tensor c = sample(shape, at::kFloat, 6);
  store->put(1, c);  // room in RAM again: disk -> RAM
  EXPECT_EQ(store->bytes_in_memory(), each);
  EXPECT_EQ(store->bytes_spilled(), 2 * each);
  EXPECT_EQ(store->samples_spilled(), 1);
  EXPECT_TRUE(same_bytes(store->get(0), big));
  EXPECT_TRUE(same_bytes(store->get(1), c));
  EXPECT_THROW(store->get(2), Error);
  EXPECT_THROW(store->get(3), Error);
  EXPECT_THROW(store->put(-1, c), Error);
}

TEST(SpillingActivationStore, NonContiguousInput_StoredAsItsValues) {
  const fs::path dir = temp_dir("strided");
  auto store = make_spilling_activation_store(2, 600, dir, "strided");
  const at::Tensor t = sample({12, 10}, at::kFloat, 7).t();  // 480 bytes: the first fits in RAM
  store->put(0, t);
  store->put(1, t);
  EXPECT_EQ(store->samples_spilled(), 1);
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(store->get(i).is_contiguous());
    EXPECT_TRUE(same_bytes(store->get(i), t.contiguous())) << i;
  }
}

TEST(SpillingActivationStore, FileLayout_OneChunkedDatasetWithDtypeAttribute) {
  const fs::path dir = temp_dir("layout");
  auto store = make_spilling_activation_store(4, 0, dir, "layout");
  const at::Tensor x = sample({1, 3, 8}, at::kBFloat16, 8);
  store->put(2, x);
  // A second open in the process must match the store's file-locking setting (off).
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_file_locking(fapl, false, true);
  hid_t file = H5Fopen(store->spill_path().c_str(), H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  ASSERT_GE(file, 0);
  hid_t dataset = H5Dopen2(file, "activations", H5P_DEFAULT);
  ASSERT_GE(dataset, 0);
  hid_t space = H5Dget_space(dataset);
  hsize_t dims[4] = {0};
  EXPECT_EQ(H5Sget_simple_extent_dims(space, dims, nullptr), 4);
  EXPECT_EQ(std::vector<hsize_t>(dims, dims + 4), (std::vector<hsize_t>{4, 1, 3, 8}));
  hid_t dcpl = H5Dget_create_plist(dataset);
  hsize_t chunk[4] = {0};
  EXPECT_EQ(H5Pget_chunk(dcpl, 4, chunk), 4);
  EXPECT_EQ(std::vector<hsize_t>(chunk, chunk + 4), (std::vector<hsize_t>{1, 1, 3, 8}));
  hid_t type = H5Dget_type(dataset);
  EXPECT_GT(H5Tequal(type, H5T_NATIVE_UINT16), 0);
  hid_t attribute = H5Aopen(dataset, "dtype", H5P_DEFAULT);
  ASSERT_GE(attribute, 0);
  hid_t attribute_type = H5Aget_type(attribute);
  std::string value(H5Tget_size(attribute_type), '\0');
  H5Aread(attribute, attribute_type, value.data());
  EXPECT_EQ(value, "bfloat16");
  H5Tclose(attribute_type);
  H5Aclose(attribute);
  H5Tclose(type);
  H5Pclose(dcpl);
  H5Sclose(space);
  H5Dclose(dataset);
  H5Fclose(file);
}

TEST(SpillingActivationStore, Destroyed_FileRemoved) {
  const fs::path dir = temp_dir("removed");
  fs::path path;
  {
    auto store = make_spilling_activation_store(2, 0, dir, "gone");
    path = store->spill_path();
    store->put(0, sample({64}, at::kFloat, 9));
    EXPECT_TRUE(fs::exists(path));
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_TRUE(fs::is_empty(dir));
}

TEST(SpillingActivationStore, ExceptionMidWay_FileRemovedWhileUnwinding) {
  const fs::path dir = temp_dir("unwind");
  fs::path path;
  try {
    auto store = make_spilling_activation_store(4, 0, dir, "unwind");
    path = store->spill_path();
    store->put(0, sample({64}, at::kFloat, 10));
    store->put(1, sample({64}, at::kFloat, 11));
    store->get(3);  // never written: throws
    FAIL() << "get of an unwritten sample did not throw";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("activation 3 was read before it was written"));
  }
  EXPECT_FALSE(path.empty());
  EXPECT_FALSE(fs::exists(path));
}

TEST(SpillingActivationStore, MissingSpillDir_IoErrorNamingIt) {
  const fs::path dir = temp_dir("missing") / "not_there";
  try {
    make_spilling_activation_store(2, 0, dir, "x");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_THAT(e.what(), HasSubstr(dir.string() + ": --spill-dir is not an existing directory"));
  }
  const fs::path file = temp_dir("not_a_dir") / "plain_file";
  std::ofstream(file) << "x";
  EXPECT_THROW(make_spilling_activation_store(2, 0, file, "x"), IoError);
}

TEST(SpillingActivationStore, UnwritableSpillDir_OneLineIoErrorNoHdf5Stack) {
  // /proc/self refuses new files even to root, which ignores permission bits.
  ::testing::internal::CaptureStderr();
  try {
    make_spilling_activation_store(2, 0, "/proc/self", "x");
    ADD_FAILURE();
  } catch (const IoError& e) {
    EXPECT_THAT(e.what(), HasSubstr("/proc/self/x.h5: cannot create activation spill file"));
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

TEST(SpillingActivationStore, ExistingFile_IoErrorAndFileKept) {
  const fs::path dir = temp_dir("existing");
  std::ofstream(dir / "taken.h5") << "not ours";
  EXPECT_THROW(make_spilling_activation_store(2, 0, dir, "taken"), IoError);
  std::ifstream in(dir / "taken.h5");
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "not ours");
}

// RLIMIT_FSIZE stands in for a full disk: writes past the limit fail with EFBIG.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    std::signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &saved_);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() { setrlimit(RLIMIT_FSIZE, &saved_); }

 private:
  rlimit saved_{};
};

TEST(SpillingActivationStore, DiskFull_IoErrorNamingFileThenFileRemoved) {
  const fs::path dir = temp_dir("disk_full");
  fs::path path;
  std::vector<at::Tensor> put;
  ::testing::internal::CaptureStderr();
  {
    auto store = make_spilling_activation_store(16, 0, dir, "full");
    path = store->spill_path();
    FileSizeLimit limit(256 << 10);  // room for a few 64 KiB samples, not 16
    int64_t written = 0;
    try {
      for (int i = 0; i < 16; ++i) {
        put.push_back(sample({128, 128}, at::kFloat, 20 + i));
        store->put(i, put.back());
        ++written;
      }
      ADD_FAILURE() << "16 x 64 KiB fit under a 256 KiB file size limit";
    } catch (const IoError& e) {
      EXPECT_THAT(e.what(), HasSubstr(path.string() + ": cannot write activation spill file (disk full?)"));
      EXPECT_THAT(e.what(), HasSubstr("File too large"));
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
    EXPECT_GE(written, 1);
    EXPECT_LT(written, 16);
    // What was written before the failure still reads back; the failed sample is empty.
    for (int64_t i = 0; i < written; ++i) EXPECT_TRUE(same_bytes(store->get(i), put[i])) << i;
    EXPECT_THROW(store->get(written), Error);
    EXPECT_EQ(store->samples_spilled(), written);
  }
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_FALSE(fs::exists(path));
}

// The pipeline's pattern: every input of a layer is stored, then each is read while the
// layer's output for it is stored in a second store; the stores swap roles for the next layer.
TEST(SpillingActivationStore, PingPongBetweenTwoStores_MatchesInRamReference) {
  const fs::path dir = temp_dir("ping_pong");
  const std::vector<int64_t> shape = {1, 8, 32};
  const int64_t each = nbytes(shape, at::kFloat);
  const int n = 6;
  auto a = make_spilling_activation_store(n, 2 * each, dir, "a");
  auto b = make_spilling_activation_store(n, 3 * each, dir, "b");
  std::vector<at::Tensor> reference;
  for (int i = 0; i < n; ++i) {
    reference.push_back(at::randn(shape, at::make_generator<at::CPUGeneratorImpl>(200 + i)));
    a->put(i, reference[i]);
  }
  SpillingActivationStore* in = a.get();
  SpillingActivationStore* out = b.get();
  for (int layer = 0; layer < 4; ++layer) {
    for (int i = 0; i < n; ++i) {
      const at::Tensor x = in->get(i);
      out->put(i, x * 1.5f + static_cast<float>(layer));
      reference[i] = reference[i] * 1.5f + static_cast<float>(layer);
    }
    std::swap(in, out);
    EXPECT_GT(in->samples_spilled(), 0);
    EXPECT_LT(in->samples_spilled(), n);
  }
  for (int i = 0; i < n; ++i) EXPECT_TRUE(same_bytes(in->get(i), reference[i])) << i;
}

TEST(SpillingActivationStore, StoresInTwoThreads_Independent) {
  const fs::path dir = temp_dir("threads");
  std::vector<bool> ok(2, false);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      auto store = make_spilling_activation_store(20, 0, dir, "thread" + std::to_string(t));
      std::vector<at::Tensor> put;
      for (int i = 0; i < 20; ++i) {
        put.push_back(sample({16, 64}, at::kFloat, 1000 * t + i));
        store->put(i, put.back());
      }
      bool all = true;
      for (int i = 0; i < 20; ++i) all = all && same_bytes(store->get(i), put[i]);
      ok[t] = all;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_TRUE(ok[0]);
  EXPECT_TRUE(ok[1]);
}

TEST(SpillingActivationStore, NegativeSizes_ConfigError) {
  const fs::path dir = temp_dir("negative");
  EXPECT_THROW(make_spilling_activation_store(-1, 0, dir, "x"), ConfigError);
  EXPECT_THROW(make_spilling_activation_store(1, -5, dir, "x"), ConfigError);
}

}  // namespace
}  // namespace pipeprune
