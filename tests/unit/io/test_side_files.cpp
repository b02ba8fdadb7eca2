// The side files a checkpoint needs (issue #25, item 6): tokenizer, generation and chat-template
// files, remote code, README and LICENSE; regular files inside the folder only; never weights of
// other formats.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "io_test_util.h"
#include "moequant/io/side_files.h"

namespace fs = std::filesystem;

namespace moequant::io {
namespace {

using testing::TempDir;

TEST(SideFiles, OnlyWhatACheckpointNeedsAndOnlyInsideTheFolder) {
  TempDir t;
  const fs::path m = t.path();
  for (const char* f :
       {"tokenizer.json", "tokenizer_config.json", "generation_config.json", "chat_template.jinja",
        "README.md", "LICENSE", "modeling_x.py", "pytorch_model.bin", "consolidated.00.pt",
        "config.json", "model.safetensors", "model.safetensors.index.json", "notes.txt"})
    std::ofstream(m / f) << "x";
  fs::create_symlink("/etc/passwd", m / "tokenizer.model");  // leaves the folder
  fs::create_symlink("README.md", m / "README");             // stays inside
  ASSERT_EQ(::mkfifo((m / "special_tokens_map.json").c_str(), 0644), 0);
  fs::create_directories(m / "vocab.json");  // a folder with a side file's name
  std::vector<std::string> names;
  for (const std::string& p : select_side_files(m.string()))
    names.push_back(fs::path(p).filename().string());
  EXPECT_EQ(names,
            (std::vector<std::string>{"LICENSE", "README", "README.md", "chat_template.jinja",
                                      "generation_config.json", "modeling_x.py", "tokenizer.json",
                                      "tokenizer_config.json"}));
}

TEST(SideFiles, HuggingFaceCacheSnapshotsLinkIntoTheirBlobs) {
  TempDir t;
  const fs::path repo = t.path() + "/models--org--m";
  fs::create_directories(repo / "blobs");
  fs::create_directories(repo / "snapshots" / "abc123");
  std::ofstream(repo / "blobs" / "f00d") << "{}";
  fs::create_symlink("../../blobs/f00d", repo / "snapshots" / "abc123" / "tokenizer.json");
  const auto files = select_side_files((repo / "snapshots" / "abc123").string());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(fs::path(files[0]).filename(), "tokenizer.json");
}

}  // namespace
}  // namespace moequant::io
