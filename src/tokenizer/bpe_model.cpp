#include "bpe_model.h"

#include <cstdio>
#include <queue>

#include "moequant/common/error.h"
#include "utf8.h"

namespace moequant::tokenizer {

BpeModel::BpeModel(std::unordered_map<std::string, int32_t> vocab,
                   const std::vector<BpeMerge>& merges, BpeOptions options, std::string where)
    : vocab_(std::move(vocab)), options_(std::move(options)), where_(std::move(where)) {
  for (const auto& [token, id] : vocab_) {
    if (!token.empty() && utf8_length(static_cast<unsigned char>(token[0])) == token.size()) {
      char_ids_.emplace(decode_utf8(token, 0), id);
    }
  }
  for (int b = 0; b < 256; ++b) {
    // tokenizers spells the byte as format!("<{:#04X}>"): "<0x0A>".
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    const auto it = vocab_.find(name);
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const BpeMerge& m = merges[rank];
    const auto id_of = [&](const std::string& token) {
      const auto it = vocab_.find(token);
      MQ_CHECK(it != vocab_.end(), where_, ".merges[", m.entry, "] ('", m.left, "' '", m.right,
               "'): token '", token, "' is not in the vocab");
      return it->second;
    };
    const int32_t left = id_of(m.left), right = id_of(m.right), merged = id_of(m.left + m.right);
    // A pair listed twice keeps its last rank, as tokenizers' map does.
    merges_[pair_key(left, right)] = {static_cast<int32_t>(rank), merged};
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

int32_t BpeModel::unk_id() const {
  const auto it = vocab_.find(*options_.unk_token);
  MQ_CHECK(it != vocab_.end(), where_, ": unk_token '", *options_.unk_token,
           "' is not in the vocab");
  return it->second;
}

std::vector<int32_t> BpeModel::merge_word(std::string_view word) const {
  // Symbols: one per character (or per byte with byte fallback), linked so merges can unlink.
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool removed;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  const auto add = [&](int32_t id) {
    const int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, index + 1, false});
  };
  bool pending_unk = false;  // an unknown token waiting for the next known one (fuse_unk)
  for (size_t i = 0; i < word.size();) {
    const size_t len = utf8_length(static_cast<unsigned char>(word[i]));
    const auto known = char_ids_.find(decode_utf8(word, i));
    if (known != char_ids_.end()) {
      if (pending_unk) add(unk_id());
      pending_unk = false;
      add(known->second);
      i += len;
      continue;
    }
    bool fell_back = false;
    if (options_.byte_fallback) {
      fell_back = true;
      for (size_t k = 0; k < len; ++k)
        fell_back = fell_back && byte_ids_[static_cast<unsigned char>(word[i + k])] >= 0;
      if (fell_back) {
        // tokenizers adds the byte tokens without flushing a pending unknown token first.
        for (size_t k = 0; k < len; ++k) add(byte_ids_[static_cast<unsigned char>(word[i + k])]);
      }
    }
    if (!fell_back && options_.unk_token) {
      if (pending_unk && !options_.fuse_unk) add(unk_id());
      if (!pending_unk || !options_.fuse_unk) unk_id();  // fails here when unk is not in the vocab
      pending_unk = true;
    }
    i += len;
  }
  if (pending_unk) add(unk_id());
  if (!symbols.empty()) symbols.back().next = -1;

  // Merge the lowest-ranked adjacent pair, leftmost first, until none is left (Word::merge_all).
  struct Candidate {
    int32_t rank, pos, id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  const auto push_pair = [&](int32_t pos) {
    const int32_t next = symbols[pos].next;
    if (next < 0) return;
    const auto it = merges_.find(pair_key(symbols[pos].id, symbols[next].id));
    if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.id});
  };
  for (int32_t pos = 0; pos + 1 < static_cast<int32_t>(symbols.size()); ++pos) push_pair(pos);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (left.removed || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    // A stale entry: the pair at this position has changed since it was queued.
    const auto it = merges_.find(pair_key(left.id, right.id));
    if (it == merges_.end() || it->second.id != top.id) continue;
    left.id = top.id;
    right.removed = true;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }
  std::vector<int32_t> ids;
  for (const Symbol& s : symbols)
    if (!s.removed) ids.push_back(s.id);
  return ids;
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  thread_local std::string key;
  key.assign(word.data(), word.size());
  if (options_.ignore_merges) {
    const auto it = vocab_.find(key);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() < kCacheMaxWordBytes;
  CacheShard& shard = cache_[std::hash<std::string>()(key) % kCacheShards];
  if (cacheable) {
    std::lock_guard<std::mutex> lock(shard.mutex);
    const auto hit = shard.words.find(key);
    if (hit != shard.words.end()) {
      out.insert(out.end(), hit->second.begin(), hit->second.end());
      return;
    }
  }
  std::vector<int32_t> ids = merge_word(word);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(shard.mutex);
    if (shard.words.size() < kCacheCapacityPerShard) shard.words.emplace(key, std::move(ids));
  }
}

}  // namespace moequant::tokenizer
