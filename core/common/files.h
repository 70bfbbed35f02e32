// Small file helpers with one-line errors naming the path.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace pipeprune {

namespace fs = std::filesystem;

// Reads a whole file as bytes; IoError naming the path when it cannot.
std::string read_file(const fs::path& path);
// Parses a JSON file; FormatError "PATH: invalid JSON (...)" when it does not parse.
nlohmann::json read_json_file(const fs::path& path);
// Writes bytes to PATH.tmp, then renames over PATH, so readers never see half a file.
void write_file_atomic(const fs::path& path, const std::string& bytes);
// The same, durable before it returns: the file is fsync'd before the rename and its folder
// after, so after a crash PATH holds either nothing or all of `bytes`.
void write_file_durable(const fs::path& path, const std::string& bytes);

// A POSIX file descriptor, closed on every path. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd();
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Closes now; IoError naming `file` when close fails (NFS and some disks report write errors
  // only there).
  void close_checked(const std::string& file);

 private:
  int fd_ = -1;
};

// open(2) with O_CLOEXEC added; IoError "FILE: cannot open for WHAT (reason)" when it fails.
UniqueFd open_fd(const fs::path& file, int flags, const char* what, int mode = 0644);
// Writes all n_bytes at offset (retrying short writes and EINTR); IoError naming the file and
// `what` (e.g. "tensor model.norm.weight"), with a hint at a full disk.
void pwrite_all(int fd, const void* data, int64_t n_bytes, int64_t offset, const std::string& file,
                const std::string& what);
// fsync(2) of an open descriptor; IoError naming the file.
void fsync_fd(int fd, const std::string& file);

// An output folder built under a temporary name next to its target and renamed into place
// only by commit(). If the object is destroyed without commit(), the temporary folder is
// removed, so a failure never leaves a half-written output at the target path.
class StagedDirectory {
 public:
  // Throws IoError if target exists and overwrite is false. Any earlier staged folder of the
  // target is removed.
  StagedDirectory(fs::path target, bool overwrite);
  // Takes over the staged folder an earlier, unfinished run left for `target` (prune --resume);
  // IoError when there is none.
  static std::unique_ptr<StagedDirectory> adopt(fs::path target, bool overwrite);
  ~StagedDirectory();
  StagedDirectory(const StagedDirectory&) = delete;
  StagedDirectory& operator=(const StagedDirectory&) = delete;

  // The temporary folder used for `target`: ".NAME.partial" beside it. Derived from the target
  // alone, so every rank of a job computes the same path.
  static fs::path staging_path_for(const fs::path& target);

  const fs::path& path() const { return staging_; }
  const fs::path& target() const { return target_; }
  void commit();
  // From now on the folder stays when this object is destroyed uncommitted (it holds work a
  // later run can resume).
  void keep() { keep_ = true; }

 private:
  StagedDirectory() = default;
  fs::path target_;
  fs::path staging_;
  bool overwrite_ = false;
  bool committed_ = false;
  bool keep_ = false;
};

}  // namespace pipeprune
