// ProcessGroups: one communicator per group of a ParallelState, built by splitting the world or
// adopted from communicators the host program already has (docs/design.md: "Built once by
// ParallelState, from sizes or adopted from the host program's own communicators").
#pragma once

#include <array>
#include <map>
#include <memory>
#include <string>

#include "moequant/parallel/communicator.h"
#include "moequant/parallel/parallel_state.h"

namespace moequant::parallel {

class ProcessGroups {
 public:
  // Splits `world` into every group of `state` (collective over the world: call it on all
  // ranks). Groups of size 1 become SingleCommunicators, without any collective.
  // Throws when the world's size or rank does not match `state`.
  static ProcessGroups split_from(std::unique_ptr<Communicator> world, const ParallelState& state);

  // Adopts communicators built by the host (e.g. MpiCommunicator::wrap of its own MPI_Comm).
  // Every group of size > 1 in `state` must be present (kWorld included); groups of size 1 may be
  // left out. Checks each one's size and rank, and, with one all_gather per group, that its
  // members are exactly the world ranks `state` expects; a mismatch on any rank is agreed over
  // the world (agree_on_error) and thrown on every rank as "rank R: <group> communicator ...".
  static ProcessGroups adopt(const ParallelState& state,
                             std::map<Group, std::unique_ptr<Communicator>> comms);

  ProcessGroups(ProcessGroups&&) = default;
  ProcessGroups& operator=(ProcessGroups&&) = default;

  Communicator& get(Group g) const;
  Communicator& world() const { return get(Group::kWorld); }
  const ParallelState& state() const { return state_; }

 private:
  explicit ProcessGroups(const ParallelState& state) : state_(state) {}
  // "" or why group g's communicator does not match the layout (size, rank; members).
  std::string shape_error(Group g) const;
  std::string members_error(Group g) const;

  ParallelState state_;
  std::array<std::unique_ptr<Communicator>, kNumGroups> comms_;
};

}  // namespace moequant::parallel
