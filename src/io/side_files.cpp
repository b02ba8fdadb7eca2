#include "moequant/io/side_files.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

namespace moequant::io {

namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// `inner` is `outer` or below it (both canonical).
bool is_within(const fs::path& inner, const fs::path& outer) {
  const auto mismatch = std::mismatch(outer.begin(), outer.end(), inner.begin(), inner.end());
  return mismatch.first == outer.end();
}

}  // namespace

bool is_side_file_name(const std::string& name) {
  static const char* const kNames[] = {
      // tokenizers (fast, SentencePiece, BPE vocab/merges, WordPiece)
      "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
      "tokenizer.model", "vocab.json", "merges.txt", "vocab.txt", "spiece.model",
      // generation defaults and chat templates
      "generation_config.json", "chat_template.json", "chat_template.jinja"};
  for (const char* n : kNames)
    if (name == n) return true;
  const std::string l = lower(name);
  if (ends_with(l, ".tiktoken")) return true;  // tiktoken vocabularies
  if (ends_with(name, ".py")) return true;     // trust_remote_code modeling/tokenizer code
  return l.rfind("readme", 0) == 0 || l.rfind("license", 0) == 0;
}

std::vector<std::string> select_side_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  const fs::path root = fs::canonical(dir, ec);
  if (ec) return out;
  // A Hugging Face cache snapshot links its files into the repository's blobs folder.
  const fs::path blobs = root.parent_path().filename() == "snapshots"
                             ? root.parent_path().parent_path() / "blobs"
                             : fs::path();
  for (const fs::directory_entry& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    if (!is_side_file_name(name)) continue;
    std::error_code e;
    const fs::path real = fs::canonical(entry.path(), e);
    if (e || !fs::is_regular_file(real, e)) continue;  // FIFOs, folders, dangling links
    const bool inside = is_within(real, root) || (!blobs.empty() && is_within(real, blobs));
    if (!inside) continue;
    out.push_back((fs::path(dir) / name).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace moequant::io
