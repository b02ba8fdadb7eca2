// Calibration token batches: sequences of `seq_len` token ids, read from a .jsonl file of
// {"input_ids": [...]} lines, or seeded random tokens (the built-in run, benchmarks). Text
// corpora are tokenized into the same form (calib/text_calibration.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moequant {

struct CalibrationData {
  std::vector<std::vector<int64_t>> samples;  // each exactly seq_len ids
  int64_t seq_len = 0;
  std::string source;  // what they came from, for the report
  int64_t tokens() const { return static_cast<int64_t>(samples.size()) * seq_len; }
};

// The first `samples` lines (0: all) of a .jsonl of {"input_ids": [ints]}, each cut to its first
// `seq_len` ids. Errors name file:line: a malformed line, no input_ids list, a sequence shorter
// than seq_len, an id outside [0, vocab); an empty file or fewer lines than asked.
CalibrationData read_token_ids(const std::string& path, int64_t samples, int64_t seq_len,
                               int64_t vocab);

// `samples` sequences of uniformly random ids in [0, vocab), seeded: identical on every rank.
CalibrationData random_token_ids(int64_t samples, int64_t seq_len, int64_t vocab, uint64_t seed);

// Text (a .txt of samples separated by blank lines, or a .jsonl of {"text": ...} lines)
// tokenized with `tokenizer_json` exactly as Hugging Face tokenizers does (special tokens of its
// post-processor included), the samples' ids concatenated and cut into sequences of seq_len (the
// first `samples` of them; 0: every full one). Errors name the file: no tokenizer.json, invalid
// UTF-8 (byte offset), fewer tokens than asked, an id outside [0, vocab).
CalibrationData tokenize_text(const std::string& path, const std::string& tokenizer_json,
                              int64_t samples, int64_t seq_len, int64_t vocab);

// What --calib-data / --data name: "random" (seeded random ids), a .jsonl of {"input_ids"}
// lines, or text (.txt, or a .jsonl of {"text"} lines) tokenized with <model_dir>/tokenizer.json.
CalibrationData load_calibration_data(const std::string& spec, const std::string& model_dir,
                                      int64_t samples, int64_t seq_len, int64_t vocab,
                                      uint64_t seed);

}  // namespace moequant
