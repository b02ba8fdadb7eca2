// Splitting a string on the matches of a pattern, with the five delimiter behaviors of Hugging
// Face `tokenizers` (SplitDelimiterBehavior), ported case by case from NormalizedString::split.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moequant::tokenizer {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Parses "Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"; throws naming
// `where` otherwise.
SplitBehavior split_behavior_from_name(const std::string& name, const std::string& where);

using Range = std::pair<size_t, size_t>;

// The ranges of `text` to keep, in order, after splitting at `matches` (sorted, non-overlapping;
// `invert` swaps which parts count as matches). Empty ranges are dropped, as
// PreTokenizedString::split drops empty pieces.
std::vector<Range> split_ranges(size_t text_size, const std::vector<Range>& matches,
                                SplitBehavior behavior, bool invert = false);

// The non-overlapping occurrences of `needle` (not empty) in `text`, left to right.
std::vector<Range> find_literal(std::string_view text, std::string_view needle);

}  // namespace moequant::tokenizer
