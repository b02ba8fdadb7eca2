#include "moequant/parallel/parallel_state.h"

#include "moequant/common/error.h"

namespace moequant::parallel {

namespace {

void check_positive(const char* what, int v) {
  MQ_CHECK(v >= 1, what, " must be >= 1 (got ", v, ")");
}

// Contiguous split of `n` items over `parts`, the first n % parts parts one item longer.
IndexRange balanced_part(int64_t n, int parts, int index) {
  const int64_t base = n / parts, extra = n % parts;
  const int64_t begin = index * base + (index < extra ? index : extra);
  return {begin, begin + base + (index < extra ? 1 : 0)};
}

}  // namespace

ParallelState::ParallelState(int world_size, int rank, const ParallelSizes& sizes,
                             const ModelDims& model)
    : world_(world_size), rank_(rank), sizes_(sizes), model_(model) {
  check_positive("world size", world_size);
  check_positive("TP", sizes.tp);
  check_positive("EP", sizes.ep);
  check_positive("ETP", sizes.etp);
  check_positive("PP", sizes.pp);
  MQ_CHECK(world_ % (sizes.tp * sizes.pp) == 0, "world ", world_, " is not divisible by TP ",
           sizes.tp, " x PP ", sizes.pp);
  MQ_CHECK(world_ % (sizes.ep * sizes.etp * sizes.pp) == 0, "world ", world_,
           " is not divisible by EP ", sizes.ep, " x ETP ", sizes.etp, " x PP ", sizes.pp);
  dp_ = world_ / (sizes.tp * sizes.pp);
  edp_ = world_ / (sizes.ep * sizes.etp * sizes.pp);
  check_rank(rank);

  MQ_CHECK(model.num_layers >= 0 && model.num_experts >= 0 && model.expert_intermediate >= 0,
           "model dimensions must not be negative (layers ", model.num_layers, ", experts ",
           model.num_experts, ", intermediate ", model.expert_intermediate, ")");
  if (model.num_layers > 0)
    MQ_CHECK(model.num_layers >= sizes.pp, model.num_layers, " layers cannot fill PP ", sizes.pp,
             " stages (every stage needs at least one layer)");
  if (model.num_experts > 0)
    MQ_CHECK(model.num_experts % sizes.ep == 0, model.num_experts, " experts not divisible by EP ",
             sizes.ep);
  if (model.expert_intermediate > 0)
    MQ_CHECK(model.expert_intermediate % sizes.etp == 0, "expert intermediate size ",
             model.expert_intermediate, " not divisible by ETP ", sizes.etp);

  my_groups_.resize(kNumGroups);
  for (int g = 0; g < kNumGroups; ++g) my_groups_[g] = group_ranks_of(static_cast<Group>(g), rank_);
}

std::string ParallelState::describe() const {
  return str_cat("world ", world_, ": TP", sizes_.tp, " x DP", dp_, " x PP", sizes_.pp,
                 ", experts ETP", sizes_.etp, " x EP", sizes_.ep, " x EDP", edp_, " x PP",
                 sizes_.pp);
}

void ParallelState::check_rank(int world_rank) const {
  MQ_CHECK(world_rank >= 0 && world_rank < world_, "rank ", world_rank, " is outside world ",
           world_);
}

int ParallelState::size(Group g) const {
  switch (g) {
    case Group::kWorld:
      return world_;
    case Group::kTP:
      return sizes_.tp;
    case Group::kDP:
      return dp_;
    case Group::kETP:
      return sizes_.etp;
    case Group::kEP:
      return sizes_.ep;
    case Group::kEDP:
      return edp_;
    case Group::kPP:
      return sizes_.pp;
  }
  MQ_THROW("unknown group id ", static_cast<int>(g));
}

DenseCoord ParallelState::dense_coord_of(int r) const {
  check_rank(r);
  DenseCoord c;
  c.tp = r % sizes_.tp;
  c.dp = (r / sizes_.tp) % dp_;
  c.pp = r / (sizes_.tp * dp_);
  return c;
}

ExpertCoord ParallelState::expert_coord_of(int r) const {
  check_rank(r);
  ExpertCoord c;
  c.etp = r % sizes_.etp;
  c.ep = (r / sizes_.etp) % sizes_.ep;
  c.edp = (r / (sizes_.etp * sizes_.ep)) % edp_;
  c.pp = r / (sizes_.etp * sizes_.ep * edp_);
  return c;
}

int ParallelState::dense_rank(const DenseCoord& c) const {
  MQ_CHECK(
      c.tp >= 0 && c.tp < sizes_.tp && c.dp >= 0 && c.dp < dp_ && c.pp >= 0 && c.pp < sizes_.pp,
      "dense coordinate (tp ", c.tp, ", dp ", c.dp, ", pp ", c.pp, ") is outside ", describe());
  return c.tp + sizes_.tp * (c.dp + dp_ * c.pp);
}

int ParallelState::expert_rank(const ExpertCoord& c) const {
  MQ_CHECK(c.etp >= 0 && c.etp < sizes_.etp && c.ep >= 0 && c.ep < sizes_.ep && c.edp >= 0 &&
               c.edp < edp_ && c.pp >= 0 && c.pp < sizes_.pp,
           "expert coordinate (etp ", c.etp, ", ep ", c.ep, ", edp ", c.edp, ", pp ", c.pp,
           ") is outside ", describe());
  return c.etp + sizes_.etp * (c.ep + sizes_.ep * (c.edp + edp_ * c.pp));
}

int ParallelState::coord_of(Group g, int r) const {
  switch (g) {
    case Group::kWorld:
      check_rank(r);
      return r;
    case Group::kTP:
      return dense_coord_of(r).tp;
    case Group::kDP:
      return dense_coord_of(r).dp;
    case Group::kPP:
      return dense_coord_of(r).pp;
    case Group::kETP:
      return expert_coord_of(r).etp;
    case Group::kEP:
      return expert_coord_of(r).ep;
    case Group::kEDP:
      return expert_coord_of(r).edp;
  }
  MQ_THROW("unknown group id ", static_cast<int>(g));
}

int ParallelState::group_rank_of(Group g, int world_rank) const {
  return coord_of(g, world_rank);
}

const std::vector<int>& ParallelState::group_ranks(Group g) const {
  const auto i = static_cast<size_t>(g);
  MQ_CHECK(i < my_groups_.size(), "unknown group id ", i);
  return my_groups_[i];
}

std::vector<int> ParallelState::group_ranks_of(Group g, int r) const {
  std::vector<int> out;
  const int n = size(g);
  out.reserve(n);
  DenseCoord d = dense_coord_of(r);
  ExpertCoord e = expert_coord_of(r);
  for (int i = 0; i < n; ++i) {
    switch (g) {
      case Group::kWorld:
        out.push_back(i);
        break;
      case Group::kTP:
        d.tp = i;
        out.push_back(dense_rank(d));
        break;
      case Group::kDP:
        d.dp = i;
        out.push_back(dense_rank(d));
        break;
      case Group::kPP:
        d.pp = i;
        out.push_back(dense_rank(d));
        break;
      case Group::kETP:
        e.etp = i;
        out.push_back(expert_rank(e));
        break;
      case Group::kEP:
        e.ep = i;
        out.push_back(expert_rank(e));
        break;
      case Group::kEDP:
        e.edp = i;
        out.push_back(expert_rank(e));
        break;
    }
  }
  return out;
}

std::vector<std::vector<int>> ParallelState::all_groups(Group g) const {
  // Every rank's coordinate along g is its index in its group: the members with index 0 lead.
  std::vector<std::vector<int>> out;
  for (int r = 0; r < world_; ++r)
    if (coord_of(g, r) == 0) out.push_back(group_ranks_of(g, r));
  return out;
}

// ---- pipeline stages ---------------------------------------------------------------------------

void ParallelState::require_layers() const {
  MQ_CHECK(model_.num_layers > 0,
           "this ParallelState was built without the number of layers (ModelDims::num_layers)");
}

void ParallelState::require_experts() const {
  MQ_CHECK(model_.num_experts > 0,
           "this ParallelState was built without the number of experts (ModelDims::num_experts)");
}

IndexRange ParallelState::stage_layers(int pp_rank) const {
  require_layers();
  MQ_CHECK(pp_rank >= 0 && pp_rank < sizes_.pp, "PP rank ", pp_rank, " is outside PP ", sizes_.pp);
  return balanced_part(model_.num_layers, sizes_.pp, pp_rank);
}

int ParallelState::stage_of_layer(int layer) const {
  require_layers();
  MQ_CHECK(layer >= 0 && layer < model_.num_layers, "layer ", layer, " is outside the model's ",
           model_.num_layers, " layers");
  for (int s = 0; s < sizes_.pp; ++s)
    if (stage_layers(s).contains(layer)) return s;
  MQ_THROW("layer ", layer, " is on no pipeline stage");  // unreachable
}

// ---- experts -----------------------------------------------------------------------------------

IndexRange ParallelState::ep_experts(int ep_rank) const {
  require_experts();
  MQ_CHECK(ep_rank >= 0 && ep_rank < sizes_.ep, "EP rank ", ep_rank, " is outside EP ", sizes_.ep);
  const int per = model_.num_experts / sizes_.ep;
  return {int64_t{ep_rank} * per, int64_t{ep_rank + 1} * per};
}

int ParallelState::num_local_experts() const {
  require_experts();
  return model_.num_experts / sizes_.ep;
}

int ParallelState::global_expert(int local) const {
  MQ_CHECK(local >= 0 && local < num_local_experts(), "local expert ", local, " is outside the ",
           num_local_experts(), " experts of an EP rank");
  return static_cast<int>(local_experts().begin) + local;
}

int ParallelState::ep_rank_of_expert(int global) const {
  require_experts();
  MQ_CHECK(global >= 0 && global < model_.num_experts, "expert ", global,
           " is outside the model's ", model_.num_experts, " experts");
  return global / num_local_experts();
}

bool ParallelState::holds_expert(int global) const {
  return ep_rank_of_expert(global) == expert_coord().ep;
}

int ParallelState::local_expert(int global) const {
  MQ_CHECK(holds_expert(global), "expert ", global, " is held by EP rank ",
           ep_rank_of_expert(global), ", not by rank ", rank_, " (EP rank ", expert_coord().ep,
           ")");
  return global - static_cast<int>(local_experts().begin);
}

// ---- tensor shards -----------------------------------------------------------------------------

IndexRange ParallelState::etp_shard(int etp_rank, int64_t dim) const {
  if (dim == 0) dim = model_.expert_intermediate;
  MQ_CHECK(dim > 0,
           "expert intermediate size unknown: pass it or set ModelDims::expert_intermediate");
  MQ_CHECK(dim % sizes_.etp == 0, "expert intermediate size ", dim, " not divisible by ETP ",
           sizes_.etp);
  MQ_CHECK(etp_rank >= 0 && etp_rank < sizes_.etp, "ETP rank ", etp_rank, " is outside ETP ",
           sizes_.etp);
  const int64_t per = dim / sizes_.etp;
  return {etp_rank * per, (etp_rank + 1) * per};
}

IndexRange ParallelState::tp_shard(int64_t dim, int tp_rank, const std::string& what) const {
  MQ_CHECK(dim > 0, what, " must be positive (got ", dim, ")");
  MQ_CHECK(dim % sizes_.tp == 0, what, " ", dim, " not divisible by TP ", sizes_.tp);
  MQ_CHECK(tp_rank >= 0 && tp_rank < sizes_.tp, "TP rank ", tp_rank, " is outside TP ", sizes_.tp);
  const int64_t per = dim / sizes_.tp;
  return {tp_rank * per, (tp_rank + 1) * per};
}

// ---- holders -----------------------------------------------------------------------------------

int ParallelState::expert_shard_rank(int layer, int expert, int etp_rank, int edp_rank) const {
  ExpertCoord c;
  c.pp = stage_of_layer(layer);
  c.ep = ep_rank_of_expert(expert);
  c.etp = etp_rank;
  c.edp = edp_rank;
  return expert_rank(c);
}

int ParallelState::expert_unit_rank(int layer, int expert, int etp_rank) const {
  return expert_shard_rank(layer, expert, etp_rank, expert % edp_);
}

std::vector<int> ParallelState::dense_holders(int layer) const {
  std::vector<int> out;
  const int pp = stage_of_layer(layer);
  for (int dp = 0; dp < dp_; ++dp)
    for (int tp = 0; tp < sizes_.tp; ++tp) out.push_back(dense_rank({tp, dp, pp}));
  return out;
}

int ParallelState::stage_data_slot() const {
  const DenseCoord me = dense_coord();
  return me.tp + sizes_.tp * me.dp;
}

int ParallelState::stage_peer(int offset) const {
  DenseCoord c = dense_coord();
  c.pp += offset;
  MQ_CHECK(c.pp >= 0 && c.pp < sizes_.pp, "rank ", rank_, " has no pipeline stage ", c.pp, " (PP ",
           sizes_.pp, ")");
  return dense_rank(c);
}

int ParallelState::group_index(Group g) const {
  const std::vector<std::vector<int>> groups = all_groups(g);
  for (size_t i = 0; i < groups.size(); ++i)
    for (int r : groups[i])
      if (r == rank_) return static_cast<int>(i);
  MQ_THROW("internal: rank ", rank_, " is in no group of its kind");
}

}  // namespace moequant::parallel
