// `moequant verify --source DIR --quantized DIR`: checks an exported folder against the
// checkpoint it came from. Every expert weight is found (weight + scales, or GPTQ's four
// tensors), checked for dtype/shape/valid scales, dequantized and compared with the source;
// every other tensor must be byte-identical; nothing may be missing or extra. Exit code 1 on
// any problem, so scripts and CI can gate on it.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

#include "commands.h"
#include "exported_folder.h"
#include "moequant/common/error.h"
#include "moequant/core/quantize.h"
#include "moequant/core/tensor_bridge.h"
#include "moequant/export/checkpoint_completeness.h"
#include "moequant/export/engine_view.h"
#include "moequant/export/export_plan.h"
#include "moequant/export/scale_checks.h"
#include "moequant/forward/checkpoint_tensor.h"
#include "moequant/forward/expert_storage.h"
#include "moequant/io/checkpoint_folder.h"
#include "moequant/model/decoder_config.h"
#include "moequant/model/model_config.h"
#include "moequant/model/model_tensors.h"
#include "moequant/model/source_quantization.h"

namespace moequant::tool {

CLI::App* add_verify_command(CLI::App& app, VerifyArgs& a) {
  CLI::App* c = app.add_subcommand(
      "verify",
      "Check an exported folder against its source: dequantize every expert weight "
      "and report the error, require every other tensor byte-identical. Exit code 1 "
      "on any problem");
  c->add_option("--source", a.source, "The source Hugging Face folder")->required();
  c->add_option("--quantized", a.quantized, "The exported folder")->required();
  c->add_option("--tolerance", a.tolerance,
                "Largest relative RMS error ||deq - src|| / ||src|| accepted per tensor "
                "(default per format: fp8 0.08, fp8_block 0.08, nvfp4 0.2, int4 0.2, none 0)");
  c->add_flag("--json", a.json, "Print a JSON document instead of tables");
  c->add_flag("--quiet,-q", a.quiet, "Print only problems and the verdict");
  return c;
}

namespace {

double default_tolerance(QuantFormat f) {
  switch (f) {
    case QuantFormat::kFP8:
    case QuantFormat::kFP8Block:
      return 0.08;
    case QuantFormat::kNVFP4:
    case QuantFormat::kINT4:
      return 0.2;
    case QuantFormat::kNone:
      break;
  }
  return 0.0;
}

// The result of one expert weight.
struct WeightCheck {
  std::string name;  // base name in the quantized folder ("...experts.3.gate_proj")
  std::string proj;  // gate_proj / up_proj / down_proj (w1 / w3 / w2)
  QuantFormat format = QuantFormat::kNone;
  std::vector<int64_t> shape;
  double max_abs = 0, rel_rms = 0;
  bool ok = true;
};

// One source expert weight: a whole tensor, or one expert's slice of a fused 3-D tensor, as the
// exporter reads it (an FP8 block source's weight: the bf16 it encodes).
struct SourceWeight {
  std::string label;  // the source tensor name, with "[e]" / "[e, rows a:b]" for fused slices
  DType dtype = DType::kBF16;
  at::Tensor data;  // contiguous, of `dtype`
  int64_t rows = 0, cols = 0;
  const uint8_t* bytes() const { return static_cast<const uint8_t*>(data.data_ptr()); }
  uint64_t nbytes() const { return static_cast<uint64_t>(rows * cols * dtype_size(dtype)); }
};

at::Tensor tensor_from_bytes(const uint8_t* bytes, DType dtype, const std::vector<int64_t>& shape) {
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(storage_scalar_type(dtype)));
  std::memcpy(t.data_ptr(), bytes, t.nbytes());  // copies: mapped bytes may be unaligned
  return t;
}

class Verifier {
 public:
  Verifier(const VerifyArgs& args)
      : args_(args),
        config_(read_model_config(args.source)),
        qconfig_(read_folder_config(args.quantized, "quantized folder")),
        format_(format_of_config(qconfig_, args.quantized + "/config.json")),
        tolerance_(args.tolerance > 0 ? args.tolerance : default_tolerance(format_)),
        src_(io::CheckpointFolder::open(args.source)),
        q_(io::CheckpointFolder::open(args.quantized)) {
    q_.validate_all();  // a corrupt shard fails here, named, before any comparison
  }

  void run() {
    check_config();
    engine_ = check_folder_engine_view(args_.quantized);
    for (const std::string& p : engine_.problems) problem("engine view: ", p);
    // Every tensor the config implies, in the source and in the export.
    for (const std::string& p : checkpoint_problems(src_, config_, ConfigOf::kSource))
      problem("source: ", p);
    for (const std::string& p : checkpoint_problems(q_, config_, ConfigOf::kExport))
      problem("quantized folder: ", p);
    for (int layer : config_.moe_layers) check_layer(layer);
    check_dense_linears();
    check_kv_scales();
    check_passthrough();
    for (const std::string& name : q_.names())
      if (!accounted_.count(name))
        problem("unexpected tensor '", name,
                "' in the quantized folder (not derived from any "
                "source tensor)");
  }

  // ---- results --------------------------------------------------------------------------

  const std::vector<std::string>& problems() const { return problems_; }

  void print_report() const {
    const size_t shown = std::min<size_t>(20, weights_.size());
    std::printf(
        "source %s (%s, %zu MoE layers x %d experts)\nquantized %s (format %s, tolerance "
        "%g on relative RMS error)\n",
        args_.source.c_str(), config_.model_type.c_str(), config_.moe_layers.size(),
        config_.num_experts, args_.quantized.c_str(), format_name(format_), tolerance_);
    if (shown > 0) {
      std::printf("\nworst quantized weights (%zu of %zu):\n", shown, weights_.size());
      std::vector<std::vector<std::string>> rows = {
          {"tensor", "format", "shape", "max_abs_err", "rel_rms", "status"}};
      const std::vector<const WeightCheck*> worst_first = worst();
      for (size_t i = 0; i < shown; ++i) {
        const WeightCheck& w = *worst_first[i];
        rows.push_back({w.name, format_name(w.format), shape_string(w.shape), num(w.max_abs),
                        num(w.rel_rms), w.ok ? "ok" : "FAIL"});
      }
      print_columns(rows);
      std::printf("\nper projection:\n");
      rows = {{"projection", "tensors", "rel_rms_mean", "rel_rms_max", "max_abs_err", "failed"}};
      for (const auto& [proj, s] : per_projection())
        rows.push_back({proj, std::to_string(s.count), num(s.rel_sum / s.count), num(s.rel_max),
                        num(s.abs_max), std::to_string(s.failed)});
      print_columns(rows);
    }
    std::printf("\npassthrough tensors: %zu checked, %zu byte-identical\n", passthrough_checked_,
                passthrough_identical_);
    if (excluded_ > 0)
      std::printf("expert weights stored unquantized (excluded): %zu, byte-identical %zu\n",
                  excluded_, excluded_identical_);
    if (gate_up_checked_ > 0)
      std::printf("gate/up scalar scales (%s): equal in %zu of %zu experts\n",
                  join(format_descriptor(format_).gate_up_shared_scalars).c_str(), gate_up_equal_,
                  gate_up_checked_);
    print_engine_view();
  }

  // How vLLM / SGLang / TensorRT-LLM / transformers will treat each linear module.
  void print_engine_view() const {
    size_t quantized = 0, consistent = 0;
    for (const ModuleStatus& m : engine_.modules) {
      quantized += m.engine_quantized;
      consistent += m.engine_quantized == m.stored_quantized;
    }
    std::printf(
        "engine view (%s%s%s, static activations %s): %zu linear modules, %zu read as quantized, "
        "%zu read as stored\n",
        engine_.view.method.empty() ? "unquantized" : engine_.view.method.c_str(),
        engine_.view.algo.empty() ? "" : " ", engine_.view.algo.c_str(),
        engine_.view.static_activations ? "yes" : "no", engine_.modules.size(), quantized,
        consistent);
  }

  nlohmann::ordered_json to_json() const {
    nlohmann::ordered_json weights = nlohmann::ordered_json::array();
    for (const WeightCheck* w : worst())
      weights.push_back({{"name", w->name},
                         {"projection", w->proj},
                         {"format", format_name(w->format)},
                         {"shape", w->shape},
                         {"max_abs_err", w->max_abs},
                         {"rel_rms", w->rel_rms},
                         {"ok", w->ok}});
    nlohmann::ordered_json projections = nlohmann::ordered_json::object();
    for (const auto& [proj, s] : per_projection())
      projections[proj] = {{"tensors", s.count},
                           {"rel_rms_mean", s.rel_sum / s.count},
                           {"rel_rms_max", s.rel_max},
                           {"max_abs_err", s.abs_max},
                           {"failed", s.failed}};
    return {
        {"passed", problems_.empty()},
        {"problems", problems_},
        {"source", args_.source},
        {"quantized", args_.quantized},
        {"format", format_name(format_)},
        {"tolerance", tolerance_},
        {"projections", projections},
        {"passthrough", {{"checked", passthrough_checked_}, {"identical", passthrough_identical_}}},
        {"excluded", {{"weights", excluded_}, {"identical", excluded_identical_}}},
        {"gate_up_scales", {{"checked", gate_up_checked_}, {"equal", gate_up_equal_}}},
        {"engine", engine_json()},
        {"weights", weights}};
  }

  nlohmann::ordered_json engine_json() const {
    nlohmann::ordered_json modules = nlohmann::ordered_json::array();
    for (const ModuleStatus& m : engine_.modules)
      modules.push_back({{"name", m.name},
                         {"stored_quantized", m.stored_quantized},
                         {"engine_quantized", m.engine_quantized}});
    return {{"method", engine_.view.method},
            {"algo", engine_.view.algo},
            {"static_activations", engine_.view.static_activations},
            {"modules", modules}};
  }

  std::string verdict() const {
    if (!problems_.empty()) return str_cat("verify: FAILED with ", problems_.size(), " problem(s)");
    return str_cat("verify: PASSED (", weights_.size(), " weights within tolerance ", tolerance_,
                   ", ", passthrough_identical_, " passthrough tensors identical)");
  }

 private:
  template <typename... Args>
  void problem(const Args&... parts) {
    problems_.push_back(str_cat(parts...));
  }

  static std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.4g", v);
    return buf;
  }

  static void print_columns(const std::vector<std::vector<std::string>>& rows) {
    std::vector<size_t> width(rows[0].size(), 0);
    for (const auto& r : rows)
      for (size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
    for (const auto& r : rows) {
      std::string line;
      for (size_t c = 0; c < r.size(); ++c)
        line += r[c] + (c + 1 < r.size() ? std::string(width[c] - r[c].size() + 2, ' ') : "");
      std::printf("%s\n", line.c_str());
    }
  }

  // Failed weights first, then by relative error, largest first.
  std::vector<const WeightCheck*> worst() const {
    std::vector<const WeightCheck*> out;
    for (const WeightCheck& w : weights_) out.push_back(&w);
    std::stable_sort(out.begin(), out.end(), [](const WeightCheck* a, const WeightCheck* b) {
      return a->ok != b->ok ? !a->ok : a->rel_rms > b->rel_rms;
    });
    return out;
  }

  struct ProjStats {
    size_t count = 0, failed = 0;
    double rel_sum = 0, rel_max = 0, abs_max = 0;
  };

  std::map<std::string, ProjStats> per_projection() const {
    std::map<std::string, ProjStats> out;
    for (const WeightCheck& w : weights_) {
      // Excluded experts (stored unquantized) are reported on their own line.
      if (w.format == QuantFormat::kNone && format_ != QuantFormat::kNone) continue;
      ProjStats& s = out[w.proj];
      ++s.count;
      s.failed += w.ok ? 0 : 1;
      s.rel_sum += w.rel_rms;
      s.rel_max = std::max(s.rel_max, w.rel_rms);
      s.abs_max = std::max(s.abs_max, w.max_abs);
    }
    return out;
  }

  // ---- checks ---------------------------------------------------------------------------

  // The exporter adds quantization_config and must change nothing else in config.json.
  void check_config() {
    nlohmann::json expected = config_.raw, got = qconfig_;
    expected.erase("quantization_config");
    got.erase("quantization_config");
    for (const auto& item : expected.items())
      if (!got.contains(item.key()) || got[item.key()] != item.value())
        problem("config.json: key '", item.key(), "' differs from the source's");
    for (const auto& item : got.items())
      if (!expected.contains(item.key()))
        problem("config.json: key '", item.key(), "' is not in the source's");
  }

  void check_layer(int layer) {
    const bool fused = ExpertStorage(config_, src_).kind(layer) != ExpertStorage::Kind::kPerExpert;
    if (fused)
      for (const std::string& name :
           {config_.fused_gate_up_name(layer), config_.fused_down_name(layer)})
        for (const char* suffix : {"", "_blocks", "_scales"})
          if (src_.has(name + suffix)) expert_sources_.insert(name + suffix);
    for (int e = 0; e < config_.num_experts; ++e) {
      std::map<ExpertProj, std::string> bases;
      for (ExpertProj p : {ExpertProj::kGate, ExpertProj::kUp, ExpertProj::kDown}) {
        SourceWeight w;
        if (!source_weight(layer, e, p, fused, w)) continue;
        const std::string base = config_.expert_module_name(layer, e, p);
        check_weight(base, projection_label(p), w);
        bases[p] = base;
      }
      if (bases.count(ExpertProj::kGate) && bases.count(ExpertProj::kUp))
        check_gate_up_scales(layer, e, bases[ExpertProj::kGate], bases[ExpertProj::kUp]);
    }
  }

  // The dense linears an all-linear export stored quantized, against their source weights
  // (the others are passthrough tensors, checked byte for byte).
  void check_dense_linears() {
    for (const DenseLinear& l : dense_linears(config_, decoder_config(config_))) {
      if (stored_format(l.module) == QuantFormat::kNone || !src_.has(l.weight)) continue;
      expert_sources_.insert(l.weight);
      if (is_fp8_block_weight(src_, l.weight))
        expert_sources_.insert(fp8_block_scale_name(l.weight));
      SourceWeight w;
      w.label = l.weight;
      w.rows = l.shape[0];
      w.cols = l.shape[1];
      try {
        w.data = checkpoint_tensor(src_, l.weight, l.shape).contiguous();
      } catch (const std::exception& e) {
        problem(e.what());
        continue;
      }
      w.dtype = checkpoint_dtype(w.data);
      check_weight(l.module, use_name(l.use), w);
    }
  }

  // An FP8 KV cache's k_scale / v_scale (their values are checked with the engine view).
  void check_kv_scales() {
    if (!engine_.view.kv_cache_fp8) return;
    if (decoder_config(config_).attention != AttentionKind::kGqa) {
      problem(
          "config.json declares an FP8 KV cache, which moequant writes for grouped-query "
          "attention only");
      return;
    }
    for (int layer = 0; layer < config_.num_layers; ++layer)
      for (const bool keys : {true, false}) {
        const std::string name = kv_scale_name(config_, layer, keys);
        accounted_.insert(name);
        if (!q_.has(name)) problem("KV-cache scale '", name, "' is missing");
      }
  }

  // "gate_proj", or "w1 (gate)" where the checkpoint's names do not say the kind.
  std::string projection_label(ExpertProj p) const {
    const char* kind = p == ExpertProj::kGate ? "gate" : p == ExpertProj::kUp ? "up" : "down";
    const std::string name = config_.proj_name(p);
    return name.rfind(kind, 0) == 0 ? name : name + " (" + kind + ")";
  }

  // Finds the source bytes of one expert projection; false (with a problem) when absent.
  bool source_weight(int layer, int e, ExpertProj p, bool fused, SourceWeight& w) {
    const int64_t I = config_.intermediate, H = config_.hidden;
    const bool down = p == ExpertProj::kDown;
    w.rows = down ? H : I;
    w.cols = down ? I : H;
    if (!fused) {
      const std::string name = config_.expert_weight_name(layer, e, p);
      expert_sources_.insert(name);
      if (!src_.has(name)) {
        problem("source tensor '", name, "' is missing (config.json implies it)");
        return false;
      }
      const io::TensorInfo& info = src_.info(name);
      if (info.shape != std::vector<int64_t>{w.rows, w.cols}) {
        problem("source tensor '", name, "' has shape ", shape_string(info.shape), ", expected ",
                shape_string(std::vector<int64_t>{w.rows, w.cols}));
        return false;
      }
      w.label = name;
      if (is_fp8_block_weight(src_, name)) expert_sources_.insert(fp8_block_scale_name(name));
      w.data = checkpoint_tensor(src_, name).contiguous();
      w.dtype = checkpoint_dtype(w.data);
      return true;
    }
    // Fused on disk (any family's layout, MXFP4 blocks included): the expert's matrix as the
    // exporter reads it, after the tensors are checked as the exporter checks them.
    const ExpertStorage storage(config_, src_);
    if (!storage_checked_) {
      storage_checked_ = true;
      try {
        storage.check();
      } catch (const Error& err) {
        storage_problem_ = err.what();
        problem(storage_problem_);
      }
    }
    if (!storage_problem_.empty()) return false;
    const SwiGluWeights m = storage.read(layer, e, !down, 0, I);
    w.label = storage.label(layer, e, p);
    w.data = (down ? m.down : p == ExpertProj::kUp ? m.up : m.gate).contiguous();
    w.dtype = checkpoint_dtype(w.data);
    return true;
  }

  // The format a weight was stored in, from the tensors beside it.
  QuantFormat stored_format(const std::string& base) const {
    return moequant::stored_format([&](const std::string& s) { return q_.has(base + "." + s); });
  }

  void check_weight(const std::string& base, const std::string& proj, const SourceWeight& src) {
    const QuantFormat f = stored_format(base);
    if (f == QuantFormat::kNone) {
      check_unquantized_expert(base, proj, src);
      return;
    }
    if (f != format_)
      problem("'", base, "' is stored as ", format_name(f), " but config.json declares ",
              format_name(format_));
    WeightCheck w;
    w.name = base;
    w.proj = proj;
    w.format = f;
    w.shape = {src.rows, src.cols};
    try {
      const std::vector<StoredTensor> stored = load_stored(base, f, src);
      if (stored.empty()) {  // problems already reported
        w.ok = false;
        weights_.push_back(w);
        return;
      }
      const at::Tensor deq = dequantize_weight(stored, f, src.rows, src.cols, base + ".weight");
      const at::Tensor ref = src.data.to(at::kDouble);
      const at::Tensor diff = deq.to(at::kDouble) - ref;
      w.max_abs = diff.abs().max().item<double>();
      const double ref_norm = ref.norm().item<double>(), diff_norm = diff.norm().item<double>();
      w.rel_rms = ref_norm > 0 ? diff_norm / ref_norm : (diff_norm > 0 ? INFINITY : 0.0);
    } catch (const std::exception& e) {
      problem("'", base, "': ", e.what());
      w.ok = false;
      weights_.push_back(w);
      return;
    }
    if (!std::isfinite(w.max_abs) || !(w.rel_rms <= tolerance_)) {
      w.ok = false;
      problem("'", base, "' relative RMS error ", num(w.rel_rms), " exceeds the tolerance ",
              tolerance_, " (max abs error ", num(w.max_abs), ")");
    }
    weights_.push_back(w);
  }

  // Reads the tensors `f` stores for `base`, checking each one's dtype, shape and scales;
  // empty when something is wrong (reported).
  std::vector<StoredTensor> load_stored(const std::string& base, QuantFormat f,
                                        const SourceWeight& src) {
    const bool input_scale = q_.has(base + ".input_scale");
    const std::vector<StoredTensorSpec> specs =
        planned_outputs(f, src.rows, src.cols, src.dtype, input_scale, base + ".weight");
    std::vector<StoredTensor> stored;
    bool complete = true;
    for (const StoredTensorSpec& s : specs) {
      const std::string name = base + "." + s.suffix;
      accounted_.insert(name);
      if (!q_.has(name)) {
        problem("tensor '", name, "' is missing from the quantized folder");
        complete = false;
        continue;
      }
      const io::TensorInfo& info = q_.info(name);
      if (info.dtype != s.dtype || info.shape != s.shape) {
        problem("tensor '", name, "' is ", dtype_name(info.dtype), " ", shape_string(info.shape),
                ", expected ", dtype_name(s.dtype), " ", shape_string(s.shape));
        complete = false;
        continue;
      }
      const uint8_t* bytes = q_.data(name);
      if (is_scale_suffix(s.suffix)) {
        const ScaleRange r = scale_range(bytes, info.dtype, info.numel());
        if (!r.valid) {
          problem(
              "scale '", name, "' element ", r.first_bad, " is ",
              element_as_float(bytes, info.dtype, r.first_bad),
              ": zero, negative or non-finite (serving engines would produce NaN or wrong values)");
          complete = false;
        }
      }
      if (s.suffix == "qzeros" || s.suffix == "g_idx")
        complete &= check_int4_layout(name, s.suffix, bytes, info);
      stored.push_back({s.suffix, s.dtype, s.shape, tensor_from_bytes(bytes, s.dtype, s.shape)});
    }
    if (!complete) stored.clear();
    return stored;
  }

  // GPTQ v1 symmetric: every qzeros nibble 7, g_idx[i] = i / 128 (docs/formats.md).
  bool check_int4_layout(const std::string& name, const std::string& suffix, const uint8_t* bytes,
                         const io::TensorInfo& info) {
    for (int64_t i = 0; i < info.numel(); ++i) {
      int32_t v;
      std::memcpy(&v, bytes + 4 * i, 4);
      const int32_t expect = suffix == "qzeros" ? 0x77777777 : static_cast<int32_t>(i / 128);
      if (v != expect) {
        problem("tensor '", name, "' element ", i, " is ", v, ", expected ", expect);
        return false;
      }
    }
    return true;
  }

  // An expert weight left unquantized (--exclude, or format none) is the source's bytes.
  void check_unquantized_expert(const std::string& base, const std::string& proj,
                                const SourceWeight& src) {
    const std::string name = base + ".weight";
    accounted_.insert(name);
    if (!q_.has(name)) {
      problem("expert weight '", name,
              "' (or its quantized tensors) is missing from the quantized "
              "folder");
      return;
    }
    if (format_ != QuantFormat::kNone) ++excluded_;
    WeightCheck w;
    w.name = base;
    w.proj = proj;
    w.format = QuantFormat::kNone;
    w.shape = {src.rows, src.cols};
    const io::TensorInfo& info = q_.info(name);
    const bool same = info.dtype == src.dtype && info.shape == w.shape &&
                      std::memcmp(q_.data(name), src.bytes(), src.nbytes()) == 0;
    if (same) {
      if (format_ != QuantFormat::kNone) ++excluded_identical_;
    } else {
      w.ok = false;
      problem("unquantized expert weight '", name, "' differs from the source ", src.label, " (",
              dtype_name(info.dtype), " ", shape_string(info.shape), " vs ", dtype_name(src.dtype),
              " ", shape_string(w.shape), ")");
    }
    weights_.push_back(w);
  }

  // Serving engines fuse gate and up and keep one scalar scale: they must be equal.
  void check_gate_up_scales(int layer, int e, const std::string& gate, const std::string& up) {
    const QuantFormat f = stored_format(gate);
    if (f != stored_format(up)) {  // e.g. an --exclude pattern that matched only one of them
      problem("layer ", layer, " expert ", e, ": gate and up are stored in different formats (",
              format_name(f), " vs ", format_name(stored_format(up)),
              "); serving engines load them as one fused weight");
      return;
    }
    const std::vector<std::string>& suffixes = format_descriptor(f).gate_up_shared_scalars;
    if (suffixes.empty()) return;
    ++gate_up_checked_;
    bool equal = true;
    for (const std::string& suffix : suffixes) {
      const std::string g = gate + "." + suffix, u = up + "." + suffix;
      if (!q_.has(g) && !q_.has(u)) continue;
      if (!q_.has(g) || !q_.has(u) || q_.info(g).nbytes() != q_.info(u).nbytes() ||
          std::memcmp(q_.data(g), q_.data(u), q_.info(g).nbytes()) != 0) {
        equal = false;
        problem("layer ", layer, " expert ", e, ": gate and up have different ", suffix, " ('", g,
                "' vs '", u, "'); serving engines keep only one");
      }
    }
    gate_up_equal_ += equal ? 1 : 0;
  }

  void check_passthrough() {
    for (const std::string& name : src_.names()) {
      if (expert_sources_.count(name)) continue;
      // An FP8 block source's weight is written as the bf16 it encodes, its scales not at all.
      const std::string scale_suffix = "_scale_inv";
      if (ends_with(name, scale_suffix) &&
          is_fp8_block_weight(src_, name.substr(0, name.size() - scale_suffix.size())))
        continue;
      ++passthrough_checked_;
      accounted_.insert(name);
      if (!q_.has(name)) {
        problem("tensor '", name, "' is missing from the quantized folder");
        continue;
      }
      const bool fp8 = is_fp8_block_weight(src_, name);
      const at::Tensor dequantized = fp8 ? checkpoint_tensor(src_, name) : at::Tensor();
      const io::TensorInfo &s = src_.info(name), &q = q_.info(name);
      const DType expected = fp8 ? DType::kBF16 : s.dtype;
      if (expected != q.dtype || s.shape != q.shape) {
        problem("passthrough tensor '", name, "' is ", dtype_name(q.dtype), " ",
                shape_string(q.shape), ", expected ", dtype_name(expected), " ",
                shape_string(s.shape), fp8 ? " (the bf16 of the source's FP8 blocks)" : "");
        continue;
      }
      const uint8_t* a =
          fp8 ? static_cast<const uint8_t*>(dequantized.data_ptr()) : src_.data(name);
      const uint8_t* b = q_.data(name);
      const uint64_t n = q.nbytes();
      if (std::memcmp(a, b, n) != 0) {
        uint64_t first = 0;
        while (a[first] == b[first]) ++first;
        problem("passthrough tensor '", name, "' differs from the source (first at byte ", first,
                " of ", n, ")");
        continue;
      }
      ++passthrough_identical_;
    }
  }

  const VerifyArgs& args_;
  ModelConfig config_;
  nlohmann::json qconfig_;
  QuantFormat format_;
  double tolerance_;
  io::CheckpointFolder src_, q_;
  std::set<std::string> expert_sources_;  // source tensors consumed as expert weights
  bool storage_checked_ = false;  // the fused expert tensors checked once (ExpertStorage::check)
  std::string storage_problem_;
  std::set<std::string> accounted_;  // quantized-folder tensors explained by the source
  std::vector<WeightCheck> weights_;
  std::vector<std::string> problems_;
  size_t passthrough_checked_ = 0, passthrough_identical_ = 0;
  size_t excluded_ = 0, excluded_identical_ = 0;
  size_t gate_up_checked_ = 0, gate_up_equal_ = 0;
  FolderEngineCheck engine_;
};

}  // namespace

int run_verify(const VerifyArgs& a) {
  // NaN would fail every weight, inf pass every one: neither is a tolerance.
  MQ_CHECK(std::isfinite(a.tolerance) && a.tolerance >= 0, "--tolerance ", a.tolerance,
           " is not a finite non-negative number");
  Verifier v(a);
  v.run();
  if (a.json) {
    std::printf("%s\n", v.to_json().dump(2).c_str());
  } else if (!a.quiet) {
    v.print_report();
    std::printf("\n");
  }
  std::fflush(stdout);  // the report first, then the problems, then the verdict
  const auto& problems = v.problems();
  const size_t limit = 50;
  for (size_t i = 0; i < problems.size() && i < limit; ++i)
    std::fprintf(stderr, "moequant: verify: %s\n", problems[i].c_str());
  if (problems.size() > limit)
    std::fprintf(stderr, "moequant: verify: ... and %zu more problem(s)\n",
                 problems.size() - limit);
  if (!a.json) std::printf("%s\n", v.verdict().c_str());
  return problems.empty() ? 0 : 1;
}

}  // namespace moequant::tool
