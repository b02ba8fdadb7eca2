// A tensor of a checkpoint folder as an at::Tensor, whatever the source stores: a read-only view
// of the memory-mapped file for plain dtypes, and for a weight of an FP8 block source (F8_E4M3
// with its "<name>_scale_inv" beside it; docs/formats.md, "Quantized sources") the bf16 weight it
// encodes. What the forward, the exporter's source and eval read every weight through.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <string>
#include <vector>

#include "moequant/io/checkpoint_folder.h"

namespace moequant {

// True when `name` is F8_E4M3 and has block scales beside it.
bool is_fp8_block_weight(const io::CheckpointFolder& ckpt, const std::string& name);

// The tensor (a view of the mapping, or the dequantized bf16 weight of an FP8 block source, on
// the CPU); shape checked when `shape` is given. Errors name the folder and the tensor: a missing
// tensor, a wrong shape, an F8_E4M3 tensor without its block scales, a bad block scale.
at::Tensor checkpoint_tensor(const io::CheckpointFolder& ckpt, const std::string& name,
                             const std::vector<int64_t>& shape = {});

// The same as float32 on `device`, always a copy (a bf16 weight crosses PCIe at half the bytes
// and is widened there). The mapping's pages are released afterwards.
at::Tensor read_f32(const io::CheckpointFolder& ckpt, const std::string& name,
                    const at::Device& device, const std::vector<int64_t>& shape = {});

// A view (or the dequantized copy) of `tensor`'s float copy on `device` as float32.
at::Tensor to_f32(const at::Tensor& t, const at::Device& device);

}  // namespace moequant
