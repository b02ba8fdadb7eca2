#include "added_vocabulary.h"

#include <algorithm>

#include "bpe_model.h"
#include "moequant/common/error.h"
#include "normalizers.h"
#include "onig_regex.h"
#include "utf8.h"

namespace moequant::tokenizer {

namespace {

// The Rust `regex` crate's Unicode \w and \s, which tokenizers uses for single_word, lstrip and
// rstrip.
const CodePointClass& word_chars() {
  static const CodePointClass chars("[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]");
  return chars;
}
const CodePointClass& space_chars() {
  static const CodePointClass chars("[\\p{White_Space}]");
  return chars;
}

// The start of the character that ends text[0, end).
size_t previous_char(std::string_view text, size_t end) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) --i;
  return i;
}

bool ends_with_word(std::string_view text, size_t end) {
  return end > 0 && word_chars().contains_at(text, previous_char(text, end));
}
bool starts_with_word(std::string_view text, size_t begin) {
  return begin < text.size() && word_chars().contains_at(text, begin);
}
// The start of the whitespace run that ends at `end` (\s*$ on text[0, end)).
size_t trailing_space_start(std::string_view text, size_t end) {
  while (end > 0) {
    const size_t p = previous_char(text, end);
    if (!space_chars().contains_at(text, p)) break;
    end = p;
  }
  return end;
}
// The end of the whitespace run that starts at `begin` (^\s* on text[begin, ...)).
size_t leading_space_end(std::string_view text, size_t begin) {
  while (begin < text.size() && space_chars().contains_at(text, begin))
    begin += utf8_length(static_cast<unsigned char>(text[begin]));
  return begin;
}

}  // namespace

void TokenTrie::insert(std::string_view text, int32_t id, const std::string& where) {
  int32_t node = 0;
  for (char ch : text) {
    const auto byte = static_cast<unsigned char>(ch);
    auto& children = nodes_[node].children;
    const auto it = std::find_if(children.begin(), children.end(),
                                 [&](const auto& c) { return c.first == byte; });
    if (it != children.end()) {
      node = it->second;
      continue;
    }
    const auto next = static_cast<int32_t>(nodes_.size());
    children.emplace_back(byte, next);
    nodes_.emplace_back();
    node = next;
  }
  MQ_CHECK(nodes_[node].id < 0, where, ": added tokens ", nodes_[node].id, " and ", id,
           " both match the text '", std::string(text), "'");
  nodes_[node].id = id;
  first_bytes_[static_cast<unsigned char>(text[0])] = true;
}

std::pair<size_t, int32_t> TokenTrie::longest_at(std::string_view text, size_t pos) const {
  std::pair<size_t, int32_t> best{0, -1};
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    const auto& children = nodes_[node].children;
    const auto it = std::find_if(children.begin(), children.end(),
                                 [&](const auto& c) { return c.first == byte; });
    if (it == children.end()) break;
    node = it->second;
    if (nodes_[node].id >= 0) best = {i + 1 - pos, nodes_[node].id};
  }
  return best;
}

AddedVocabulary::AddedVocabulary(const std::vector<AddedToken>& tokens, const BpeModel& model,
                                 const Normalizer* normalizer, const std::string& where) {
  int32_t next_id = static_cast<int32_t>(model.vocab_size());
  for (const AddedToken& token : tokens) {
    if (token.content.empty()) continue;
    std::optional<int32_t> id = token_to_id(token.content);
    if (!id) id = model.token_to_id(token.content);
    if (!id) id = next_id++;
    id_of_[token.content] = *id;
    by_id_[*id] = token;  // a later entry with the same id replaces the earlier one
  }
  for (const auto& entry : id_of_) outside_model_ += model.token_to_id(entry.first) ? 0 : 1;
  for (const auto& [id, token] : by_id_) {
    if (token.normalized) {
      const std::string text = normalizer ? normalizer->normalize(token.content) : token.content;
      if (!text.empty()) normalized_.insert(text, id, where);
    } else {
      raw_.insert(token.content, id, where);
    }
  }
}

std::optional<int32_t> AddedVocabulary::token_to_id(std::string_view content) const {
  const auto it = id_of_.find(content);
  if (it == id_of_.end()) return std::nullopt;
  return it->second;
}

std::vector<AddedVocabulary::Segment> AddedVocabulary::split(std::string_view text,
                                                             const TokenTrie& trie) const {
  std::vector<Segment> segments;
  size_t done = 0;  // text before this is in `segments`
  if (!trie.empty()) {
    // Leftmost-longest matches, non-overlapping, scanned as the Aho-Corasick automaton does;
    // a match that fails single_word is dropped and scanning goes on after it.
    for (size_t pos = 0; pos < text.size();) {
      if (!trie.may_start(static_cast<unsigned char>(text[pos]))) {
        ++pos;
        continue;
      }
      const auto [length, id] = trie.longest_at(text, pos);
      if (length == 0) {
        ++pos;
        continue;
      }
      size_t begin = pos, end = pos + length;
      pos += length;
      const AddedToken& token = by_id_.at(id);
      if (token.single_word && (ends_with_word(text, begin) || starts_with_word(text, end))) {
        continue;
      }
      if (token.lstrip) begin = std::max(trailing_space_start(text, begin), done);
      if (token.rstrip) end = leading_space_end(text, end);
      if (done < begin) segments.push_back({done, begin, -1});
      // As in tokenizers, scanning goes on after the token itself, not after what rstrip took.
      segments.push_back({begin, end, id});
      done = end;
    }
  }
  if (done < text.size()) segments.push_back({done, text.size(), -1});
  return segments;
}

}  // namespace moequant::tokenizer
