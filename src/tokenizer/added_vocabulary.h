// Added tokens (tokenizer.json "added_tokens"): tokens split out of the text before the model sees
// it, with the flags single_word, lstrip, rstrip, normalized and special, as AddedVocabulary of
// Hugging Face `tokenizers` does it (ids assigned on load the same way, leftmost-longest matching).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moequant::tokenizer {

class BpeModel;
class Normalizer;

struct AddedToken {
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

// The tokens that can be found in one form of the text (raw or normalized).
class TokenTrie {
 public:
  // Throws naming `where` when two tokens have the same text.
  void insert(std::string_view text, int32_t id, const std::string& where);
  bool empty() const { return nodes_.size() == 1; }
  // The longest token starting at text[pos]: its length and id, or {0, -1}.
  std::pair<size_t, int32_t> longest_at(std::string_view text, size_t pos) const;
  // Whether some token starts with this byte (a quick filter for longest_at).
  bool may_start(unsigned char byte) const { return first_bytes_[byte]; }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;  // byte -> node index
    int32_t id = -1;                                          // token ending here
  };
  std::vector<Node> nodes_ = std::vector<Node>(1);
  bool first_bytes_[256] = {};
};

class AddedVocabulary {
 public:
  // `tokens` in file order. An id comes from the model's vocab when the content is in it, else the
  // next id after the model's vocab (tokenizers ignores the file's "id" the same way, with only a
  // warning). Normalized tokens are matched by their normalized content.
  AddedVocabulary(const std::vector<AddedToken>& tokens, const BpeModel& model,
                  const Normalizer* normalizer, const std::string& where);

  // A part of a text: an added token (id >= 0) or text for the model (id == -1).
  struct Segment {
    size_t begin, end;
    int32_t id;
  };
  // The segments of raw text (tokens with normalized=false) and of normalized text (tokens with
  // normalized=true); together they cover `text`, none is empty.
  std::vector<Segment> split_raw(std::string_view text) const { return split(text, raw_); }
  std::vector<Segment> split_normalized(std::string_view text) const {
    return split(text, normalized_);
  }

  std::optional<int32_t> token_to_id(std::string_view content) const;
  // Added tokens whose content is not in the model's vocab.
  size_t count_outside_model() const { return outside_model_; }

 private:
  std::vector<Segment> split(std::string_view text, const TokenTrie& trie) const;

  std::map<std::string, int32_t, std::less<>> id_of_;
  std::map<int32_t, AddedToken> by_id_;
  TokenTrie raw_, normalized_;
  size_t outside_model_ = 0;
};

}  // namespace moequant::tokenizer
