#include "moequant/calib/calibration_data.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <random>

#include "moequant/common/error.h"

namespace moequant {

CalibrationData read_token_ids(const std::string& path, int64_t samples, int64_t seq_len,
                               int64_t vocab) {
  MQ_CHECK(seq_len > 0, "--calib-seq-len must be positive");
  std::ifstream in(path);
  MQ_CHECK(in.good(), "cannot read calibration data '", path, "'");
  CalibrationData data;
  data.seq_len = seq_len;
  data.source = path;
  std::string line;
  int64_t line_no = 0;
  while ((samples == 0 || static_cast<int64_t>(data.samples.size()) < samples) &&
         std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank line
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      MQ_THROW(path, ":", line_no, ": malformed JSON: ", e.what());
    }
    MQ_CHECK(j.is_object() && j.contains("input_ids") && j["input_ids"].is_array(), path, ":",
             line_no,
             ": expected {\"input_ids\": [...]} (text corpora need the model's "
             "tokenizer.json)");
    const nlohmann::json& ids = j["input_ids"];
    MQ_CHECK(static_cast<int64_t>(ids.size()) >= seq_len, path, ":", line_no, ": ", ids.size(),
             " token ids, fewer than --calib-seq-len ", seq_len);
    std::vector<int64_t> sample(static_cast<size_t>(seq_len));
    for (int64_t i = 0; i < seq_len; ++i) {
      const nlohmann::json& v = ids[static_cast<size_t>(i)];
      MQ_CHECK(v.is_number_integer(), path, ":", line_no, ": input_ids[", i, "] is not an integer");
      const int64_t id = v.get<int64_t>();
      MQ_CHECK(id >= 0 && id < vocab, path, ":", line_no, ": token id ", id,
               " is outside the model's vocabulary of ", vocab);
      sample[static_cast<size_t>(i)] = id;
    }
    data.samples.push_back(std::move(sample));
  }
  MQ_CHECK(!data.samples.empty(), path, ": no calibration samples (the file is empty)");
  MQ_CHECK(samples == 0 || static_cast<int64_t>(data.samples.size()) == samples, path, ": holds ",
           data.samples.size(), " samples, fewer than --calib-samples ", samples);
  return data;
}

CalibrationData random_token_ids(int64_t samples, int64_t seq_len, int64_t vocab, uint64_t seed) {
  MQ_CHECK(samples > 0 && seq_len > 0 && vocab > 0, "random calibration data needs positive sizes");
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> id(0, vocab - 1);
  CalibrationData data;
  data.seq_len = seq_len;
  data.source = "random tokens (seed " + std::to_string(seed) + ")";
  data.samples.assign(static_cast<size_t>(samples), std::vector<int64_t>(seq_len));
  for (auto& s : data.samples)
    for (auto& v : s) v = id(rng);
  return data;
}

}  // namespace moequant
