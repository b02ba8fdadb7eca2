#include "moequant/export/exclude_patterns.h"

#include <algorithm>
#include <utility>

#include "moequant/calib/calibrate.h"
#include "moequant/common/error.h"
#include "moequant/common/strings.h"
#include "moequant/model/decoder_config.h"
#include "moequant/model/model_tensors.h"

namespace moequant {

namespace {

// Levenshtein distance: how far a pattern is from a name, to suggest the names meant.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = up;
    }
  }
  return row[b.size()];
}

}  // namespace

void check_exclude_patterns(const ModelConfig& config, const std::vector<std::string>& patterns,
                            bool dense) {
  if (patterns.empty()) return;
  std::vector<std::string> modules;
  for (int layer : config.moe_layers)
    for (int e = 0; e < config.num_experts; ++e)
      for (ExpertProj p : {ExpertProj::kGate, ExpertProj::kUp, ExpertProj::kDown})
        modules.push_back(config.expert_module_name(layer, e, p));
  if (dense)
    for (const DenseLinear& l : dense_linears(config, decoder_config(config)))
      modules.push_back(l.module);
  for (const std::string& pattern : patterns) {
    const bool matches = std::any_of(modules.begin(), modules.end(), [&](const std::string& m) {
      return pattern_matches(pattern, m);
    });
    if (matches) continue;
    const std::string bare = pattern.rfind("re:", 0) == 0 ? pattern.substr(3) : pattern;
    std::vector<std::pair<size_t, std::string>> scored;
    for (const std::string& m : modules) scored.push_back({edit_distance(bare, m), m});
    const size_t shown = std::min<size_t>(3, scored.size());
    std::partial_sort(scored.begin(), scored.begin() + shown, scored.end());
    std::vector<std::string> closest;
    for (size_t i = 0; i < shown; ++i) closest.push_back("'" + scored[i].second + "'");
    MQ_THROW("--exclude '", pattern, "' matches no ", dense ? "linear" : "expert projection",
             " this export quantizes (closest: ", join(closest),
             "): a typo would leave everything quantized");
  }
}

}  // namespace moequant
