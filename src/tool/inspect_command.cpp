// `moequant inspect DIR [--json]`: what an exported folder holds. One row per stored weight
// (a quantized weight grouped with its scales), its format and scales, and a summary of the
// bytes spent per parameter. Reads headers and scale tensors only, never dequantizes.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>

#include "commands.h"
#include "exported_folder.h"
#include "moequant/common/error.h"
#include "moequant/export/checkpoint_completeness.h"
#include "moequant/io/checkpoint_folder.h"
#include "moequant/model/model_config.h"

namespace moequant::tool {

CLI::App* add_inspect_command(CLI::App& app, InspectArgs& a) {
  CLI::App* c = app.add_subcommand(
      "inspect",
      "Show what an exported folder holds: per weight its shape, dtype, format and "
      "scales (implied amax), and a size summary");
  c->add_option("dir", a.dir, "Exported (or source) Hugging Face folder")->required();
  c->add_flag("--json", a.json, "Print a JSON document instead of a table");
  return c;
}

namespace {

// One stored weight: the tensors of one base name, or one plain (passthrough) tensor.
struct WeightRow {
  std::string name;  // base name (quantized) or tensor name (passthrough)
  std::vector<std::string> tensors;
  std::vector<int64_t> shape;  // logical [out, in] of a quantized weight
  std::string dtype;           // dtype of the stored weight tensor
  QuantFormat format = QuantFormat::kNone;
  uint64_t bytes = 0;
  int64_t params = 0;
  std::string scale_tensor;  // suffix of the scale reported
  std::optional<ScaleRange> scale;
  std::optional<ScaleRange> block_scale;  // nvfp4's per-block e4m3 scales
  std::optional<float> amax;              // implied by the scales
  std::optional<float> input_scale;
  bool scales_valid = true;
};

// "layers.2" before "layers.10": digit runs compare as numbers.
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) &&
        std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      const std::string na = a.substr(i, ie - i), nb = b.substr(j, je - j);
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = ie, j = je;
      continue;
    }
    if (a[i] != b[j]) return a[i] < b[j];
    ++i, ++j;
  }
  return a.size() - i < b.size() - j;
}

class FolderReader {
 public:
  explicit FolderReader(const io::CheckpointFolder& ckpt) : ckpt_(ckpt) {}

  const io::TensorInfo* find(const std::string& name) const {
    return ckpt_.has(name) ? &ckpt_.info(name) : nullptr;
  }
  ScaleRange range(const std::string& name) const {
    const io::TensorInfo& info = ckpt_.info(name);
    try {
      return scale_range(ckpt_.data(name), info.dtype, info.numel());
    } catch (const Error& e) {
      MQ_THROW(ckpt_.dir(), ": scale tensor '", name, "': ", e.what());
    }
  }

 private:
  const io::CheckpointFolder& ckpt_;
};

// Builds the row of base `base` whose tensors (by suffix) are `parts`, when they form a
// quantized weight; nullopt otherwise (each tensor is then a passthrough row).
std::optional<WeightRow> quantized_row(const std::string& base,
                                       const std::map<std::string, std::string>& parts,
                                       const FolderReader& folder) {
  auto has = [&](const std::string& s) { return parts.count(s) > 0; };
  const QuantFormat format = stored_format(has);
  if (format == QuantFormat::kNone) return std::nullopt;
  const FormatDescriptor& d = format_descriptor(format);
  std::vector<std::string> block_scales;  // the format's other scales (nvfp4's per-block ones)
  for (const StoredTensorSpec& s : d.stored_tensors(8, 128, DType::kBF16, base)) {
    if (!has(s.suffix)) return std::nullopt;  // incomplete: every tensor is a row of its own
    if (s.role == StoredRole::kScale && s.suffix != d.amax_scale) block_scales.push_back(s.suffix);
  }
  const io::TensorInfo* codes = folder.find(parts.at(d.weight_suffix()));
  if (codes->shape.size() != 2) return std::nullopt;
  WeightRow r;
  r.name = base;
  r.format = format;
  r.shape = d.weight_shape(codes->shape);
  r.dtype = dtype_name(codes->dtype);
  r.scale_tensor = d.amax_scale;
  r.scale = folder.range(parts.at(d.amax_scale));
  r.amax = r.scale->max * d.amax_per_scale;
  for (const std::string& s : block_scales) r.block_scale = folder.range(parts.at(s));
  if (has("input_scale")) {
    const ScaleRange in = folder.range(parts.at("input_scale"));
    r.input_scale = in.max;
    r.scales_valid = r.scales_valid && in.valid;
  }
  r.scales_valid = r.scales_valid && r.scale->valid && (!r.block_scale || r.block_scale->valid);
  r.params = 1;
  for (int64_t d : r.shape) r.params *= d;
  for (const auto& p : parts) {
    r.tensors.push_back(p.second);
    r.bytes += folder.find(p.second)->nbytes();
  }
  return r;
}

struct Inspection {
  std::string dir;
  QuantFormat format = QuantFormat::kNone;
  nlohmann::ordered_json quantization_config;
  size_t files = 0, tensors = 0;
  uint64_t bytes = 0;
  std::vector<WeightRow> rows;
  std::vector<std::string> warnings;
  FolderEngineCheck engine;             // how serving engines read it, module by module
  std::vector<std::string> incomplete;  // tensors its config implies that it lacks
};

Inspection inspect_folder(const std::string& dir) {
  Inspection in;
  in.dir = dir;
  const nlohmann::json config = read_folder_config(dir, "folder");
  in.format = format_of_config(config, dir + "/config.json");
  if (config.contains("quantization_config"))  // kept in the file's key order
    in.quantization_config = nlohmann::ordered_json::parse(config["quantization_config"].dump());
  const io::CheckpointFolder ckpt = io::CheckpointFolder::open(dir);
  ckpt.validate_all();  // every shard's header, so a corrupt file fails here, named
  const FolderReader folder(ckpt);
  in.files = ckpt.files().size();

  std::map<std::string, std::map<std::string, std::string>> groups;  // base -> suffix -> name
  for (const std::string& name : ckpt.names()) {
    ++in.tensors;
    in.bytes += ckpt.info(name).nbytes();
    const auto [base, suffix] = split_stored_name(name);
    groups[base][suffix.empty() ? "" : suffix] = name;
  }
  for (const auto& [base, parts] : groups) {
    if (auto row = quantized_row(base, parts, folder)) {
      in.rows.push_back(std::move(*row));
      continue;
    }
    for (const auto& p : parts) {
      const io::TensorInfo& info = ckpt.info(p.second);
      WeightRow r;
      r.name = p.second;
      r.tensors = {p.second};
      r.shape = info.shape;
      r.dtype = dtype_name(info.dtype);
      r.bytes = info.nbytes();
      in.rows.push_back(std::move(r));
    }
  }
  std::sort(in.rows.begin(), in.rows.end(),
            [](const WeightRow& a, const WeightRow& b) { return natural_less(a.name, b.name); });

  size_t quantized = 0;
  for (const WeightRow& r : in.rows) {
    if (r.format == QuantFormat::kNone) continue;
    ++quantized;
    if (r.format != in.format)
      in.warnings.push_back(str_cat("'", r.name, "' is stored as ", format_name(r.format),
                                    " but config.json declares ", format_name(in.format)));
    if (!r.scales_valid)
      in.warnings.push_back(str_cat("'", r.name, "' has a zero, negative or non-finite scale (",
                                    r.scale_tensor,
                                    " or input_scale): serving engines would produce NaN"));
  }
  if (in.format != QuantFormat::kNone && quantized == 0)
    in.warnings.push_back(str_cat("config.json declares ", format_name(in.format),
                                  " but no quantized weight was found"));
  in.engine = check_folder_engine_view(dir);
  for (const std::string& p : in.engine.problems) in.warnings.push_back("engine view: " + p);
  // Every tensor its config implies (a folder of a family moequant does not read is not checked).
  std::optional<ModelConfig> model;
  try {
    model = parse_model_config(config, dir, dir + "/config.json", ConfigOf::kExport);
  } catch (const Error& e) {
    in.warnings.push_back(str_cat("not checked for completeness: ", e.what()));
  }
  if (model) in.incomplete = checkpoint_problems(ckpt, *model, ConfigOf::kExport);
  for (const std::string& p : in.incomplete) in.warnings.push_back("incomplete: " + p);
  return in;
}

// ---- output -------------------------------------------------------------------------------

std::string num(float v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", v);
  return buf;
}

std::string scale_text(const WeightRow& r) {
  if (!r.scale) return "-";
  if (r.scale->min == r.scale->max) return num(r.scale->max);
  return num(r.scale->min) + " .. " + num(r.scale->max);
}

std::string bytes_text(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) b /= 1000, ++u;
  char buf[32];
  std::snprintf(buf, sizeof(buf), u ? "%.2f %s" : "%.0f %s", b, units[u]);
  return buf;
}

struct Totals {
  std::map<std::string, size_t> per_format;  // weights per format name
  size_t quantized = 0, passthrough = 0;
  int64_t quantized_params = 0;
  uint64_t quantized_bytes = 0;
  double bits_per_param() const {
    return quantized_params ? 8.0 * quantized_bytes / quantized_params : 0.0;
  }
};

Totals totals_of(const Inspection& in) {
  Totals t;
  for (const WeightRow& r : in.rows) {
    ++t.per_format[format_name(r.format)];
    if (r.format == QuantFormat::kNone) {
      ++t.passthrough;
    } else {
      ++t.quantized;
      t.quantized_params += r.params;
      t.quantized_bytes += r.bytes;
    }
  }
  return t;
}

void print_table(const Inspection& in) {
  bool any_input = false;
  for (const WeightRow& r : in.rows) any_input = any_input || r.input_scale.has_value();
  const std::vector<std::string> header = {"tensor", "shape", "dtype",      "format",
                                           "scale",  "amax",  "input_scale"};
  std::vector<std::vector<std::string>> cells;
  for (const WeightRow& r : in.rows) {
    const bool q = r.format != QuantFormat::kNone;
    std::string scale = scale_text(r);
    if (q) scale = r.scale_tensor + " " + scale + (r.scales_valid ? "" : "  (INVALID)");
    // The shape is the logical [out, in]; say how packed dtypes hold it.
    const std::string dtype = r.dtype + (r.format == QuantFormat::kNVFP4  ? " (2 x e2m1)"
                                         : r.format == QuantFormat::kINT4 ? " (8 x int4)"
                                                                          : "");
    cells.push_back({r.name, shape_string(r.shape), dtype, format_name(r.format), scale,
                     r.amax ? num(*r.amax) : "-", r.input_scale ? num(*r.input_scale) : "-"});
  }
  const size_t columns = any_input ? header.size() : header.size() - 1;
  std::vector<size_t> width(columns);
  for (size_t c = 0; c < columns; ++c) {
    width[c] = header[c].size();
    for (const auto& row : cells) width[c] = std::max(width[c], row[c].size());
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t c = 0; c < columns; ++c) {
      line += row[c];
      if (c + 1 < columns) line += std::string(width[c] - row[c].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  };
  print_row(header);
  for (const auto& row : cells) print_row(row);
}

void print_summary(const Inspection& in, const Totals& t) {
  std::printf("\nfolder %s: format %s, %zu tensors in %zu file(s), %s\n", in.dir.c_str(),
              format_name(in.format), in.tensors, in.files,
              bytes_text(static_cast<double>(in.bytes)).c_str());
  std::string per_format;
  for (const auto& [name, n] : t.per_format)
    per_format += (per_format.empty() ? "" : ", ") + std::to_string(n) + " " + name;
  std::printf("weights: %zu quantized, %zu passthrough (%s)\n", t.quantized, t.passthrough,
              per_format.c_str());
  if (t.quantized)
    std::printf(
        "quantized weights: %.4g M parameters in %s = %.3f bits per parameter (scales "
        "included)\n",
        t.quantized_params / 1e6, bytes_text(static_cast<double>(t.quantized_bytes)).c_str(),
        t.bits_per_param());
  size_t engine_quantized = 0, as_stored = 0;
  for (const ModuleStatus& m : in.engine.modules) {
    engine_quantized += m.engine_quantized;
    as_stored += m.engine_quantized == m.stored_quantized;
  }
  std::printf(
      "engine view (vLLM / SGLang / TensorRT-LLM / transformers rules): %s%s%s, static "
      "activations %s; %zu linear modules, %zu read as quantized, %zu of %zu read as stored\n",
      in.engine.view.method.empty() ? "not quantized" : in.engine.view.method.c_str(),
      in.engine.view.algo.empty() ? "" : " ", in.engine.view.algo.c_str(),
      in.engine.view.static_activations ? "yes" : "no", in.engine.modules.size(), engine_quantized,
      as_stored, in.engine.modules.size());
  for (const std::string& w : in.warnings) std::printf("warning: %s\n", w.c_str());
}

nlohmann::ordered_json range_json(const ScaleRange& r) {
  return {{"min", r.min}, {"max", r.max}, {"valid", r.valid}};
}

nlohmann::ordered_json to_json(const Inspection& in, const Totals& t) {
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const WeightRow& r : in.rows) {
    nlohmann::ordered_json j = {{"name", r.name},
                                {"tensors", r.tensors},
                                {"shape", r.shape},
                                {"dtype", r.dtype},
                                {"format", format_name(r.format)},
                                {"bytes", r.bytes}};
    if (r.format != QuantFormat::kNone) {
      j["params"] = r.params;
      j["scale"] = range_json(*r.scale);
      j["scale"]["tensor"] = r.scale_tensor;
      j["amax"] = *r.amax;
      j["scales_valid"] = r.scales_valid;
      if (r.block_scale) j["block_scale"] = range_json(*r.block_scale);
      if (r.input_scale) j["input_scale"] = *r.input_scale;
    }
    rows.push_back(std::move(j));
  }
  nlohmann::ordered_json summary = {{"tensors", in.tensors},
                                    {"files", in.files},
                                    {"bytes", in.bytes},
                                    {"weights_quantized", t.quantized},
                                    {"weights_passthrough", t.passthrough},
                                    {"weights_per_format", t.per_format},
                                    {"quantized_params", t.quantized_params},
                                    {"quantized_bytes", t.quantized_bytes},
                                    {"bits_per_param", t.bits_per_param()}};
  nlohmann::ordered_json modules = nlohmann::ordered_json::array();
  for (const ModuleStatus& m : in.engine.modules)
    modules.push_back({{"name", m.name},
                       {"stored_quantized", m.stored_quantized},
                       {"engine_quantized", m.engine_quantized}});
  return {{"folder", in.dir},
          {"format", format_name(in.format)},
          {"engine",
           {{"method", in.engine.view.method},
            {"algo", in.engine.view.algo},
            {"static_activations", in.engine.view.static_activations},
            {"modules", modules}}},
          {"quantization_config", in.quantization_config},
          {"summary", summary},
          {"warnings", in.warnings},
          {"weights", rows}};
}

}  // namespace

int run_inspect(const InspectArgs& a) {
  const Inspection in = inspect_folder(a.dir);
  const Totals t = totals_of(in);
  if (a.json) {
    std::printf("%s\n", to_json(in, t).dump(2).c_str());
  } else {
    print_table(in);
    print_summary(in, t);
  }
  // A folder engines would misread, or that lacks a tensor, fails, as verify does.
  return in.engine.problems.empty() && in.incomplete.empty() ? 0 : 1;
}

}  // namespace moequant::tool
