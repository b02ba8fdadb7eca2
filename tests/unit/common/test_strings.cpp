// The text helpers every layer's messages use.
#include <gtest/gtest.h>

#include "moequant/common/strings.h"

namespace moequant {
namespace {

TEST(Strings, JoinPutsTheSeparatorBetweenItemsOnly) {
  EXPECT_EQ(join({}), "");
  EXPECT_EQ(join({"a"}), "a");
  EXPECT_EQ(join({"a", "b", "c"}), "a, b, c");
  EXPECT_EQ(join({"a", "b"}, "\n"), "a\nb");
}

TEST(Strings, ShapeStringBracketsShapesAndRankLists) {
  EXPECT_EQ(shape_string(std::vector<int64_t>{}), "[]");
  EXPECT_EQ(shape_string(std::vector<int64_t>{3, 4}), "[3, 4]");
  EXPECT_EQ(shape_string(std::vector<int>{0, 2, 5}), "[0, 2, 5]");
}

TEST(Strings, SplitLinesDropsOnlyTheFinalEmptyLine) {
  EXPECT_EQ(split_lines(""), std::vector<std::string>{});
  EXPECT_EQ(split_lines("a\nb\n"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(split_lines("a\n\nb"), (std::vector<std::string>{"a", "", "b"}));
}

TEST(Strings, CeilDivCoversTheDimension) {
  static_assert(ceil_div(0, 128) == 0 && ceil_div(1, 128) == 1 && ceil_div(128, 128) == 1 &&
                ceil_div(129, 128) == 2);
  EXPECT_EQ(ceil_div(768, 128), 6);
  EXPECT_EQ(ceil_div(769, 128), 7);
}

}  // namespace
}  // namespace moequant
