#include "moequant/export/weight_amax.h"

#include "moequant/common/error.h"

namespace moequant {

std::vector<float> resolve_weight_amax(const TensorQuantizer& q, const std::string& module,
                                       const std::string& weight, UncalibratedWeights policy,
                                       const std::function<float()>& own_amax, bool* fell_back) {
  if (fell_back) *fell_back = false;
  if (q.is_calibrated()) return q.amax();
  MQ_CHECK(policy == UncalibratedWeights::kFallback, "module '", module, "': cannot export ",
           weight, ": its quantizer '", q.name(),
           "' has no amax (calibration never observed this weight; does the module's "
           "iter_weights_for_calibration() list it?)");
  if (fell_back) *fell_back = true;
  return {own_amax()};
}

}  // namespace moequant
