#include "moequant/parallel/process_groups.h"

#include "moequant/common/error.h"
#include "moequant/common/strings.h"
#include "moequant/parallel/error_agreement.h"
#include "moequant/parallel/single_communicator.h"

namespace moequant::parallel {

Communicator& ProcessGroups::get(Group g) const {
  const auto i = static_cast<size_t>(g);
  MQ_CHECK(i < comms_.size() && comms_[i], "no communicator for group id ", i);
  return *comms_[i];
}

std::string ProcessGroups::shape_error(Group g) const {
  const Communicator& c = get(g);
  if (c.size() != state_.size(g))
    return str_cat(group_name(g), " communicator has ", c.size(), " ranks but the layout (",
                   state_.describe(), ") expects ", state_.size(g));
  if (c.rank() != state_.group_rank(g))
    return str_cat(group_name(g), " communicator: world rank ", state_.rank(), " is rank ",
                   c.rank(), " in it but the layout puts it at ", state_.group_rank(g));
  return "";
}

std::string ProcessGroups::members_error(Group g) const {
  Communicator& c = get(g);
  const auto all = c.all_gather_bytes(std::to_string(state_.rank()));
  std::vector<int> members;
  for (const auto& s : all) members.push_back(std::stoi(s));
  const std::vector<int>& expected = state_.group_ranks(g);
  if (members == expected) return "";
  return str_cat(group_name(g), " communicator holds world ranks ", shape_string(members),
                 " but the layout (", state_.describe(), ") expects ", shape_string(expected));
}

ProcessGroups ProcessGroups::split_from(std::unique_ptr<Communicator> world,
                                        const ParallelState& state) {
  MQ_CHECK(world != nullptr, "split_from: null world communicator");
  ProcessGroups pg(state);
  pg.comms_[static_cast<size_t>(Group::kWorld)] = std::move(world);
  Communicator& w = pg.world();
  // A rank whose world does not match the layout must not leave the others in the splits.
  agree_on_error(w, pg.shape_error(Group::kWorld));
  for (int i = 0; i < kNumGroups; ++i) {
    const auto g = static_cast<Group>(i);
    if (g == Group::kWorld) continue;
    // Sizes are the same on every rank, so every rank skips the same splits.
    if (state.size(g) == 1) {
      pg.comms_[i] =
          std::make_unique<SingleCommunicator>(group_name(g), w.world_rank(), w.timeout());
      continue;
    }
    // Color: the lowest world rank of the group, which every member computes alike.
    pg.comms_[i] = w.split(state.group_ranks(g).front(), state.group_rank(g), group_name(g));
    const std::string err = pg.shape_error(g);
    MQ_CHECK(err.empty(), "split_from: ", err);  // the same on every rank: split is exact
  }
  return pg;
}

ProcessGroups ProcessGroups::adopt(const ParallelState& state,
                                   std::map<Group, std::unique_ptr<Communicator>> comms) {
  ProcessGroups pg(state);
  std::string err;
  for (int i = 0; i < kNumGroups; ++i) {
    const auto g = static_cast<Group>(i);
    auto it = comms.find(g);
    if (it != comms.end() && it->second) {
      pg.comms_[i] = std::move(it->second);
    } else {
      MQ_CHECK(state.size(g) == 1, "adopt: no ", group_name(g), " communicator given, but the ",
               "layout (", state.describe(), ") has ", group_name(g), " groups of ", state.size(g),
               " ranks");
      pg.comms_[i] = std::make_unique<SingleCommunicator>(group_name(g), state.rank());
    }
    if (err.empty()) err = pg.shape_error(g);
  }
  // A mismatch may show on some ranks only: agree on the world before anyone goes on.
  agree_on_error(pg.world(), err);
  // One all_gather per group of size > 1, in the same order on every rank, then agree again.
  for (int i = 0; i < kNumGroups; ++i) {
    const auto g = static_cast<Group>(i);
    if (state.size(g) == 1) continue;
    const std::string e = pg.members_error(g);
    if (err.empty()) err = e;
  }
  agree_on_error(pg.world(), err);
  return pg;
}

}  // namespace moequant::parallel
