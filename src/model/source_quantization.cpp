#include "moequant/model/source_quantization.h"

#include "moequant/common/error.h"

namespace moequant {

std::string SourceQuantization::describe() const {
  switch (format) {
    case SourceFormat::kPlain:
      return "plain weights (no quantization_config)";
    case SourceFormat::kFp8Block:
      return "fp8 " + std::to_string(block_rows) + "x" + std::to_string(block_cols) +
             " blocks (read as bf16: weight x weight_scale_inv)";
    case SourceFormat::kMxfp4:
      return "mxfp4 experts (read as bf16: e2m1 x 2^(scale - 127))";
  }
  return "";
}

SourceQuantization source_quantization(const nlohmann::json& config, const std::string& file) {
  SourceQuantization s;
  if (!config.contains("quantization_config") || config["quantization_config"].is_null()) return s;
  const nlohmann::json& q = config["quantization_config"];
  MQ_CHECK(q.is_object() && q.contains("quant_method") && q["quant_method"].is_string(), file,
           ": quantization_config has no string 'quant_method'");
  const std::string method = q["quant_method"].get<std::string>();
  if (method == "fp8") {
    MQ_CHECK(q.contains("weight_block_size"), file,
             ": an fp8 source without weight_block_size (per-tensor fp8) is not read: only "
             "DeepSeek's 128x128 block scales are (docs/formats.md, \"Quantized sources\")");
    const nlohmann::json& b = q["weight_block_size"];
    MQ_CHECK(b.is_array() && b.size() == 2 && b[0] == 128 && b[1] == 128, file,
             ": fp8 weight_block_size ", b.dump(), " is not read (only [128, 128])");
    if (q.contains("fmt") && !q["fmt"].is_null())
      MQ_CHECK(q["fmt"] == "e4m3", file, ": fp8 fmt ", q["fmt"].dump(), " is not read (only e4m3)");
    s.format = SourceFormat::kFp8Block;
    s.block_rows = s.block_cols = 128;
    return s;
  }
  if (method == "mxfp4") {  // GPT-OSS: transformers' Mxfp4Config
    s.format = SourceFormat::kMxfp4;
    if (q.contains("modules_to_not_convert") && !q["modules_to_not_convert"].is_null()) {
      const nlohmann::json& m = q["modules_to_not_convert"];
      MQ_CHECK(m.is_array(), file, ": mxfp4 modules_to_not_convert must be a list of names");
      for (const nlohmann::json& name : m) {
        MQ_CHECK(name.is_string(), file, ": mxfp4 modules_to_not_convert holds ", name.dump(),
                 ", expected a module name");
        s.not_converted.push_back(name.get<std::string>());
      }
    }
    return s;
  }
  MQ_THROW(file, ": the source is already quantized (quantization_config quant_method '", method,
           "'); moequant reads plain checkpoints, DeepSeek-style fp8 block sources and GPT-OSS's "
           "mxfp4 experts only");
}

std::string fp8_block_scale_name(const std::string& weight_name) {
  return weight_name + "_scale_inv";
}

}  // namespace moequant
