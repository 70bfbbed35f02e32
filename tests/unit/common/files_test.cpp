#include "core/common/files.h"

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

}  // namespace
}  // namespace pipeprune
