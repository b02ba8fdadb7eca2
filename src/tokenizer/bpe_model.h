// The BPE model of tokenizer.json ("model": {"type": "BPE"}): a vocabulary, merges applied by
// rank, byte fallback (<0xNN> tokens), an unknown token (optionally fused), ignore_merges, and a
// cache of word -> ids, as in models/bpe of Hugging Face `tokenizers`.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace moequant::tokenizer {

struct BpeOptions {
  std::optional<std::string> unk_token;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

// One merge as the file lists it; `entry` is its index in the JSON list, for messages.
struct BpeMerge {
  std::string left, right;
  size_t entry;
};

class BpeModel {
 public:
  // Ranks are the positions in `merges`. Throws naming `where` ("file: model") and the entry for a
  // merge whose parts or result are not in the vocab.
  BpeModel(std::unordered_map<std::string, int32_t> vocab, const std::vector<BpeMerge>& merges,
           BpeOptions options, std::string where);

  // Appends the ids of one pre-tokenized word (valid UTF-8, not empty) to `out`.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The number of distinct tokens in the vocab (tokenizers' get_vocab_size).
  size_t vocab_size() const { return vocab_.size(); }

 private:
  struct MergeResult {
    int32_t rank;
    int32_t id;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  // The ids of `word` after all merges (merge_word + merge_all of tokenizers).
  std::vector<int32_t> merge_word(std::string_view word) const;
  int32_t unk_id() const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<uint32_t, int32_t> char_ids_;  // single-code-point tokens
  std::unordered_map<uint64_t, MergeResult> merges_;
  int32_t byte_ids_[256];  // id of <0xNN>, or -1
  BpeOptions options_;
  std::string where_;

  // Words seen before and their ids; bounded, and only short words, as in tokenizers. Sharded
  // by hash so that threads encoding at once rarely wait for each other.
  static constexpr size_t kCacheShards = 16;
  static constexpr size_t kCacheCapacityPerShard = 8192;
  static constexpr size_t kCacheMaxWordBytes = 256;
  struct CacheShard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>> words;
  };
  mutable std::array<CacheShard, kCacheShards> cache_;
};

}  // namespace moequant::tokenizer
