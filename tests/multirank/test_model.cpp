#include "test_model.h"

#include <algorithm>
#include <cmath>

#include "moequant/common/error.h"

namespace moequant::parallel::testing {

namespace {

uint64_t mix(uint64_t x) {  // splitmix64 finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t hash(uint64_t seed, std::initializer_list<int64_t> parts) {
  uint64_t h = mix(seed);
  for (int64_t p : parts) h = mix(h ^ static_cast<uint64_t>(p));
  return h;
}

double unit(uint64_t h) {
  return static_cast<double>(h >> 11) / 9007199254740992.0;
}  // [0, 1)

// Tensor ids for the generator.
enum Which { kFc1 = 1, kFc2 = 2, kQkv = 3, kProj = 4 };

std::vector<float> make(const ModelSpec& m, Which w, int layer, int expert, int64_t rows,
                        int64_t cols) {
  // Each tensor gets its own scale so that amax differ between experts and layers.
  const double scale = 0.25 + 4.0 * unit(hash(m.seed, {w, layer, expert, -1}));
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      out[r * cols + c] =
          static_cast<float>(scale * (2.0 * unit(hash(m.seed, {w, layer, expert, r, c})) - 1.0));
  return out;
}

// amax of rows [r0, r1) x cols [c0, c1) of a [*, cols] matrix.
float block_amax(const std::vector<float>& t, int64_t cols, int64_t r0, int64_t r1, int64_t c0,
                 int64_t c1) {
  float a = 0.0f;
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = c0; c < c1; ++c) a = std::max(a, std::fabs(t[r * cols + c]));
  return a;
}

std::vector<float> row_amax(const std::vector<float>& t, int64_t cols, int64_t r0, int64_t r1,
                            int64_t c0, int64_t c1) {
  std::vector<float> out;
  for (int64_t r = r0; r < r1; ++r) out.push_back(block_amax(t, cols, r, r + 1, c0, c1));
  return out;
}

std::vector<float> concat(std::vector<float> a, const std::vector<float>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

float max_with_sentinel(float a, float b) {
  return std::max(a, b);
}  // -1 loses to any amax

std::string layer_prefix(int layer) {
  return "layers." + std::to_string(layer);
}

}  // namespace

ModelDims ModelSpec::dims() const {
  ModelDims d;
  d.num_layers = layers;
  d.num_experts = experts;
  d.expert_intermediate = intermediate;
  return d;
}

std::vector<float> expert_fc1(const ModelSpec& m, int layer, int expert) {
  return make(m, kFc1, layer, expert, 2 * m.intermediate, m.hidden);
}
std::vector<float> expert_fc2(const ModelSpec& m, int layer, int expert) {
  return make(m, kFc2, layer, expert, m.hidden, m.intermediate);
}
std::vector<float> dense_qkv(const ModelSpec& m, int layer) {
  return make(m, kQkv, layer, -1, 3 * m.hidden, m.hidden);
}
std::vector<float> dense_proj(const ModelSpec& m, int layer) {
  return make(m, kProj, layer, -1, m.hidden, m.hidden);
}

float expert_input_amax(const ModelSpec& m, int layer, int expert, int shard) {
  if (layer == m.layers - 1 || (layer == 1 && expert == 5)) return -1.0f;
  const uint64_t h = hash(m.seed, {7, layer, expert, shard});
  if (h % 3 == 0) return -1.0f;  // no tokens routed here in this shard
  return static_cast<float>(0.1 + 10.0 * unit(h >> 2));
}

float dense_input_amax(const ModelSpec& m, int layer, int shard) {
  if (layer == 0 && shard == 3) return -1.0f;
  return static_cast<float>(0.5 + 20.0 * unit(hash(m.seed, {8, layer, shard})));
}

std::vector<RankQuantizer> rank_quantizers(const ModelSpec& m, const ParallelState& ps) {
  const int64_t H = m.hidden, I = m.intermediate;
  const IndexRange layers = ps.local_layers();
  const IndexRange experts = ps.local_experts();
  const IndexRange shard = ps.local_etp_shard();
  const ExpertCoord ec = ps.expert_coord();
  const DenseCoord dc = ps.dense_coord();
  const uint32_t kTP = group_bit(Group::kTP), kDP = group_bit(Group::kDP);
  const uint32_t kETP = group_bit(Group::kETP), kEP = group_bit(Group::kEP);
  const uint32_t kEDP = group_bit(Group::kEDP);

  std::vector<RankQuantizer> out;
  for (int l = static_cast<int>(layers.begin); l < layers.end; ++l) {
    const std::string lp = layer_prefix(l);
    // ---- experts ----
    RankQuantizer g_fc1{
        lp + ".mlp.experts.linear_fc1.weight_quantizer", kETP | kEP, {-1}, {-1}, true};
    RankQuantizer g_fc2{
        lp + ".mlp.experts.linear_fc2.weight_quantizer", kETP | kEP, {-1}, {-1}, true};
    RankQuantizer g_in{
        lp + ".mlp.experts.linear_fc1.input_quantizer", kETP | kEP | kEDP, {-1}, {-1}, true};
    for (int e = 0; e < m.experts; ++e) {
      const auto fc1 = expert_fc1(m, l, e);
      const auto fc2 = expert_fc2(m, l, e);
      g_fc1.expected[0] = std::max(g_fc1.expected[0], block_amax(fc1, H, 0, 2 * I, 0, H));
      g_fc2.expected[0] = std::max(g_fc2.expected[0], block_amax(fc2, I, 0, H, 0, I));
      float in_full = -1.0f, in_local = -1.0f;
      for (int s = 0; s < m.token_shards; ++s) {
        const float a = expert_input_amax(m, l, e, s);
        in_full = max_with_sentinel(in_full, a);
        if (s % ps.edp() == ec.edp) in_local = max_with_sentinel(in_local, a);
      }
      g_in.expected[0] = max_with_sentinel(g_in.expected[0], in_full);
      if (!experts.contains(e)) continue;

      // This rank's shard of expert e: fc1 rows [gate_r; up_r], fc2 columns of the same range.
      const float fc1_local = std::max(block_amax(fc1, H, shard.begin, shard.end, 0, H),
                                       block_amax(fc1, H, I + shard.begin, I + shard.end, 0, H));
      const float fc2_local = block_amax(fc2, I, 0, H, shard.begin, shard.end);
      g_fc1.local[0] = std::max(g_fc1.local[0], fc1_local);
      g_fc2.local[0] = std::max(g_fc2.local[0], fc2_local);
      g_in.local[0] = max_with_sentinel(g_in.local[0], in_local);

      const std::string ep = lp + ".mlp.experts." + std::to_string(e);
      out.push_back({ep + ".linear_fc1.weight_quantizer",
                     kETP,
                     {fc1_local},
                     {block_amax(fc1, H, 0, 2 * I, 0, H)}});
      out.push_back({ep + ".linear_fc2.weight_quantizer", kETP,
                     row_amax(fc2, I, 0, H, shard.begin, shard.end), row_amax(fc2, I, 0, H, 0, I)});
      out.push_back({ep + ".linear_fc1.channel_quantizer", 0,
                     concat(row_amax(fc1, H, shard.begin, shard.end, 0, H),
                            row_amax(fc1, H, I + shard.begin, I + shard.end, 0, H)),
                     concat(row_amax(fc1, H, shard.begin, shard.end, 0, H),
                            row_amax(fc1, H, I + shard.begin, I + shard.end, 0, H))});
      out.push_back({ep + ".linear_fc1.input_quantizer", kETP | kEDP, {in_local}, {in_full}});
    }
    out.push_back(g_fc1);
    out.push_back(g_fc2);
    out.push_back(g_in);

    // ---- dense attention, split over TP ----
    const std::string ap = lp + ".self_attention";
    const auto qkv = dense_qkv(m, l);
    const auto proj = dense_proj(m, l);
    const IndexRange qrows = ps.local_tp_shard(3 * H, "qkv rows");
    const IndexRange pcols = ps.local_tp_shard(H, "proj columns");
    out.push_back({ap + ".linear_qkv.weight_quantizer",
                   kTP,
                   {block_amax(qkv, H, qrows.begin, qrows.end, 0, H)},
                   {block_amax(qkv, H, 0, 3 * H, 0, H)}});
    out.push_back({ap + ".linear_qkv.channel_quantizer", 0,
                   row_amax(qkv, H, qrows.begin, qrows.end, 0, H),
                   row_amax(qkv, H, qrows.begin, qrows.end, 0, H)});
    out.push_back({ap + ".linear_proj.weight_quantizer",
                   kTP,
                   {block_amax(proj, H, 0, H, pcols.begin, pcols.end)},
                   {block_amax(proj, H, 0, H, 0, H)}});
    out.push_back({ap + ".linear_proj.channel_quantizer", kTP,
                   row_amax(proj, H, 0, H, pcols.begin, pcols.end), row_amax(proj, H, 0, H, 0, H)});
    float in_full = -1.0f, in_local = -1.0f;
    for (int s = 0; s < m.token_shards; ++s) {
      const float a = dense_input_amax(m, l, s);
      in_full = max_with_sentinel(in_full, a);
      if (s % ps.dp() == dc.dp) in_local = max_with_sentinel(in_local, a);
    }
    out.push_back({ap + ".linear_qkv.input_quantizer", kTP | kDP, {in_local}, {in_full}});
  }
  return out;
}

}  // namespace moequant::parallel::testing
