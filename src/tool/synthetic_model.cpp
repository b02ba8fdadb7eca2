#include "synthetic_model.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <sys/statvfs.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <thread>

#include "moequant/common/error.h"
#include "moequant/common/interrupt_cleanup.h"
#include "moequant/common/machine_memory.h"
#include "moequant/core/quantize.h"
#include "moequant/export/output_folder.h"
#include "moequant/io/checkpoint_folder.h"
#include "moequant/io/safetensors.h"
#include "moequant/model/decoder_config.h"
#include "moequant/model/model_tensors.h"

namespace moequant {

namespace {

// A tensor to write: its name, dtype and shape up front (the shard headers need them), its bytes
// made only when written, so that a large model is generated with one tensor in memory.
struct PlannedWeight {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  // Contiguous, of `dtype`'s storage type, drawn from `gen` (one generator per tensor, so that
  // tensors are made on several threads and the values do not depend on which ran first).
  std::function<at::Tensor(at::Generator&)> make;
};

// Seeded values of a weight: uniform with the spread of a unit-variance normal, scaled by
// gain / sqrt(in) (activations stay of order one through the layers). at::rand, not randn: a
// DeepSeek-sized checkpoint is gigabytes of values.
at::Tensor linear_values(const std::vector<int64_t>& shape, double gain, at::Generator& gen) {
  const double in = static_cast<double>(shape.back());
  const double k = std::sqrt(3.0) * gain / std::sqrt(in);
  return at::rand(shape, gen).mul_(2 * k).sub_(k).to(at::kBFloat16);  // in place: no temporaries
}

at::Tensor vector_values(int64_t n, double mean, double spread, at::ScalarType type,
                         at::Generator& gen) {
  return ((at::rand({n}, gen) * 2 - 1) * spread + mean).to(type);
}

class Planner {
 public:
  Planner(const ModelConfig& c, const SyntheticModelSpec& s) : c_(c), s_(s) {}

  // A linear weight, written as FP8 blocks (+ its weight_scale_inv) in an FP8 source.
  void linear(const std::string& name, const std::vector<int64_t>& shape, double gain = 1.0,
              bool fp8_allowed = true) {
    if (!(s_.fp8_source && fp8_allowed)) {
      w_.push_back({name, DType::kBF16, shape,
                    [=](at::Generator& g) { return linear_values(shape, gain, g); }});
      return;
    }
    // Quantized once for both tensors: the codes are made first, the scales right after, by the
    // same task (write_weights keeps a weight and its `_scale_inv` together).
    auto stored = std::make_shared<std::vector<StoredTensor>>();
    const std::vector<int64_t> tiles = {(shape[0] + 127) / 128, (shape[1] + 127) / 128};
    w_.push_back({name, DType::kF8E4M3, shape, [=](at::Generator& g) {
                    *stored = quantize_weight(linear_values(shape, gain, g), QuantFormat::kFP8Block,
                                              {}, name);
                    return find_stored(*stored, "weight", name).data;
                  }});
    w_.push_back({name + "_scale_inv", DType::kF32, tiles, [=](at::Generator&) {
                    const at::Tensor t = find_stored(*stored, "weight_scale_inv", name).data;
                    stored->clear();
                    return t;
                  }});
  }
  void vector(const std::string& name, int64_t n, double mean, double spread,
              DType dtype = DType::kBF16) {
    const at::ScalarType type = dtype == DType::kF32 ? at::kFloat : at::kBFloat16;
    w_.push_back({name, dtype, {n}, [=](at::Generator& g) {
                    return vector_values(n, mean, spread, type, g);
                  }});
  }
  // A tensor of any shape that is no linear weight (expert biases, DeltaNet's conv1d).
  void values(const std::string& name, const std::vector<int64_t>& shape, double mean,
              double spread) {
    w_.push_back({name, DType::kBF16, shape, [=](at::Generator& g) {
                    return ((at::rand(shape, g) * 2 - 1) * spread + mean).to(at::kBFloat16);
                  }});
  }

  void tensors(const TensorSet& set) {
    for (const ModelTensor& t : set.all()) {
      if (t.use == TensorUse::kRouterBias) {
        vector(t.name, t.shape[0], 0.0, 0.1, DType::kF32);
      } else if (t.linear) {
        // The router, the heads and MTP's projection stay bf16 in DeepSeek's release.
        const bool fp8 = t.use != TensorUse::kRouter && t.use != TensorUse::kLmHead &&
                         t.use != TensorUse::kMtpHead && t.use != TensorUse::kMtpEhProj &&
                         t.use != TensorUse::kSharedExpertGate;
        linear(t.name, t.shape, 1.0, fp8);
      } else if (t.use == TensorUse::kEmbed || t.use == TensorUse::kMtpEmbed) {
        linear(t.name, t.shape, 0.02 * std::sqrt(static_cast<double>(t.shape[1])), false);
      } else if (t.use == TensorUse::kQBias || t.use == TensorUse::kKBias ||
                 t.use == TensorUse::kVBias || t.use == TensorUse::kOBias ||
                 t.use == TensorUse::kRouterLinearBias || t.use == TensorUse::kSinks ||
                 t.use == TensorUse::kExpertGateUpBias || t.use == TensorUse::kExpertDownBias ||
                 t.use == TensorUse::kLinearConv || t.use == TensorUse::kLinearALog ||
                 t.use == TensorUse::kLinearDtBias) {
        values(t.name, t.shape, 0.0, 0.1);
      } else {  // norms
        vector(t.name, t.shape[0], 1.0, 0.1);
      }
    }
  }

  void experts(int layer) {
    const int64_t H = c_.hidden, I = c_.intermediate, E = c_.num_experts;
    if (s_.mxfp4_source && layer < c_.num_layers) {  // GPT-OSS's release: rows [out, in]
      mxfp4(c_.fused_gate_up_name(layer), E, 2 * I, H);
      mxfp4(c_.fused_down_name(layer), E, H, I);
      return;
    }
    if (s_.fused_experts && layer < c_.num_layers) {
      // In the family's layout: [E, 2I, H] and [E, H, I], or applied as x @ W (the transpose).
      const bool t = c_.family->fused_layout().transposed;
      const std::vector<int64_t> gate_up =
          t ? std::vector<int64_t>{E, H, 2 * I} : std::vector<int64_t>{E, 2 * I, H};
      const std::vector<int64_t> down =
          t ? std::vector<int64_t>{E, I, H} : std::vector<int64_t>{E, H, I};
      // linear_values scales by 1 / sqrt(last dim): x @ W's input is the middle one.
      auto gain = [&](const std::vector<int64_t>& shape, int64_t in) {
        return t ? std::sqrt(static_cast<double>(shape.back()) / static_cast<double>(in)) : 1.0;
      };
      const double g1 = gain(gate_up, H), g2 = gain(down, I);
      w_.push_back({c_.fused_gate_up_name(layer), DType::kBF16, gate_up,
                    [=](at::Generator& g) { return linear_values(gate_up, g1, g); }});
      w_.push_back({c_.fused_down_name(layer), DType::kBF16, down,
                    [=](at::Generator& g) { return linear_values(down, g2, g); }});
      return;
    }
    for (int e = 0; e < E; ++e) {
      // A heavier tail in some experts makes shared and per-expert amax differ.
      const double gain = 0.5 * (1.0 + (e % 3));
      linear(c_.expert_weight_name(layer, e, ExpertProj::kGate), {I, H}, gain);
      linear(c_.expert_weight_name(layer, e, ExpertProj::kUp), {I, H}, gain);
      linear(c_.expert_weight_name(layer, e, ExpertProj::kDown), {H, I}, gain);
    }
  }

  // MXFP4 blocks and scales of [E, rows, cols] weights: random E2M1 codes, e8m0 scales that
  // keep the values of order gain / sqrt(cols) (2^-2 .. 2^-5 for the usual widths).
  void mxfp4(const std::string& name, int64_t E, int64_t rows, int64_t cols) {
    const int64_t blocks = cols / 32;
    const int shift =
        static_cast<int>(std::lround(std::log2(std::sqrt(static_cast<double>(cols)))));
    w_.push_back({name + "_blocks", DType::kU8, {E, rows, blocks, 16}, [=](at::Generator& g) {
                    return at::randint(0, 256, {E, rows, blocks, 16}, g, at::kByte);
                  }});
    w_.push_back({name + "_scales", DType::kU8, {E, rows, blocks}, [=](at::Generator& g) {
                    return at::randint(124 - shift, 127 - shift, {E, rows, blocks}, g, at::kByte);
                  }});
  }

  std::vector<PlannedWeight> take() { return std::move(w_); }

 private:
  const ModelConfig& c_;
  const SyntheticModelSpec& s_;
  std::vector<PlannedWeight> w_;
};

// Every tensor of the model, in the order transformers writes them (embedding, layers, head).
std::vector<PlannedWeight> plan_weights(const ModelConfig& c, const DecoderConfig& d,
                                        const SyntheticModelSpec& s) {
  Planner p(c, s);
  const TensorSet ends = end_tensors(c, d);
  TensorSet embed;
  embed.add(TensorUse::kEmbed, ends.get(TensorUse::kEmbed).name, ends.get(TensorUse::kEmbed).shape);
  p.tensors(embed);
  for (int l = 0; l < c.num_layers + c.extra_layers; ++l) {
    const TensorSet layer = layer_tensors(c, d, l);
    p.tensors(layer);
    if (layer.find(TensorUse::kRouter)) p.experts(l);
  }
  TensorSet tail;
  for (const ModelTensor& t : ends.all())
    if (t.use != TensorUse::kEmbed) tail.add(t.use, t.name, t.shape, t.linear);
  p.tensors(tail);
  return p.take();
}

nlohmann::json make_config(const SyntheticModelSpec& s) {
  ModelShape shape;
  shape.layers = s.layers;
  shape.experts = s.experts;
  shape.top_k = s.top_k;
  shape.hidden = s.hidden;
  shape.intermediate = s.intermediate;
  shape.dense_intermediate = s.dense_intermediate;
  shape.heads = s.heads;
  shape.kv_heads = s.kv_heads;
  shape.head_dim = s.head_dim;
  shape.vocab = s.vocab;
  shape.dense_layers = s.dense_layers;
  nlohmann::json c = family_for_model_type(s.model_type, "synthetic model").synthetic_config(shape);
  if (s.mtp_layers >= 0) {
    MQ_CHECK(c.contains("num_nextn_predict_layers"), "generate: --mtp-layers: ", s.model_type,
             " has no multi-token-prediction layers");
    c["num_nextn_predict_layers"] = s.mtp_layers;
  }
  if (s.mxfp4_source)  // GPT-OSS's release config
    c["quantization_config"] = {{"quant_method", "mxfp4"},
                                {"modules_to_not_convert",
                                 {"model.layers.*.self_attn", "model.layers.*.mlp.router",
                                  "model.embed_tokens", "lm_head"}}};
  if (s.fp8_source)  // DeepSeek-V3's release config
    c["quantization_config"] = {{"quant_method", "fp8"},
                                {"fmt", "e4m3"},
                                {"activation_scheme", "dynamic"},
                                {"weight_block_size", {128, 128}}};
  return c;
}

// The sizes the flags ask for must fit: the files on the disk, the largest tensor (generated in
// float32, then converted) in memory, and at least one tensor per shard. In double: huge flags
// must not wrap.
void check_fits(const std::string& dir, const SyntheticModelSpec& s,
                const std::vector<PlannedWeight>& weights) {
  MQ_CHECK(static_cast<size_t>(s.shards) <= weights.size(), "generate: --shards ", s.shards,
           " exceeds the ", weights.size(), " tensors of the model");
  double total = 0, largest = 0;
  for (const PlannedWeight& w : weights) {
    double n = static_cast<double>(dtype_size(w.dtype));
    for (int64_t d : w.shape) n *= static_cast<double>(d);
    total += n;
    largest = std::max(largest, n);
  }
  const std::string flags = "--layers, --experts, --hidden, --intermediate, --vocab, --heads";
  const std::filesystem::path parent = std::filesystem::absolute(dir).parent_path();
  struct statvfs fs {};
  if (::statvfs(parent.c_str(), &fs) == 0) {
    const double free_bytes = static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize);
    MQ_CHECK(total <= free_bytes, "generate: the model would take ", total, " bytes (", flags,
             "), more than the ", free_bytes, " bytes free in '", parent.string(), "'");
  }
  const double memory = static_cast<double>(physical_memory_bytes());
  MQ_CHECK(memory <= 0 || 3 * largest <= memory, "generate: its largest tensor would take ",
           largest, " bytes (", flags, "), too large for this machine's ", memory,
           " bytes of memory");
}

void write_weights(const std::string& dir, const SyntheticModelSpec& s,
                   const std::vector<PlannedWeight>& weights, const nlohmann::json& config_json);

}  // namespace

void write_synthetic_model(const std::string& dir, const SyntheticModelSpec& s) {
  MQ_CHECK(s.layers > 0 && s.experts > 0 && s.hidden > 0 && s.intermediate > 0 && s.shards > 0 &&
               s.heads > 0 && s.kv_heads > 0 && s.vocab > 0 && s.top_k > 0,
           "synthetic model: sizes must be positive");
  MQ_CHECK(s.heads % s.kv_heads == 0, "synthetic model: ", s.heads,
           " attention heads are not a multiple of ", s.kv_heads, " key/value heads");
  MQ_CHECK(s.top_k <= s.experts, "synthetic model: top-k ", s.top_k, " exceeds ", s.experts,
           " experts");
  MQ_CHECK(s.head_dim > 0 || s.hidden % s.heads == 0, "synthetic model: hidden ", s.hidden,
           " is not a multiple of ", s.heads, " heads (give a head dim)");
  for (int l : s.dense_layers)
    MQ_CHECK(l >= 0 && l < s.layers, "synthetic model: dense layer ", l,
             " is not a layer of the model");
  MQ_CHECK(!(s.fused_experts && s.fp8_source),
           "synthetic model: an FP8 block source stores its "
           "experts per expert (DeepSeek's release layout), not fused");
  MQ_CHECK(!s.mxfp4_source || s.model_type == "gpt_oss",
           "synthetic model: an MXFP4 source is GPT-OSS's release layout (--model-type gpt_oss)");
  MQ_CHECK(!s.mxfp4_source || (s.hidden % 32 == 0 && s.intermediate % 32 == 0),
           "synthetic model: an MXFP4 source needs --hidden and --intermediate multiples of 32");
  MQ_CHECK(!std::filesystem::exists(dir), "synthetic model: '", dir, "' already exists");
  const nlohmann::json config_json = make_config(s);
  const ModelConfig config = parse_model_config(config_json, dir, "synthetic config.json");
  const DecoderConfig d = decoder_config(config);
  const std::vector<PlannedWeight> weights = plan_weights(config, d, s);
  check_fits(dir, s, weights);
  std::filesystem::create_directories(dir);
  // Half-written, the folder would look like a checkpoint: it goes on failure or interruption.
  RemoveOnInterrupt on_interrupt(dir, "the half-written model folder");
  try {
    write_weights(dir, s, weights, config_json);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    throw;
  }
}

namespace {

// Makes the tensors ahead of the writer, in order, on worker threads: random numbers on one thread
// are the limit otherwise (a DeepSeek-V3-sized layer is 11 G values). A weight and its
// `_scale_inv` are one task; tasks in flight are bounded by the threads and a quarter of memory.
class TensorMaker {
 public:
  TensorMaker(const std::vector<PlannedWeight>& weights, uint64_t seed)
      : weights_(weights), seed_(seed) {
    threads_ = std::max(1u, std::thread::hardware_concurrency());
    for (const PlannedWeight& w : weights_) budget_ = std::max(budget_, work_bytes(w));
    budget_ = std::max(budget_, static_cast<double>(physical_memory_bytes()) / 4);
  }
  // The next tensor, in the order of `weights`.
  at::Tensor next() {
    if (current_pos_ == current_.size()) {
      launch();
      Task t = std::move(ahead_.front());
      ahead_.pop_front();
      current_ = t.tensors.get();
      current_pos_ = 0;
      in_flight_ -= t.bytes;
      launch();
    }
    return std::move(current_[current_pos_++]);
  }

 private:
  struct Task {
    std::future<std::vector<at::Tensor>> tensors;
    double bytes;
  };
  // float32 values, their bf16 copy and the codes: about 3 x 4 bytes per element.
  static double work_bytes(const PlannedWeight& w) {
    double n = 12;
    for (int64_t d : w.shape) n *= static_cast<double>(d);
    return n;
  }
  void launch() {
    while (next_ < weights_.size() && ahead_.size() < threads_ &&
           (ahead_.empty() || in_flight_ + work_bytes(weights_[next_]) <= budget_)) {
      size_t count = 1;
      while (next_ + count < weights_.size() &&
             weights_[next_ + count].name == weights_[next_].name + "_scale_inv")
        ++count;
      const size_t first = next_;
      // splitmix64 of (seed, index): independent streams, the same whichever thread runs first.
      uint64_t z = seed_ + 0x9E3779B97F4A7C15ull * (first + 1);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      const uint64_t stream_seed = z ^ (z >> 31);
      const double bytes = work_bytes(weights_[first]);
      ahead_.push_back({std::async(std::launch::async,
                                   [this, first, count, stream_seed] {
                                     at::Generator g = at::detail::createCPUGenerator(stream_seed);
                                     std::vector<at::Tensor> out;
                                     for (size_t k = 0; k < count; ++k)
                                       out.push_back(weights_[first + k].make(g).contiguous());
                                     return out;
                                   }),
                        bytes});
      in_flight_ += bytes;
      next_ += count;
    }
  }

  const std::vector<PlannedWeight>& weights_;
  const uint64_t seed_;
  unsigned threads_ = 1;
  double budget_ = 0, in_flight_ = 0;
  size_t next_ = 0;
  std::deque<Task> ahead_;
  std::vector<at::Tensor> current_;
  size_t current_pos_ = 0;
};

void write_weights(const std::string& dir, const SyntheticModelSpec& s,
                   const std::vector<PlannedWeight>& weights, const nlohmann::json& config_json) {
  // Shard k holds weights [cut[k], cut[k+1]); an FP8 weight and its scales stay in one shard.
  std::vector<size_t> cut = {0};
  const size_t per_shard = (weights.size() + s.shards - 1) / s.shards;
  for (size_t i = 1; i < weights.size() && static_cast<int>(cut.size()) < s.shards; ++i)
    if (i - cut.back() >= per_shard && weights[i].name != weights[i - 1].name + "_scale_inv")
      cut.push_back(i);
  while (static_cast<int>(cut.size()) <= s.shards) cut.push_back(weights.size());
  std::map<std::string, std::string> weight_map;
  uint64_t total = 0;
  TensorMaker maker(weights, s.seed);
  for (int k = 0; k < s.shards; ++k) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "model-%05d-of-%05d.safetensors", k + 1, s.shards);
    const std::string file = s.shards == 1 ? "model.safetensors" : buf;
    const size_t begin = cut[k], end = cut[k + 1];
    std::vector<io::TensorSpec> specs;
    for (size_t i = begin; i < end; ++i)
      specs.push_back({weights[i].name, weights[i].dtype, weights[i].shape});
    io::SafetensorsWriter writer(dir + "/" + file, specs, {{"format", "pt"}});
    for (size_t i = begin; i < end; ++i) {
      const at::Tensor t = maker.next();
      writer.write(weights[i].name, t.data_ptr(), t.nbytes());
      weight_map[weights[i].name] = file;
      total += t.nbytes();
    }
    writer.finish();
  }
  if (s.shards > 1) io::write_index(dir + "/model.safetensors.index.json", total, weight_map);
  write_text_file(dir + "/config.json", config_json.dump(2) + "\n");
}

}  // namespace

}  // namespace moequant
