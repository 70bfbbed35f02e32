#include "core/common/files.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include "core/common/error.h"

namespace pipeprune {
namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("pipeprune_files_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(StagedDirectory, Commit_RenamesIntoPlace) {
  const fs::path root = fresh_dir("commit");
  const fs::path target = root / "out";
  {
    StagedDirectory staged(target, /*overwrite=*/false);
    write_file_atomic(staged.path() / "a.txt", "hello");
    EXPECT_FALSE(fs::exists(target));
    staged.commit();
  }
  EXPECT_EQ(read_file(target / "a.txt"), "hello");
}

TEST(StagedDirectory, DestroyedWithoutCommit_LeavesNothing) {
  const fs::path root = fresh_dir("abort");
  const fs::path target = root / "out";
  fs::path staging;
  {
    StagedDirectory staged(target, false);
    staging = staged.path();
    write_file_atomic(staged.path() / "a.txt", "partial");
  }
  EXPECT_FALSE(fs::exists(target));
  EXPECT_FALSE(fs::exists(staging));
}

TEST(StagedDirectory, ExistingTarget_ThrowsUnlessOverwrite) {
  const fs::path root = fresh_dir("exists");
  const fs::path target = root / "out";
  fs::create_directories(target);
  EXPECT_THROW(StagedDirectory(target, false), IoError);
  StagedDirectory staged(target, true);
  write_file_atomic(staged.path() / "b.txt", "new");
  staged.commit();
  EXPECT_EQ(read_file(target / "b.txt"), "new");
}

TEST(ReadJsonFile, InvalidJson_FormatErrorNamesFile) {
  const fs::path root = fresh_dir("json");
  write_file_atomic(root / "bad.json", "{\"a\": ");
  try {
    read_json_file(root / "bad.json");
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.json: invalid JSON"), std::string::npos) << e.what();
  }
}

TEST(ReadFile, Missing_IoError) { EXPECT_THROW(read_file("/nonexistent/pipeprune/x"), IoError); }

TEST(PwriteAll, WritesAtTheOffsetAndFailsNamingFileAndWhat) {
  const fs::path root = fresh_dir("pwrite");
  const fs::path file = root / "f.bin";
  {
    UniqueFd fd = open_fd(file, O_WRONLY | O_CREAT | O_TRUNC, "writing");
    pwrite_all(fd.get(), "abcd", 4, 2, file.string(), "tensor t");
    fsync_fd(fd.get(), file.string());
    fd.close_checked(file.string());
    EXPECT_FALSE(fd.valid());
  }
  EXPECT_EQ(read_file(file), std::string("\0\0abcd", 6));
  const UniqueFd read_only = open_fd(file, O_RDONLY, "reading");
  try {
    pwrite_all(read_only.get(), "x", 1, 0, file.string(), "tensor t");
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(file.string() + ": writing tensor t failed"), std::string::npos) << e.what();
  }
}

TEST(OpenFd, Missing_IoErrorNamingThePathAndPurpose) {
  try {
    open_fd("/nonexistent/pipeprune/x", O_RDONLY, "reading");
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/pipeprune/x: cannot open for reading"), std::string::npos);
  }
}

TEST(UniqueFd, MovedFrom_DoesNotCloseTwice) {
  const fs::path root = fresh_dir("fd_move");
  UniqueFd a = open_fd(root / "f", O_WRONLY | O_CREAT, "writing");
  const int raw = a.get();
  UniqueFd b = std::move(a);
  EXPECT_FALSE(a.valid());
  EXPECT_EQ(b.get(), raw);
}

}  // namespace
}  // namespace pipeprune
