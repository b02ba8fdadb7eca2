#include "moequant/forward/expert_storage.h"

#include <ATen/ATen.h>

#include "moequant/common/error.h"
#include "moequant/common/strings.h"
#include "moequant/core/mxfp4_source.h"
#include "moequant/core/tensor_bridge.h"
#include "moequant/forward/checkpoint_tensor.h"
#include "moequant/kernels/numerics.h"

namespace moequant {

namespace {

const char* proj_part(ExpertProj p) {
  return p == ExpertProj::kGate ? ", gate rows" : p == ExpertProj::kUp ? ", up rows" : "";
}

}  // namespace

ExpertStorage::ExpertStorage(const ModelConfig& config, const io::CheckpointFolder& ckpt)
    : c_(config), ckpt_(ckpt) {}

ExpertStorage::Kind ExpertStorage::kind(int layer) const {
  if (ckpt_.has(c_.fused_gate_up_name(layer))) return Kind::kFused;
  if (ckpt_.has(c_.fused_gate_up_name(layer) + "_blocks")) return Kind::kFusedMxfp4;
  return Kind::kPerExpert;
}

DType ExpertStorage::check() const {
  const int64_t E = c_.num_experts, I = c_.intermediate, H = c_.hidden;
  const bool fp8_source = c_.source.format == SourceFormat::kFp8Block;
  const FusedExpertLayout layout = c_.family->fused_layout();
  DType expert_dtype = DType::kBF16;
  bool dtype_set = false;
  auto agree = [&](DType dtype, const std::string& name, DType stored) {
    if (!dtype_set) expert_dtype = dtype;
    dtype_set = true;
    MQ_CHECK(dtype == expert_dtype, name, ": dtype ", dtype_name(stored),
             " differs from the other expert weights (", dtype_name(expert_dtype), ")");
  };
  auto present = [&](const std::string& name) -> const io::TensorInfo& {
    MQ_CHECK(ckpt_.has(name), c_.dir, ": expert tensor '", name,
             "' is missing from the checkpoint");
    return ckpt_.info(name);
  };
  // A fused tensor holds one matrix per expert: a count other than config.json's is named as such.
  auto expert_count = [&](const std::string& name, const io::TensorInfo& info) {
    MQ_CHECK(info.shape.empty() || info.shape[0] == E, c_.dir, ": fused expert tensor '", name,
             "' holds ", info.shape.empty() ? 0 : info.shape[0], " experts (shape ",
             shape_string(info.shape), "), config.json has ", E);
  };
  auto check = [&](const std::string& name, const std::vector<int64_t>& shape) {
    const io::TensorInfo& info = present(name);
    if (shape.size() == 3) expert_count(name, info);
    MQ_CHECK(info.shape == shape, c_.dir, ": tensor '", name, "' has shape ",
             shape_string(info.shape), ", expected ", shape_string(shape), " from config.json");
    // BF16, F16 or F32; an FP8 block source's F8_E4M3 weights are read as the bf16 they encode.
    const bool fp8 = info.dtype == DType::kF8E4M3 && fp8_source && shape.size() == 2;
    if (fp8)
      MQ_CHECK(ckpt_.has(fp8_block_scale_name(name)), c_.dir, ": expert tensor '", name,
               "' is F8_E4M3 but its block scales '", fp8_block_scale_name(name), "' are missing");
    else
      weight_scalar_type(info.dtype, name);
    agree(fp8 ? DType::kBF16 : info.dtype, name, info.dtype);
  };
  // MXFP4: <name>_blocks U8 [E, rows, cols/32, 16] and <name>_scales U8 [E, rows, cols/32].
  auto check_mxfp4 = [&](const std::string& name, int64_t rows, int64_t cols) {
    const std::string blocks = name + "_blocks", scales = name + "_scales";
    MQ_CHECK(c_.source.format == SourceFormat::kMxfp4, c_.dir, ": '", blocks,
             "' holds MXFP4 blocks but config.json declares no mxfp4 quantization_config");
    MQ_CHECK(cols % num::kMxfp4Block == 0, c_.dir, ": '", blocks, "': MXFP4 rows of ", cols,
             " elements do not divide into blocks of ", num::kMxfp4Block);
    const io::TensorInfo& b = present(blocks);
    MQ_CHECK(ckpt_.has(scales), c_.dir, ": '", scales, "', the scales of the MXFP4 blocks '",
             blocks, "', is missing");
    const io::TensorInfo& s = ckpt_.info(scales);
    expert_count(blocks, b);
    const std::vector<int64_t> bshape = {E, rows, cols / num::kMxfp4Block, num::kMxfp4Block / 2};
    const std::vector<int64_t> sshape = {E, rows, cols / num::kMxfp4Block};
    MQ_CHECK(b.dtype == DType::kU8 && b.shape == bshape, c_.dir, ": MXFP4 blocks '", blocks,
             "' are ", dtype_name(b.dtype), " ", shape_string(b.shape), ", expected U8 ",
             shape_string(bshape), " from config.json");
    MQ_CHECK(s.dtype == DType::kU8 && s.shape == sshape, c_.dir, ": MXFP4 scales '", scales,
             "' are ", dtype_name(s.dtype), " ", shape_string(s.shape), ", but its blocks '",
             blocks, "' ", shape_string(b.shape), " need U8 ", shape_string(sshape));
    agree(DType::kBF16, blocks, DType::kBF16);
  };
  for (int layer : c_.moe_layers) {
    const std::string gu = c_.fused_gate_up_name(layer), dn = c_.fused_down_name(layer);
    switch (kind(layer)) {
      case Kind::kFused:
        check(gu, layout.transposed ? std::vector<int64_t>{E, H, 2 * I}
                                    : std::vector<int64_t>{E, 2 * I, H});
        check(dn,
              layout.transposed ? std::vector<int64_t>{E, I, H} : std::vector<int64_t>{E, H, I});
        break;
      case Kind::kFusedMxfp4:
        check_mxfp4(gu, 2 * I, H);
        check_mxfp4(dn, H, I);
        break;
      case Kind::kPerExpert:
        for (int e = 0; e < E; ++e) {
          check(c_.expert_weight_name(layer, e, ExpertProj::kGate), {I, H});
          check(c_.expert_weight_name(layer, e, ExpertProj::kUp), {I, H});
          check(c_.expert_weight_name(layer, e, ExpertProj::kDown), {H, I});
        }
        break;
    }
  }
  // Extra experts: an index >= num_experts, or experts in a layer config.json calls dense.
  for (const std::string& name : ckpt_.names()) {
    int layer = -1, expert = -1;
    if (!c_.is_routed_expert_tensor(name, &layer, &expert)) continue;
    MQ_CHECK(layer < c_.num_layers && c_.is_moe_layer(layer), c_.dir, ": tensor '", name,
             "' belongs to no MoE layer of config.json");
    MQ_CHECK(expert < E, c_.dir, ": tensor '", name, "' names expert ", expert,
             " but config.json has ", E, " experts");
    MQ_CHECK(c_.source.format == SourceFormat::kMxfp4 || !ends_with(name, "_blocks"), c_.dir, ": '",
             name,
             "' holds MXFP4 blocks but config.json declares no mxfp4 "
             "quantization_config");
  }
  return expert_dtype;
}

SwiGluWeights ExpertStorage::read(int layer, int expert, bool fc1, int64_t begin,
                                  int64_t end) const {
  const int64_t I = c_.intermediate, H = c_.hidden, n = end - begin;
  const FusedExpertLayout layout = c_.family->fused_layout();
  SwiGluWeights w;
  auto view = [&](const std::string& name, int64_t offset, std::vector<int64_t> sizes,
                  std::vector<int64_t> strides) {
    return mapped(name, offset, std::move(sizes), std::move(strides));
  };
  switch (kind(layer)) {
    case Kind::kPerExpert: {
      auto rows = [&](ExpertProj p, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
        const std::string name = c_.expert_weight_name(layer, expert, p);
        const io::TensorInfo& info = ckpt_.info(name);
        if (info.dtype == DType::kF8E4M3)  // an FP8 block source: the bf16 weight, then a slice
          return checkpoint_tensor(ckpt_, name).narrow(0, r0, r1 - r0).narrow(1, c0, c1 - c0);
        return view(name, r0 * info.shape[1] + c0, {r1 - r0, c1 - c0}, {info.shape[1], 1});
      };
      if (fc1) {
        w.gate = rows(ExpertProj::kGate, begin, end, 0, H);
        w.up = rows(ExpertProj::kUp, begin, end, 0, H);
      } else {
        w.down = rows(ExpertProj::kDown, 0, H, begin, end);
      }
      return w;
    }
    case Kind::kFused: {
      // Output o of gate_up: gate j is o = j (halves) or 2j (interleaved), up j is I + j or 2j + 1.
      const int64_t step = layout.interleaved ? 2 : 1;
      const std::string gu = c_.fused_gate_up_name(layer), dn = c_.fused_down_name(layer);
      auto outputs = [&](int64_t first) {
        return layout.transposed  // [E, H, 2I]: output o is column o
                   ? view(gu, expert * H * 2 * I + first, {n, H}, {step, 2 * I})
                   : view(gu, (expert * 2 * I + first) * H, {n, H}, {step * H, 1});
      };
      if (fc1) {
        w.gate = outputs(layout.interleaved ? 2 * begin : begin);
        w.up = outputs(layout.interleaved ? 2 * begin + 1 : I + begin);
      } else {
        w.down = layout.transposed  // [E, I, H]: down[h, i] is at (i, h)
                     ? view(dn, (expert * I + begin) * H, {H, n}, {1, H})
                     : view(dn, expert * H * I + begin, {H, n}, {I, 1});
      }
      return w;
    }
    case Kind::kFusedMxfp4: {
      const std::string name = fc1 ? c_.fused_gate_up_name(layer) : c_.fused_down_name(layer);
      const int64_t rows = fc1 ? 2 * I : H, cols = fc1 ? H : I;
      const int64_t nb = cols / num::kMxfp4Block;
      const at::Tensor blocks =
          view(name + "_blocks", expert * rows * nb * 16, {rows, nb, 16}, {nb * 16, 16, 1});
      const at::Tensor scales = view(name + "_scales", expert * rows * nb, {rows, nb}, {nb, 1});
      const at::Tensor m = dequantize_mxfp4(blocks, scales, str_cat(name, "_blocks[", expert, "]"));
      if (!fc1) {
        w.down = m.narrow(1, begin, n);
      } else if (layout.interleaved) {
        w.gate = m.slice(0, 2 * begin, 2 * end, 2);
        w.up = m.slice(0, 2 * begin + 1, 2 * end, 2);
      } else {
        w.gate = m.narrow(0, begin, n);
        w.up = m.narrow(0, I + begin, n);
      }
      return w;
    }
  }
  return w;
}

at::Tensor ExpertStorage::mapped(const std::string& name, int64_t offset,
                                 std::vector<int64_t> sizes, std::vector<int64_t> strides) const {
  const io::TensorInfo& info = ckpt_.info(name);
  const uint8_t* p = ckpt_.data(name) + offset * dtype_size(info.dtype);
  return at::from_blob(const_cast<uint8_t*>(p), sizes, strides,
                       at::TensorOptions().dtype(storage_scalar_type(info.dtype)));
}

std::optional<ExpertStorage::Amax> ExpertStorage::encoded_amax(int layer, int expert, bool fc1,
                                                               int64_t begin, int64_t end) const {
  constexpr int64_t kBlock = num::kMxfp4Block;
  if (kind(layer) != Kind::kFusedMxfp4) return std::nullopt;
  if (!fc1 && (begin % kBlock != 0 || end % kBlock != 0)) return std::nullopt;
  const int64_t I = c_.intermediate, H = c_.hidden;
  const std::string name = fc1 ? c_.fused_gate_up_name(layer) : c_.fused_down_name(layer);
  const int64_t rows = fc1 ? 2 * I : H, nb = (fc1 ? H : I) / kBlock;
  // Rows r0, r0 + step, ... (count of them), blocks [b0, b0 + nblk) of each.
  auto amax = [&](int64_t r0, int64_t count, int64_t step, int64_t b0, int64_t nblk, ExpertProj p) {
    const int64_t first = (expert * rows + r0) * nb + b0;
    const at::Tensor blocks =
        mapped(name + "_blocks", first * 16, {count, nblk, 16}, {step * nb * 16, 16, 1});
    const at::Tensor scales = mapped(name + "_scales", first, {count, nblk}, {step * nb, 1});
    return mxfp4_amax(blocks, scales, label(layer, expert, p));
  };
  // NaN scales named as the decoder names them: by their index in the expert's whole matrix.
  check_mxfp4_scales(mapped(name + "_scales", expert * rows * nb, {rows, nb}, {nb, 1}),
                     str_cat(name, "_blocks[", expert, "]"));
  Amax a;
  const int64_t n = end - begin;
  if (!fc1) {
    a.down = amax(0, H, 1, begin / kBlock, (end - begin) / kBlock, ExpertProj::kDown);
  } else if (c_.family->fused_layout().interleaved) {
    a.gate = amax(2 * begin, n, 2, 0, nb, ExpertProj::kGate);
    a.up = amax(2 * begin + 1, n, 2, 0, nb, ExpertProj::kUp);
  } else {
    a.gate = amax(begin, n, 1, 0, nb, ExpertProj::kGate);
    a.up = amax(I + begin, n, 1, 0, nb, ExpertProj::kUp);
  }
  return a;
}

std::vector<io::TensorSpan> ExpertStorage::unit_spans(int layer, int expert, bool fc1) const {
  std::vector<io::TensorSpan> out;
  if (kind(layer) != Kind::kPerExpert) {
    // A fused tensor holds its experts in order along dimension 0, equal byte slices each.
    const std::string fused = fc1 ? c_.fused_gate_up_name(layer) : c_.fused_down_name(layer);
    const std::vector<std::string> names =
        kind(layer) == Kind::kFused
            ? std::vector<std::string>{fused}
            : std::vector<std::string>{fused + "_blocks", fused + "_scales"};
    for (const std::string& name : names) {
      const uint64_t per_expert = ckpt_.info(name).nbytes() / static_cast<uint64_t>(c_.num_experts);
      out.push_back({name, static_cast<uint64_t>(expert) * per_expert, per_expert});
    }
    return out;
  }
  for (ExpertProj p : fc1 ? std::vector<ExpertProj>{ExpertProj::kGate, ExpertProj::kUp}
                          : std::vector<ExpertProj>{ExpertProj::kDown}) {
    out.push_back({c_.expert_weight_name(layer, expert, p)});
    if (ckpt_.has(fp8_block_scale_name(out.back().name)))
      out.push_back({fp8_block_scale_name(out.back().name)});
  }
  return out;
}

std::string ExpertStorage::label(int layer, int expert, ExpertProj p) const {
  const std::string fused =
      p == ExpertProj::kDown ? c_.fused_down_name(layer) : c_.fused_gate_up_name(layer);
  switch (kind(layer)) {
    case Kind::kPerExpert:
      return c_.expert_weight_name(layer, expert, p);
    case Kind::kFused:
      return str_cat(fused, "[", expert, proj_part(p), "]");
    case Kind::kFusedMxfp4:
      return str_cat(fused, "_blocks[", expert, proj_part(p), "]");
  }
  return "";
}

}  // namespace moequant
