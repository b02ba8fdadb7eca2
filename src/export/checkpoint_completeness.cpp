#include "moequant/export/checkpoint_completeness.h"

#include "moequant/common/error.h"
#include "moequant/common/strings.h"
#include "moequant/core/format.h"
#include "moequant/model/model_tensors.h"

namespace moequant {

namespace {

bool float_dtype(DType t) {
  return t == DType::kBF16 || t == DType::kF16 || t == DType::kF32;
}

class Checker {
 public:
  Checker(const io::CheckpointFolder& f, const ModelConfig& c, ConfigOf of)
      : f_(f), c_(c), of_(of) {}

  void tensor(const ModelTensor& t) {
    // An export may store a linear quantized: its codes and scales instead of the weight, each
    // of the shape its format gives.
    const std::string base = t.name.substr(0, t.name.rfind('.'));
    const QuantFormat stored =
        stored_format([&](const std::string& s) { return f_.has(base + "." + s); });
    if (of_ == ConfigOf::kExport && t.linear && stored != QuantFormat::kNone) {
      for (const StoredTensorSpec& s :
           format_descriptor(stored).stored_tensors(t.shape[0], t.shape[1], DType::kBF16, t.name)) {
        const std::string name = base + "." + s.suffix;
        if (!f_.has(name))
          problem("tensor '", name, "' is missing: '", base, "' is stored as ",
                  format_name(stored));
        else if (f_.info(name).shape != s.shape)
          problem("tensor '", name, "' has shape ", shape_string(f_.info(name).shape), ", ",
                  format_name(stored), " stores ", shape_string(s.shape), " for the ",
                  shape_string(t.shape), " weight config.json implies");
      }
      return;
    }
    if (!f_.has(t.name)) {
      problem("tensor '", t.name, "' (", use_name(t.use), ") is missing; config.json implies it",
              t.use == TensorUse::kLmHead ? " (tie_word_embeddings is false)" : "");
      return;
    }
    const io::TensorInfo& info = f_.info(t.name);
    if (info.shape != t.shape) {
      problem("tensor '", t.name, "' has shape ", shape_string(info.shape),
              ", config.json implies ", shape_string(t.shape));
      return;
    }
    if (!float_dtype(info.dtype) && !(info.dtype == DType::kF8E4M3 && t.linear))
      problem("tensor '", t.name, "' is ", dtype_name(info.dtype), ", expected BF16, F16 or F32");
  }

  // Every F8_E4M3 tensor: an FP8 block source's weight, with its scales of the block shape.
  void fp8_weights() {
    for (const std::string& name : f_.names()) {
      const io::TensorInfo& info = f_.info(name);
      if (info.dtype != DType::kF8E4M3 || of_ == ConfigOf::kExport) continue;
      if (c_.source.format != SourceFormat::kFp8Block) {
        problem("tensor '", name,
                "' is F8_E4M3 but config.json declares no fp8 quantization_config");
        continue;
      }
      const std::string scales = fp8_block_scale_name(name);
      if (info.shape.size() != 2) {
        problem("tensor '", name, "' is F8_E4M3 of shape ", shape_string(info.shape),
                ": an fp8 block weight is 2-D");
      } else if (!f_.has(scales)) {
        problem("tensor '", name, "' is F8_E4M3 but '", scales, "', its block scales, is missing");
      } else {
        const std::vector<int64_t> tiles = {ceil_div(info.shape[0], c_.source.block_rows),
                                            ceil_div(info.shape[1], c_.source.block_cols)};
        const io::TensorInfo& s = f_.info(scales);
        if (s.dtype != DType::kF32 || s.shape != tiles)
          problem("block scales '", scales, "' are ", dtype_name(s.dtype), " ",
                  shape_string(s.shape), ", expected F32 ", shape_string(tiles), " for the ",
                  shape_string(info.shape), " weight");
      }
    }
  }

  std::vector<std::string> take() { return std::move(problems_); }

  template <typename... Args>
  void problem(const Args&... parts) {
    problems_.push_back(str_cat(f_.dir(), ": ", parts...));
  }

 private:
  const io::CheckpointFolder& f_;
  const ModelConfig& c_;
  ConfigOf of_;
  std::vector<std::string> problems_;
};

}  // namespace

std::vector<std::string> checkpoint_problems(const io::CheckpointFolder& folder,
                                             const ModelConfig& config, ConfigOf of) {
  Checker check(folder, config, of);
  DecoderConfig d;
  try {
    d = decoder_config(config);
  } catch (const Error& e) {
    check.problem(e.what());
    return check.take();
  }
  for (int l = 0; l < config.num_layers; ++l) {
    const TensorSet layer = layer_tensors(config, d, l);
    for (const ModelTensor& t : layer.all()) check.tensor(t);
  }
  const TensorSet ends = end_tensors(config, d);
  for (const ModelTensor& t : ends.all()) check.tensor(t);
  check.fp8_weights();
  return check.take();
}

}  // namespace moequant
