#include "splitting.h"

#include <algorithm>

#include "moequant/common/error.h"

namespace moequant::tokenizer {

namespace {

struct Span {
  Range range;
  bool flag;  // is a match (before the behavior), should be removed (after)
};

// Pattern::find_matches: the whole text covered by alternating non-matches and matches.
std::vector<Span> cover(size_t n, const std::vector<Range>& matches, bool invert) {
  std::vector<Span> spans;
  if (n == 0) return {{{0, 0}, invert}};
  size_t prev = 0;
  for (const Range& m : matches) {
    if (prev != m.first) spans.push_back({{prev, m.first}, invert});
    spans.push_back({m, !invert});
    prev = m.second;
  }
  if (prev != n) spans.push_back({{prev, n}, invert});
  return spans;
}

}  // namespace

SplitBehavior split_behavior_from_name(const std::string& name, const std::string& where) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  MQ_THROW(where, ": unsupported split behavior '", name,
           "' (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)");
}

std::vector<Range> split_ranges(size_t text_size, const std::vector<Range>& matches,
                                SplitBehavior behavior, bool invert) {
  const std::vector<Span> spans = cover(text_size, matches, invert);
  std::vector<Span> out;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Span& s : spans) out.push_back({s.range, false});
      break;
    case SplitBehavior::kRemoved:
      out = spans;
      break;
    case SplitBehavior::kContiguous:
      for (const Span& s : spans) {
        if (s.flag == previous_match && !out.empty()) {
          out.back().range.second = s.range.second;
        } else {
          out.push_back({s.range, false});
        }
        previous_match = s.flag;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Span& s : spans) {
        if (s.flag && !previous_match && !out.empty()) {
          out.back().range.second = s.range.second;
        } else {
          out.push_back({s.range, false});
        }
        previous_match = s.flag;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      // Walked from the end: a match joins the piece after it.
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->flag && !previous_match && !out.empty()) {
          out.back().range.first = it->range.first;
        } else {
          out.push_back({it->range, false});
        }
        previous_match = it->flag;
      }
      std::reverse(out.begin(), out.end());
      break;
  }
  std::vector<Range> kept;
  kept.reserve(out.size());
  for (const Span& s : out)
    if (!s.flag && s.range.first != s.range.second) kept.push_back(s.range);
  return kept;
}

std::vector<Range> find_literal(std::string_view text, std::string_view needle) {
  std::vector<Range> matches;
  for (size_t at = text.find(needle); at != std::string_view::npos;
       at = text.find(needle, at + needle.size())) {
    matches.emplace_back(at, at + needle.size());
  }
  return matches;
}

}  // namespace moequant::tokenizer
