// ParallelState: the one place that does rank arithmetic (docs/design.md, "Parallel layout").
//
// Dense view:  world = PP x DP x TP,        rank = tp + TP*(dp + DP*pp)               (TP fastest)
// Expert view: world = PP x EDP x EP x ETP, rank = etp + ETP*(ep + EP*(edp + EDP*pp)) (ETP fastest)
// with EP*ETP*EDP == TP*DP, so both views agree on pp = rank / (world/PP).
//
// Model partition (global layer and expert numbers everywhere):
//  - experts: E % EP == 0; EP rank e holds global experts [e*E/EP, (e+1)*E/EP) as local 0..E/EP-1;
//  - ETP splits an expert's intermediate dim I (I % ETP == 0): rank r holds [r*I/ETP, (r+1)*I/ETP);
//  - TP splits a dense dim the same way (dim % TP == 0);
//  - PP: each stage holds a contiguous range of layers. When L % PP != 0 the first L % PP stages
//    hold one layer more (L = 10, PP = 4: 3,3,2,2). Megatron's default requires L % PP == 0 and
//    then both agree; a host program with another uneven split must name layers itself.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moequant/parallel/group.h"

namespace moequant::parallel {

// The sizes a user chooses; DP and EDP follow from the world size.
struct ParallelSizes {
  int tp = 1;
  int ep = 1;
  int etp = 1;
  int pp = 1;
};

// Model dimensions the partition queries need. 0 means "not given": the queries that need a
// value that was not given throw.
struct ModelDims {
  int num_layers = 0;
  int num_experts = 0;
  int64_t expert_intermediate = 0;  // I of one expert (fc1 is [2I, H], fc2 is [H, I])
};

struct DenseCoord {
  int tp = 0;
  int dp = 0;
  int pp = 0;
};

struct ExpertCoord {
  int etp = 0;
  int ep = 0;
  int edp = 0;
  int pp = 0;
};

// Half-open index range [begin, end).
struct IndexRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
  bool contains(int64_t i) const { return i >= begin && i < end; }
};

class ParallelState {
 public:
  // Validates the layout (and `model` where given); throws moequant::Error naming the sizes
  // that do not fit, e.g. "world 6 is not divisible by TP 4 x PP 1".
  ParallelState(int world_size, int rank, const ParallelSizes& sizes, const ModelDims& model = {});

  int world_size() const { return world_; }
  int rank() const { return rank_; }
  const ParallelSizes& sizes() const { return sizes_; }
  const ModelDims& model() const { return model_; }
  int dp() const { return dp_; }
  int edp() const { return edp_; }

  // "world 8: TP2 x DP2 x PP2, experts ETP1 x EP4 x EDP1 x PP2".
  std::string describe() const;

  // ---- groups --------------------------------------------------------------------------------
  // Number of ranks in a group of kind g (kWorld: the world).
  int size(Group g) const;
  // Index of this rank (or `world_rank`) inside its group of kind g.
  int group_rank(Group g) const { return group_rank_of(g, rank_); }
  int group_rank_of(Group g, int world_rank) const;
  // World ranks of this rank's group of kind g (or of `world_rank`'s), in group-rank order.
  const std::vector<int>& group_ranks(Group g) const;
  std::vector<int> group_ranks_of(Group g, int world_rank) const;
  // Every group of kind g, each in group-rank order; groups ordered by their lowest world rank.
  std::vector<std::vector<int>> all_groups(Group g) const;

  // ---- coordinates ---------------------------------------------------------------------------
  DenseCoord dense_coord() const { return dense_coord_of(rank_); }
  DenseCoord dense_coord_of(int world_rank) const;
  ExpertCoord expert_coord() const { return expert_coord_of(rank_); }
  ExpertCoord expert_coord_of(int world_rank) const;
  int dense_rank(const DenseCoord& c) const;
  int expert_rank(const ExpertCoord& c) const;

  // ---- pipeline stages -----------------------------------------------------------------------
  IndexRange stage_layers(int pp_rank) const;
  IndexRange local_layers() const { return stage_layers(dense_coord().pp); }
  int stage_of_layer(int layer) const;
  bool holds_layer(int layer) const { return stage_of_layer(layer) == dense_coord().pp; }

  // ---- experts -------------------------------------------------------------------------------
  IndexRange ep_experts(int ep_rank) const;
  IndexRange local_experts() const { return ep_experts(expert_coord().ep); }
  int num_local_experts() const;
  int global_expert(int local_expert) const;  // on this rank
  int local_expert(int global_expert) const;  // throws unless this rank holds it
  int ep_rank_of_expert(int global_expert) const;
  bool holds_expert(int global_expert) const;

  // ---- tensor shards -------------------------------------------------------------------------
  // ETP shard of an expert's intermediate dim (`dim` defaults to the model's I).
  IndexRange etp_shard(int etp_rank, int64_t dim = 0) const;
  IndexRange local_etp_shard(int64_t dim = 0) const { return etp_shard(expert_coord().etp, dim); }
  // TP shard of a dense dim; `what` names it in errors ("hidden size").
  IndexRange tp_shard(int64_t dim, int tp_rank, const std::string& what = "dimension") const;
  IndexRange local_tp_shard(int64_t dim, const std::string& what = "dimension") const {
    return tp_shard(dim, dense_coord().tp, what);
  }

  // ---- who holds and produces what ------------------------------------------------------------
  // The world rank holding ETP shard `etp_rank` of expert `expert` of layer `layer` in EDP
  // replica `edp_rank`.
  int expert_shard_rank(int layer, int expert, int etp_rank, int edp_rank) const;
  // The EDP replica that produces expert `expert`'s output tensors (expert % EDP: the replicas
  // share the work), and in it the holder of ETP shard `etp_rank`. With etp_rank 0 that is the
  // expert's producer: it receives the other shards, assembles the weights and writes them.
  int expert_unit_rank(int layer, int expert, int etp_rank) const;
  int expert_producer(int layer, int expert) const { return expert_unit_rank(layer, expert, 0); }
  // World ranks holding a dense tensor of layer `layer` (every tp and dp of its stage),
  // ordered by (dp, tp).
  std::vector<int> dense_holders(int layer) const;

  // ---- data ----------------------------------------------------------------------------------
  // Calibration samples are split over every rank of a stage (attention runs data-parallel, not
  // TP-split): this rank's slot tp + TP*dp among the stage's TP*DP slots.
  int stage_data_slot() const;
  int stage_data_slots() const { return sizes_.tp * dp_; }
  // The rank with this rank's (tp, dp) on stage pp + `offset` (hidden states travel there).
  int stage_peer(int offset) const;
  // The index of this rank's group of kind g among all_groups(g).
  int group_index(Group g) const;

 private:
  void check_rank(int world_rank) const;
  int coord_of(Group g, int world_rank) const;
  void require_layers() const;
  void require_experts() const;

  int world_ = 1;
  int rank_ = 0;
  ParallelSizes sizes_;
  ModelDims model_;
  int dp_ = 1;
  int edp_ = 1;
  std::vector<std::vector<int>> my_groups_;  // indexed by Group
};

}  // namespace moequant::parallel
