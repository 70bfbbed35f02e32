#include "core/common/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/common/error.h"

namespace pipeprune {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  PIPEPRUNE_CHECK(in.good(), IoError,
                  path.string() << ": cannot open for reading (" << std::strerror(errno) << ")");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  PIPEPRUNE_CHECK(!in.bad(), IoError, path.string() << ": read failed");
  return buffer.str();
}

nlohmann::json read_json_file(const fs::path& path) {
  const std::string text = read_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for numbers like 1e405
    PIPEPRUNE_FAIL(FormatError, path.string() << ": invalid JSON (" << e.what() << ")");
  }
}

void write_file_atomic(const fs::path& path, const std::string& bytes) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    PIPEPRUNE_CHECK(out.good(), IoError,
                    tmp.string() << ": cannot open for writing (" << std::strerror(errno) << ")");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    PIPEPRUNE_CHECK(out.good(), IoError, tmp.string() << ": write failed (disk full?)");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  PIPEPRUNE_CHECK(!ec, IoError, path.string() << ": cannot rename into place (" << ec.message() << ")");
}

void write_file_durable(const fs::path& path, const std::string& bytes) {
  const fs::path tmp = path.string() + ".tmp";
  {
    UniqueFd fd = open_fd(tmp, O_WRONLY | O_CREAT | O_TRUNC, "writing");
    pwrite_all(fd.get(), bytes.data(), static_cast<int64_t>(bytes.size()), 0, tmp.string(), "the contents");
    fsync_fd(fd.get(), tmp.string());
    fd.close_checked(tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  PIPEPRUNE_CHECK(!ec, IoError, path.string() << ": cannot rename into place (" << ec.message() << ")");
  const fs::path folder = path.has_parent_path() ? path.parent_path() : fs::path(".");
  UniqueFd dir = open_fd(folder, O_RDONLY | O_DIRECTORY, "syncing");
  fsync_fd(dir.get(), folder.string());
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

void UniqueFd::close_checked(const std::string& file) {
  const int rc = ::close(fd_);
  fd_ = -1;
  PIPEPRUNE_CHECK(rc == 0, IoError, file << ": close failed (" << std::strerror(errno) << ")");
}

UniqueFd open_fd(const fs::path& file, int flags, const char* what, int mode) {
  UniqueFd fd(::open(file.c_str(), flags | O_CLOEXEC, mode));
  PIPEPRUNE_CHECK(fd.valid(), IoError, file.string() << ": cannot open for " << what << " (" << std::strerror(errno) << ")");
  return fd;
}

void pwrite_all(int fd, const void* data, int64_t n_bytes, int64_t offset, const std::string& file,
                const std::string& what) {
  const char* bytes = static_cast<const char*>(data);
  while (n_bytes > 0) {
    const ssize_t done = ::pwrite(fd, bytes, static_cast<size_t>(n_bytes), static_cast<off_t>(offset));
    if (done < 0 && errno == EINTR) continue;
    PIPEPRUNE_CHECK(done > 0, IoError,
                    file << ": writing " << what << " failed ("
                         << (done < 0 ? std::strerror(errno) : "no progress") << "; is the disk full?)");
    bytes += done;
    n_bytes -= done;
    offset += done;
  }
}

void fsync_fd(int fd, const std::string& file) {
  PIPEPRUNE_CHECK(::fsync(fd) == 0, IoError, file << ": fsync failed (" << std::strerror(errno) << ")");
}

namespace {
fs::path without_trailing_slash(const fs::path& path) {
  return path.has_filename() ? path : path.parent_path();
}
}  // namespace

fs::path StagedDirectory::staging_path_for(const fs::path& target) {
  const fs::path absolute = without_trailing_slash(fs::absolute(target));
  return absolute.parent_path() / ("." + absolute.filename().string() + ".partial");
}

StagedDirectory::StagedDirectory(fs::path target, bool overwrite)
    : target_(std::move(target)), overwrite_(overwrite) {
  PIPEPRUNE_CHECK(!target_.empty(), ConfigError, "output folder path is empty");
  target_ = without_trailing_slash(target_);
  PIPEPRUNE_CHECK(overwrite_ || !fs::exists(target_), IoError,
                  target_.string() << ": output folder already exists (choose another --output "
                                      "or pass --overwrite)");
  const fs::path parent = fs::absolute(target_).parent_path();
  std::error_code ec;
  fs::create_directories(parent, ec);
  PIPEPRUNE_CHECK(!ec, IoError, parent.string() << ": cannot create folder (" << ec.message() << ")");
  staging_ = staging_path_for(target_);
  fs::remove_all(staging_, ec);
  fs::create_directory(staging_, ec);
  PIPEPRUNE_CHECK(!ec, IoError, staging_.string() << ": cannot create temporary output folder ("
                                                  << ec.message() << ")");
}

std::unique_ptr<StagedDirectory> StagedDirectory::adopt(fs::path target, bool overwrite) {
  PIPEPRUNE_CHECK(!target.empty(), ConfigError, "output folder path is empty");
  target = without_trailing_slash(target);
  const fs::path staging = staging_path_for(target);
  PIPEPRUNE_CHECK(fs::is_directory(staging), IoError, staging.string() << ": no unfinished output to resume");
  PIPEPRUNE_CHECK(overwrite || !fs::exists(target), IoError,
                  target.string() << ": output folder already exists (choose another --output or pass --overwrite)");
  std::unique_ptr<StagedDirectory> adopted(new StagedDirectory());
  adopted->target_ = std::move(target);
  adopted->staging_ = staging;
  adopted->overwrite_ = overwrite;
  return adopted;
}

StagedDirectory::~StagedDirectory() {
  if (!committed_ && !keep_ && !staging_.empty()) {
    std::error_code ec;
    fs::remove_all(staging_, ec);
  }
}

void StagedDirectory::commit() {
  std::error_code ec;
  if (overwrite_ && fs::exists(target_)) fs::remove_all(target_, ec);
  fs::rename(staging_, target_, ec);
  PIPEPRUNE_CHECK(!ec, IoError, target_.string() << ": cannot rename the finished output into place ("
                                                 << ec.message() << ")");
  committed_ = true;
}

}  // namespace pipeprune
