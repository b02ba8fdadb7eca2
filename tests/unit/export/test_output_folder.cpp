// The output folder: checked before any work, assembled under a temporary name, published by a
// rename (replacing an old folder only with overwrite), and discarded on failure.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "moequant/common/error.h"
#include "moequant/export/output_folder.h"

namespace fs = std::filesystem;

namespace moequant {
namespace {

struct TempDir {
  TempDir() : path(fs::temp_directory_path() / ("mq-output-folder-" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path path;
};

std::string read(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(OutputFolder, PartialNameIsBesideTheFinalOne) {
  EXPECT_EQ(partial_dir_for("/x/out"), "/x/out.moequant-partial");
  EXPECT_EQ(partial_dir_for("/x/out/"), "/x/out.moequant-partial");
}

TEST(OutputFolder, ChecksNameThePathAndTheRemedy) {
  TempDir t;
  const std::string out = (t.path / "out").string();
  check_output_dir(out, false);  // absent, parent writable: fine
  fs::create_directories(out);
  EXPECT_NE(error_of([&] { check_output_dir(out, false); }).find("pass --overwrite"),
            std::string::npos);
  check_output_dir(out, true);
  EXPECT_NE(error_of([&] {
              check_output_dir((t.path / "no/such/out").string(), false);
            }).find("does not exist"),
            std::string::npos);
  std::ofstream(t.path / "file") << "x";
  EXPECT_NE(
      error_of([&] { check_output_dir((t.path / "file").string(), true); }).find("is not a folder"),
      std::string::npos);
}

TEST(OutputFolder, PublishRenamesAndReplacesOnlyWithOverwrite) {
  TempDir t;
  const std::string out = (t.path / "out").string();
  prepare_partial_dir(out, false);
  write_text_file(partial_dir_for(out) + "/config.json", "new\n");
  EXPECT_FALSE(fs::exists(out));
  publish_partial_dir(out, false);
  EXPECT_EQ(read(fs::path(out) / "config.json"), "new\n");
  EXPECT_FALSE(fs::exists(partial_dir_for(out)));

  prepare_partial_dir(out, true);
  write_text_file(partial_dir_for(out) + "/config.json", "newer\n");
  publish_partial_dir(out, true);
  EXPECT_EQ(read(fs::path(out) / "config.json"), "newer\n");

  prepare_partial_dir(out, true);
  discard_partial_dir(out);
  EXPECT_FALSE(fs::exists(partial_dir_for(out)));
  EXPECT_EQ(read(fs::path(out) / "config.json"), "newer\n");  // the old folder is untouched
}

TEST(OutputFolder, WriteTextFileLeavesNoTemporaryBehind) {
  TempDir t;
  write_text_file((t.path / "a.json").string(), "{}\n");
  EXPECT_EQ(read(t.path / "a.json"), "{}\n");
  EXPECT_FALSE(fs::exists(t.path / "a.json.tmp"));
  EXPECT_NE(error_of([&] {
              write_text_file((t.path / "missing/a.json").string(), "x");
            }).find("missing/a.json"),
            std::string::npos);
}

TEST(OutputFolder, AFailedWriteRemovesItsTemporaryAndKeepsTheTarget) {
  TempDir t;
  const fs::path target = t.path / "r.json";
  fs::create_directories(target / "in-the-way");  // the rename into place fails
  EXPECT_NE(error_of([&] { write_text_file(target.string(), "{}\n"); }).find("r.json"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(t.path / "r.json.tmp"));
  EXPECT_TRUE(fs::is_directory(target / "in-the-way"));
}

TEST(OutputFolder, AStalePartialFolderIsReportedAndReplaced) {
  TempDir t;
  const std::string out = (t.path / "out").string();
  fs::create_directories(partial_dir_for(out));
  std::ofstream(partial_dir_for(out) + "/model-00001-of-00002.safetensors") << "old";
  const std::string note = prepare_partial_dir(out, false);
  EXPECT_NE(note.find("removed the stale partial folder '" + partial_dir_for(out) +
                      "' of an earlier run that did not finish"),
            std::string::npos)
      << note;
  EXPECT_TRUE(fs::is_empty(partial_dir_for(out)));
  EXPECT_TRUE(fs::exists(out + ".moequant-lock"));  // held until publish or discard
  discard_partial_dir(out);
  EXPECT_FALSE(fs::exists(out + ".moequant-lock"));
  EXPECT_EQ(prepare_partial_dir(out, false), "");  // nothing left this time
  publish_partial_dir(out, false);
  EXPECT_FALSE(fs::exists(out + ".moequant-lock"));
}

TEST(OutputFolder, AnOutputThatWouldDeleteTheSourceIsRefusedHoweverSpelled) {
  TempDir t;
  const fs::path models = t.path / "models";
  const fs::path model = models / "m";
  fs::create_directories(model / "sub");
  fs::create_directory_symlink(model, t.path / "alias");
  auto refused = [&](const fs::path& out, const char* why) {
    const std::string e = error_of([&] { check_output_apart_from_source(out.string(), model); });
    EXPECT_NE(e.find(why), std::string::npos) << out << ": " << e;
  };
  refused(model, "is the model folder");
  refused(model.string() + "/", "is the model folder");
  refused(models, "is the model folder");
  refused(t.path, "is the model folder");
  refused(t.path / "alias", "is the model folder");
  refused(models / "x" / ".." / "m", "is the model folder");
  refused(t.path / "alias" / "..", "is the model folder");
  refused(model / "q", "inside the model folder");
  refused(t.path / "alias" / "sub" / "q", "inside the model folder");
  refused(models / "m.moequant-partial" / "..", "is the model folder");
  // The partial folder of --out must not be the model either.
  const fs::path tricky = t.path / "tricky";
  fs::create_directories(tricky.string() + ".moequant-partial");
  EXPECT_NE(error_of([&] {
              check_output_apart_from_source(tricky.string(),
                                             tricky.string() + ".moequant-partial");
            }).find("the partial output folder"),
            std::string::npos);
  // Beside the source is fine.
  EXPECT_EQ(error_of([&] { check_output_apart_from_source((models / "q").string(), model); }),
            "<no error>");
  EXPECT_EQ(error_of([&] { check_output_apart_from_source((models / "m2").string(), model); }),
            "<no error>");
}

}  // namespace
}  // namespace moequant
