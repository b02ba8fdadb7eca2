#include "moequant/pipeline/evaluate_checkpoint.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "exported_experts.h"
#include "moequant/common/error.h"
#include "moequant/common/limited_json.h"
#include "moequant/common/regular_file.h"
#include "moequant/core/quantize.h"
#include "moequant/export/engine_view.h"
#include "moequant/export/export_plan.h"
#include "moequant/forward/decoder_forward.h"
#include "moequant/forward/gpt_oss_ops.h"

namespace moequant {

namespace {

// One model of the comparison: its folder, what its config declares, its hidden states.
struct Model {
  std::string dir;
  io::CheckpointFolder ckpt;
  EngineView view;
  at::Tensor h;  // [samples, T, H]
};

EngineView view_of(const std::string& dir) {
  const std::string file = dir + "/config.json";
  MQ_CHECK(path_exists(file), "'", dir, "' has no config.json");
  return engine_view_of(read_json_file(file, kMaxConfigFileBytes), file);
}

// The experts of one layer as a model runs them: the source's weights, or the dequantized export
// with each expert's inputs quantized by its input_scale (static schemes).
LocalExperts experts_of(const Model& m, const ModelConfig& c, int layer, const at::Device& dev,
                        bool source) {
  std::map<int, SwiGluWeights> weights;
  std::map<std::pair<int, bool>, float> scales;
  for (int e = 0; e < c.num_experts; ++e) {
    weights.emplace(e, source ? read_expert_weights(m.ckpt, c, layer, e, dev)
                              : dequantized_expert(m.ckpt, c, layer, e, dev));
    if (!source)  // GPT-OSS's expert biases, carried over into the export as they were
      add_expert_extras(weights[e], m.ckpt, c, decoder_config(c), layer, e, 0, c.intermediate, true,
                        dev);
    if (source || !m.view.static_activations) continue;
    for (const bool fc1 : {true, false}) {  // gate and up share one input scale
      const std::string module =
          c.expert_module_name(layer, e, fc1 ? ExpertProj::kGate : ExpertProj::kDown);
      const std::optional<float> s = input_scale_of(m.ckpt, module);
      if (s) scales[{e, fc1}] = *s;
    }
  }
  ExpertInputTransform transform;
  if (!scales.empty()) {
    const QuantFormat f = m.view.format;
    transform = [scales, f](int e, bool fc1, const at::Tensor& x) {
      auto it = scales.find({e, fc1});
      return it == scales.end() ? x : fake_quantize(x, f, it->second, "expert input");
    };
  }
  return LocalExperts(std::move(weights), {}, std::move(transform));
}

// The dense linears of an export as an engine loads them: a quantized one dequantized.
LinearReader linear_reader(const Model& m, const at::Device& dev) {
  return [&m, dev](const ModelTensor& t) -> at::Tensor {
    const std::string module = t.name.substr(0, t.name.rfind('.'));
    if (stored_format(m.ckpt, module) == QuantFormat::kNone) return {};
    return dequantized_projection(m.ckpt, module, t.shape[0], t.shape[1], dev);
  };
}

// What an engine does to the inputs of an export's dense linears (their static input scale) and
// to the attention's keys and values (an FP8 KV cache with k_scale / v_scale).
ForwardHooks engine_hooks(const Model& m, const ModelConfig& c, const DecoderConfig& d, int layer) {
  ForwardHooks hooks;
  const TensorSet tensors = layer_tensors(c, d, layer);
  std::map<TensorUse, float> input_scales;  // by fusion group
  if (m.view.static_activations)
    for (const ModelTensor& t : tensors.all()) {
      if (!t.linear || !quantizable_dense_linear(t.use)) continue;
      const std::optional<float> s = input_scale_of(m.ckpt, t.name.substr(0, t.name.rfind('.')));
      if (s) input_scales.emplace(fusion_group(t.use), *s);
    }
  if (!input_scales.empty()) {
    const QuantFormat f = m.view.format;
    hooks.linear_input = [input_scales, f](TensorUse use, const at::Tensor& x) {
      auto it = input_scales.find(use);
      if (it == input_scales.end()) return x;
      return fake_quantize(x.reshape({-1, x.size(-1)}), f, it->second, "dense linear input")
          .view(x.sizes());
    };
  }
  if (m.view.kv_cache_fp8 && d.attention == AttentionKind::kGqa) {
    const std::string k = kv_scale_name(c, layer, true), v = kv_scale_name(c, layer, false);
    MQ_CHECK(m.ckpt.has(k) && m.ckpt.has(v), m.dir, ": declares an FP8 KV cache but has no '", k,
             "' / '", v, "'");
    const float ks = scalar_scale(m.ckpt, k), vs = scalar_scale(m.ckpt, v);
    hooks.kv = [ks, vs](bool keys, const at::Tensor& x) {
      return fake_quantize(x.reshape({-1, x.size(-1)}), QuantFormat::kFP8, keys ? ks : vs,
                           "KV cache")
          .view(x.sizes());
    };
  }
  return hooks;
}

std::string label_of(const EngineView& v) {
  if (v.method.empty()) return "unquantized";
  if (!v.algo.empty()) return "modelopt " + v.algo + (v.kv_cache_fp8 ? " + FP8 KV cache" : "");
  if (v.method == "fp8")
    return v.format == QuantFormat::kFP8Block ? "fp8 128x128 blocks" : "fp8 per-tensor, dynamic";
  return "gptq int4";
}

}  // namespace

SequenceRequest eval_sequences(int64_t samples, int64_t seq_len, int64_t batch,
                               size_t quantized_folders) {
  SequenceRequest r;
  r.samples = samples;
  r.seq_len = seq_len;
  r.batch = batch;
  r.models = 1 + static_cast<int64_t>(quantized_folders);
  r.logits = true;
  r.samples_flag = "--samples";
  r.seq_len_flag = "--seq-len";
  r.batch_flag = "--batch";
  return r;
}

EvalReport evaluate_checkpoints(const EvalOptions& o, const CalibrationData& data) {
  MQ_CHECK(!o.quantized.empty(), "no quantized folder to evaluate");
  MQ_CHECK(data.seq_len >= 2, "evaluation needs sequences of at least 2 tokens");
  const ModelConfig c = read_model_config(o.source);
  check_sequence_limits(c, eval_sequences(static_cast<int64_t>(data.samples.size()), data.seq_len,
                                          o.batch, o.quantized.size()));
  const DecoderConfig d = decoder_config(c);
  const at::Device dev(o.device);
  std::vector<Model> models;
  models.push_back({o.source, io::CheckpointFolder::open(o.source), EngineView{}, {}});
  for (const std::string& q : o.quantized) {
    const ModelConfig qc = read_model_config(q, ConfigOf::kExport);
    MQ_CHECK(qc.model_type == c.model_type && qc.num_layers == c.num_layers &&
                 qc.num_experts == c.num_experts && qc.hidden == c.hidden,
             "'", q, "' is not an export of '", o.source, "' (its config.json differs)");
    models.push_back({q, io::CheckpointFolder::open(q), view_of(q), {}});
  }
  std::vector<int64_t> flat;
  for (const auto& s : data.samples) flat.insert(flat.end(), s.begin(), s.end());
  const int64_t n = static_cast<int64_t>(data.samples.size()), T = data.seq_len;
  const at::Tensor ids = at::tensor(flat, at::kLong).view({n, T});
  for (Model& m : models) m.h = embed_tokens(ids, read_model_ends(m.ckpt, c, d, dev), d);

  const RopeTable rope = rope_table(T, d.rope, dev);
  for (int layer = 0; layer < c.num_layers; ++layer) {
    for (size_t i = 0; i < models.size(); ++i) {
      Model& m = models[i];
      const bool source = i == 0;
      const DecoderLayerWeights w = read_layer_weights(
          m.ckpt, c, d, layer, dev, source ? LinearReader{} : linear_reader(m, dev));
      const ForwardHooks hooks = source ? ForwardHooks{} : engine_hooks(m, c, d, layer);
      LocalExperts experts = c.is_moe_layer(layer) ? experts_of(m, c, layer, dev, source)
                                                   : LocalExperts(std::map<int, SwiGluWeights>{});
      std::vector<at::Tensor> outs;
      for (int64_t b = 0; b < n; b += o.batch)
        outs.push_back(
            decoder_layer(m.h.narrow(0, b, std::min(o.batch, n - b)), w, d, rope, &experts, hooks));
      m.h = at::cat(outs, 0);
    }
    if (o.progress) o.progress(layer + 1, c.num_layers);
  }

  // Next-token metrics over chunks of kRows token positions: the logits are vocab-wide and taken
  // in double (KL of nearly equal distributions), so a whole batch would be hundreds of MB per
  // tensor, fresh pages each time (Llama-2's vocabulary: 8 x 255 positions = 522 MB).
  constexpr int64_t kRows = 64;
  const ModelEnds ends = read_model_ends(models[0].ckpt, c, d, dev);
  const at::Tensor targets = ids.narrow(1, 1, T - 1).reshape({-1, 1}).to(dev);
  std::vector<at::Tensor> hidden;  // [n * (T - 1), H] per model: every position but the last
  for (const Model& m : models)
    hidden.push_back(m.h.narrow(1, 0, T - 1).reshape({n * (T - 1), -1}));
  std::vector<double> nll(models.size(), 0.0), kl(models.size(), 0.0), agree(models.size(), 0.0);
  for (int64_t r = 0; r < n * (T - 1); r += kRows) {
    const int64_t rows = std::min(kRows, n * (T - 1) - r);
    const at::Tensor tgt = targets.narrow(0, r, rows);
    at::Tensor ref_logp, ref_p, ref_top;
    for (size_t i = 0; i < models.size(); ++i) {
      const at::Tensor logits =
          output_logits(hidden[i].narrow(0, r, rows), ends, d).to(at::kDouble);
      const at::Tensor logp = at::log_softmax(logits, -1);
      nll[i] -= logp.gather(1, tgt).sum().item<double>();
      const at::Tensor top = logp.argmax(-1);
      if (i == 0) {
        ref_logp = logp;
        ref_p = logp.exp();
        ref_top = top;
        continue;
      }
      kl[i] += (ref_p * (ref_logp - logp)).sum().item<double>();
      agree[i] += top.eq(ref_top).sum().item<double>();
    }
  }
  EvalReport report;
  report.tokens = n * (T - 1);
  const double count = static_cast<double>(report.tokens);
  report.source_perplexity = std::exp(nll[0] / count);
  for (size_t i = 1; i < models.size(); ++i) {
    report.results.push_back({models[i].dir, label_of(models[i].view), std::exp(nll[i] / count),
                              kl[i] / count, agree[i] / count});
  }
  return report;
}

}  // namespace moequant
