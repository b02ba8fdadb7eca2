// mq_cpu_multi_amax against a naive loop: many items sharing slots, per-channel rows, items
// large enough to span many parallel chunks (rows cut mid-way included), NaN/Inf flagged per
// item, subnormals and signed zeros, and argument errors.
#include <gtest/gtest.h>
#include <omp.h>
#include <stdint.h>

#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "moequant/kernels/kernels.h"
#include "reference_formats.h"

namespace {

const mq_dtype kDtypes[] = {MQ_DTYPE_BF16, MQ_DTYPE_F16, MQ_DTYPE_F32};
const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

struct Item {
  ref::Weight w;
  int32_t slot;
  int32_t per_channel;
};

std::vector<mq_amax_item> as_api_items(const std::vector<Item>& items) {
  std::vector<mq_amax_item> out;
  for (const Item& it : items) {
    out.push_back({it.w.data(), it.w.rows, it.w.cols, it.w.dtype, it.slot, it.per_channel});
  }
  return out;
}

// The naive loop. Slots touched by an item holding NaN/Inf are recorded in `tainted` (the
// kernel's value there is unspecified beyond being flagged).
void naive_amax(const std::vector<Item>& items, std::vector<float>* slots,
                std::vector<int32_t>* nonfinite, std::set<size_t>* tainted) {
  for (size_t i = 0; i < items.size(); ++i) {
    const ref::Weight& w = items[i].w;
    std::vector<size_t> touched;
    bool bad = false;
    for (int64_t r = 0; r < w.rows; ++r) {
      const size_t s = static_cast<size_t>(items[i].slot + (items[i].per_channel ? r : 0));
      touched.push_back(s);
      for (int64_t c = 0; c < w.cols; ++c) {
        const float x = w.values[static_cast<size_t>(r * w.cols + c)];
        if (!std::isfinite(x)) {
          bad = true;
          continue;
        }
        if (std::fabs(x) > (*slots)[s]) (*slots)[s] = std::fabs(x);
      }
    }
    if (bad) {
      (*nonfinite)[i] = 1;
      tainted->insert(touched.begin(), touched.end());
    }
  }
}

void expect_matches_naive(const std::vector<Item>& items, std::vector<float> initial_slots,
                          std::vector<int32_t> initial_flags) {
  std::vector<float> slots = initial_slots, want_slots = initial_slots;
  std::vector<int32_t> flags = initial_flags, want_flags = initial_flags;
  std::set<size_t> tainted;
  naive_amax(items, &want_slots, &want_flags, &tainted);
  const std::vector<mq_amax_item> api = as_api_items(items);
  ASSERT_EQ(
      mq_cpu_multi_amax(api.data(), static_cast<int32_t>(api.size()), slots.data(), flags.data()),
      MQ_OK)
      << mq_last_error();
  EXPECT_EQ(flags, want_flags);
  for (size_t s = 0; s < slots.size(); ++s) {
    if (tainted.count(s)) continue;
    ASSERT_EQ(ref::bits_of(slots[s]), ref::bits_of(want_slots[s]))
        << "slot " << s << ": " << slots[s] << " vs " << want_slots[s];
  }
}

std::vector<float> random_values(int64_t n, std::mt19937* rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-12, 8);
  const float scale = std::ldexp(1.0f, exponent(*rng));
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = normal(*rng) * scale;
  return v;
}

TEST(MultiAmax, ManyItemsSharingSlotsMatchNaiveLoop) {
  std::mt19937 rng(21);
  std::uniform_int_distribution<int> rows(0, 40), cols(0, 300), pick(0, 2), small_slot(0, 4);
  std::vector<Item> items;
  for (int i = 0; i < 60; ++i) {
    const int64_t r = (i % 13 == 5) ? 0 : rows(rng), c = (i % 17 == 8) ? 0 : cols(rng);
    const mq_dtype dtype = kDtypes[pick(rng)];
    const int32_t per_channel = pick(rng) == 0 ? 1 : 0;
    // Per-tensor items share slots 0..4; per-channel ones share row slots from 10 or 100.
    const int32_t slot = per_channel ? (pick(rng) == 0 ? 10 : 100) : small_slot(rng);
    items.push_back({ref::encode(random_values(r * c, &rng), r, c, dtype), slot, per_channel});
  }
  std::vector<float> slots(160, 0.0f);
  slots[2] = 1000.0f;  // a running amax larger than anything observed stays
  slots[105] = 0.5f;
  expect_matches_naive(items, slots, std::vector<int32_t>(items.size(), 0));
}

TEST(MultiAmax, LargeItemsSpanManyChunks) {
  std::mt19937 rng(22);
  std::vector<Item> items;
  {
    std::vector<float> v = random_values(300 * 1000, &rng);
    v[123457] = -9000.0f;  // the max, negative, in the middle of a chunk
    items.push_back({ref::encode(v, 300, 1000, MQ_DTYPE_F32), 0, 0});
  }
  // Rows longer than a chunk (so chunks cut rows) and a single column (many rows per chunk).
  items.push_back({ref::encode(random_values(3 * 200000, &rng), 3, 200000, MQ_DTYPE_BF16), 1, 1});
  items.push_back({ref::encode(random_values(100000, &rng), 100000, 1, MQ_DTYPE_F16), 4, 1});
  items.push_back(
      {ref::encode(random_values((1 << 20) + 7, &rng), 1, (1 << 20) + 7, MQ_DTYPE_F16), 0, 0});
  expect_matches_naive(items, std::vector<float>(100004, 0.0f), std::vector<int32_t>(4, 0));
}

TEST(MultiAmax, SameResultWithAnyThreadCount) {
  std::mt19937 rng(23);
  std::vector<Item> items;
  for (int i = 0; i < 8; ++i) {
    items.push_back({ref::encode(random_values(70000, &rng), 7, 10000, kDtypes[i % 3]), i % 2, 0});
  }
  const std::vector<mq_amax_item> api = as_api_items(items);
  std::vector<float> first;
  for (int threads : {1, 2, 3, 8}) {
    omp_set_num_threads(threads);
    std::vector<float> slots(2, 0.0f);
    std::vector<int32_t> flags(items.size(), 0);
    ASSERT_EQ(mq_cpu_multi_amax(api.data(), 8, slots.data(), flags.data()), MQ_OK);
    if (first.empty()) first = slots;
    EXPECT_EQ(slots, first) << threads << " threads";
  }
  omp_set_num_threads(omp_get_num_procs());
}

TEST(MultiAmax, NanAndInfAreFlaggedPerItem) {
  std::mt19937 rng(24);
  struct Case {
    mq_dtype dtype;
    float bad;  // placed in the item; 0 = a clean item
  };
  const Case cases[] = {{MQ_DTYPE_F32, 0},     {MQ_DTYPE_F32, kNaN},  {MQ_DTYPE_BF16, kInf},
                        {MQ_DTYPE_F16, -kInf}, {MQ_DTYPE_BF16, kNaN}, {MQ_DTYPE_F16, kNaN},
                        {MQ_DTYPE_BF16, 0},    {MQ_DTYPE_F16, 0},     {MQ_DTYPE_F32, -kInf}};
  std::vector<Item> items;
  int32_t slot = 0;
  for (const Case& c : cases) {
    std::vector<float> v = random_values(5 * 70, &rng);
    if (c.bad != 0) v[static_cast<size_t>(slot * 37 % 350)] = c.bad;
    items.push_back({ref::encode(v, 5, 70, c.dtype), slot++, 0});
  }
  // Per-channel, Inf in the middle row, rows straddling a chunk boundary.
  std::vector<float> v = random_values(3 * 50000, &rng);
  v[70000] = kInf;
  items.push_back({ref::encode(v, 3, 50000, MQ_DTYPE_F32), 20, 1});
  // A clean item whose flag starts non-zero: "left untouched", not cleared.
  std::vector<int32_t> flags(items.size(), 0);
  flags[6] = 3;
  expect_matches_naive(items, std::vector<float>(23, 0.0f), flags);

  std::vector<float> slots(23, 0.0f);
  const std::vector<mq_amax_item> api = as_api_items(items);
  ASSERT_EQ(
      mq_cpu_multi_amax(api.data(), static_cast<int32_t>(api.size()), slots.data(), flags.data()),
      MQ_OK);
  const std::vector<int32_t> want = {0, 1, 1, 1, 1, 1, 3, 0, 1, 1};
  EXPECT_EQ(flags, want);
  EXPECT_TRUE(std::isfinite(slots[20]) && std::isfinite(slots[22]));  // clean rows stay exact
}

TEST(MultiAmax, SubnormalsAndSignedZeros) {
  std::vector<Item> items;
  items.push_back({ref::encode({-0.0f, -0.0f, -0.0f, -0.0f}, 2, 2, MQ_DTYPE_F32), 0, 0});
  items.push_back({ref::encode({-0.0f, 0.0f}, 1, 2, MQ_DTYPE_BF16), 1, 0});
  items.push_back(
      {ref::encode({ref::float_of(3), -ref::float_of(7), ref::float_of(5)}, 1, 3, MQ_DTYPE_F32), 2,
       0});
  // f16 subnormals 2^-24 .. 2^-15
  items.push_back(
      {ref::encode({std::ldexp(1.0f, -24), -std::ldexp(3.0f, -20), std::ldexp(1.0f, -15)}, 3, 1,
                   MQ_DTYPE_F16),
       3, 1});
  expect_matches_naive(items, std::vector<float>(6, 0.0f), std::vector<int32_t>(4, 0));
  std::vector<float> slots(6, 0.0f);
  std::vector<int32_t> flags(4, 0);
  const std::vector<mq_amax_item> api = as_api_items(items);
  ASSERT_EQ(mq_cpu_multi_amax(api.data(), 4, slots.data(), flags.data()), MQ_OK);
  EXPECT_EQ(ref::bits_of(slots[0]), 0u);  // +0.0, never -0.0
  EXPECT_EQ(ref::bits_of(slots[1]), 0u);
  EXPECT_EQ(ref::bits_of(slots[2]), 7u);
  EXPECT_EQ(slots[4], std::ldexp(3.0f, -20));
}

TEST(MultiAmax, InvalidArguments) {
  float data[4] = {1, 2, 3, 4};
  float slots[4] = {0, 0, 0, 0};
  int32_t flags[2] = {0, 0};
  auto call = [&](mq_amax_item bad) {
    const mq_amax_item items[2] = {{data, 2, 2, MQ_DTYPE_F32, 0, 0}, bad};
    return mq_cpu_multi_amax(items, 2, slots, flags);
  };
  EXPECT_EQ(call({nullptr, 2, 2, MQ_DTYPE_F32, 0, 0}), MQ_ERR_INVALID);
  EXPECT_NE(std::string(mq_last_error()).find("item 1"), std::string::npos) << mq_last_error();
  EXPECT_EQ(call({data, -1, 2, MQ_DTYPE_F32, 0, 0}), MQ_ERR_INVALID);
  EXPECT_EQ(call({data, 2, 2, static_cast<mq_dtype>(9), 0, 0}), MQ_ERR_INVALID);
  EXPECT_EQ(call({data, 2, 2, MQ_DTYPE_F32, -1, 0}), MQ_ERR_INVALID);
  EXPECT_EQ(call({data, 2, 2, MQ_DTYPE_F32, 0, 2}), MQ_ERR_INVALID);
  EXPECT_EQ(slots[0], 0.0f);  // nothing combined when the call is refused
  EXPECT_EQ(call({nullptr, 0, 5, MQ_DTYPE_F32, 0, 0}), MQ_OK);  // an empty item is fine
  EXPECT_EQ(slots[0], 4.0f);
  EXPECT_EQ(mq_cpu_multi_amax(nullptr, 0, nullptr, nullptr), MQ_OK);
  EXPECT_EQ(mq_cpu_multi_amax(nullptr, 1, slots, flags), MQ_ERR_INVALID);
  EXPECT_EQ(mq_cpu_multi_amax(nullptr, -1, slots, flags), MQ_ERR_INVALID);
}

}  // namespace
