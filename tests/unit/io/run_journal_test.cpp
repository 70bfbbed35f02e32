// The resume journal: fingerprints round-trip and name the first changed field; layer markers
// are read back as written, and a marker left half-written by a crash (".tmp") or any other
// file in the journal's folder is not a finished layer.
#include "core/io/run_journal.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/common/error.h"
#include "support/run_command.h"

namespace pipeprune {
namespace {

TEST(RunJournal, FingerprintRoundTripAndDifferences) {
  const std::filesystem::path staged = testing::fresh_temp_dir("run_journal_fp");
  EXPECT_FALSE(run_journal::exists(staged));
  EXPECT_FALSE(run_journal::read_fingerprint(staged).has_value());
  const RunFingerprint saved{{"method", "sparsegpt"}, {"percdamp", "0.01"}, {"calibration_tokens", "8x128 0123"}};
  run_journal::write_fingerprint(staged, saved);
  EXPECT_TRUE(run_journal::exists(staged));
  EXPECT_EQ(*run_journal::read_fingerprint(staged), saved);
  EXPECT_EQ(fingerprint_difference(saved, saved), "");
  RunFingerprint changed = saved;
  changed["percdamp"] = "0.02";
  EXPECT_EQ(fingerprint_difference(saved, changed), "percdamp was 0.01, now 0.02");
  RunFingerprint more = saved;
  more["use_variant"] = "true";
  EXPECT_EQ(fingerprint_difference(saved, more), "use_variant was not recorded, now true");
  RunFingerprint fewer = saved;
  fewer.erase("method");
  EXPECT_EQ(fingerprint_difference(saved, fewer), "method was sparsegpt, now not set");
}

// A journal from a build that did not record a field yet matches only the value that build ran with.
TEST(RunJournal, FieldUnrecordedByAnOlderBuild_MatchesItsImpliedValueOnly) {
  const RunFingerprint saved{{"method", "sparsegpt"}};
  const RunFingerprint implied{{"hinv_factor", "reference"}};
  EXPECT_EQ(fingerprint_difference(saved, {{"method", "sparsegpt"}, {"hinv_factor", "reference"}}, implied), "");
  EXPECT_EQ(fingerprint_difference(saved, {{"method", "sparsegpt"}, {"hinv_factor", "blocked"}}, implied),
            "hinv_factor was not recorded, now blocked");
  EXPECT_EQ(fingerprint_difference(saved, {{"method", "sparsegpt"}, {"hinv_factor", "reference"}}),
            "hinv_factor was not recorded, now reference");
  // A recorded field is compared as always, implied value or not.
  EXPECT_EQ(fingerprint_difference({{"method", "sparsegpt"}, {"hinv_factor", "blocked"}},
                                   {{"method", "sparsegpt"}, {"hinv_factor", "reference"}}, implied),
            "hinv_factor was blocked, now reference");
}

TEST(RunJournal, MarkersAndLeftovers) {
  const std::filesystem::path staged = testing::fresh_temp_dir("run_journal_markers");
  EXPECT_TRUE(run_journal::done_layers(staged).empty());
  run_journal::write_fingerprint(staged, {{"method", "wanda"}});
  for (int64_t layer : {0, 1, 12}) run_journal::mark_layer_done(staged, layer);
  const std::filesystem::path folder = staged / run_journal::kFolder;
  std::ofstream(folder / "layer-00002.done.tmp") << "do";  // a crash mid-write
  std::ofstream(folder / "layer-x.done") << "done";
  std::ofstream(folder / "notes.txt") << "hello";
  EXPECT_EQ(run_journal::done_layers(staged), (std::set<int64_t>{0, 1, 12}));
  run_journal::remove(staged);
  EXPECT_FALSE(std::filesystem::exists(folder));
  EXPECT_TRUE(run_journal::done_layers(staged).empty());
}

TEST(RunJournal, CorruptFingerprint_FormatErrorNamingTheFile) {
  const std::filesystem::path staged = testing::fresh_temp_dir("run_journal_corrupt");
  std::filesystem::create_directories(staged / run_journal::kFolder);
  std::ofstream(staged / run_journal::kFolder / "run.json") << "{\"method\": 3}";
  try {
    run_journal::read_fingerprint(staged);
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("run.json: field method is not a string"), std::string::npos) << e.what();
  }
  std::ofstream(staged / run_journal::kFolder / "run.json") << "{not json";
  EXPECT_THROW(run_journal::read_fingerprint(staged), FormatError);
}

TEST(RunJournal, Fnv1aKnownValues) {
  EXPECT_EQ(fnv1a_hex(""), "cbf29ce484222325");
  EXPECT_EQ(fnv1a_hex("a"), "af63dc4c8601ec8c");
}

}  // namespace
}  // namespace pipeprune
