// The one reader of whole input files (config.json, tokenizer.json, the shard index, calibration
// data, exported configs). It refuses what is not a regular file by name (a FIFO would block
// forever, a device could stream without end) and anything larger than the caller's limit, and
// reads each file once.
#pragma once

#include <cstdint>
#include <string>

namespace moequant {

// Size limits of the files read whole: far above any real one, far below what would exhaust
// memory.
constexpr uint64_t kMaxConfigFileBytes = 64ull << 20;       // config.json, hf_quant_config.json
constexpr uint64_t kMaxTokenizerFileBytes = 1ull << 30;     // tokenizer.json (real ones: ~30 MB)
constexpr uint64_t kMaxIndexFileBytes = 256ull << 20;       // model.safetensors.index.json
constexpr uint64_t kMaxCalibrationFileBytes = 16ull << 30;  // calibration / evaluation data

// What is at `path` (following symlinks): "missing", "a regular file", "a folder", "a FIFO",
// "a socket", "a character device", "a block device", or "unreadable (<reason>)".
std::string file_kind(const std::string& path);

// True when `path` names something (a file of any kind, a folder, a dangling link excluded).
bool path_exists(const std::string& path);

// The whole content of the regular file at `path` (symlinks followed). Throws moequant::Error
// naming the path when it cannot be opened, is not a regular file ("<path>: not a regular file
// (a FIFO)"), holds more than `max_bytes`, or cannot be read. Never blocks on a FIFO.
std::string read_regular_file(const std::string& path, uint64_t max_bytes);

}  // namespace moequant
