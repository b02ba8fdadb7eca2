// CheckpointFolder (a Hugging Face model folder's weights) and write_index.
#include "moequant/io/checkpoint_folder.h"

#include <mutex>
#include <set>

#include <nlohmann/json.hpp>

#include "moequant/common/error.h"
#include "moequant/common/limited_json.h"
#include "moequant/common/regular_file.h"
#include "posix_file.h"

namespace moequant::io {

namespace detail {

// Everything a CheckpointFolder knows; fixed after open() except for the lazily opened shards.
struct FolderState {
  std::string dir;
  std::string index_path;                                      // empty for a single-file checkpoint
  std::vector<std::string> files;                              // distinct weight files, sorted
  std::map<std::string, size_t> file_of;                       // tensor name -> index into files
  std::vector<std::vector<const std::string*>> names_by_file;  // keys of file_of, per file
  std::mutex mutex;                                            // guards shards
  std::vector<std::unique_ptr<SafetensorsFile>> shards;        // opened on first use
};

}  // namespace detail

namespace {

using json = nlohmann::json;

std::string path_in(const std::string& dir, const std::string& file) {
  if (dir.empty()) return file;
  return dir.back() == '/' ? dir + file : dir + "/" + file;
}

// A weight file must sit directly in the folder: no path separators, no "..".
bool is_plain_file_name(const std::string& f) {
  return !f.empty() && f != "." && f != ".." && f.find('/') == std::string::npos &&
         f.find('\0') == std::string::npos;
}

// Reads and checks model.safetensors.index.json into `s` (files, file_of, names_by_file).
void load_index(detail::FolderState& s) {
  const std::string& path = s.index_path;
  JsonLimits limits;
  limits.unique_keys = true;  // a tensor listed twice in a weight_map is a broken index
  const json root = read_json_file(path, kMaxIndexFileBytes, limits);
  MQ_CHECK(root.is_object(), path, ": must be a JSON object, got ", root.type_name());

  if (root.contains("metadata")) {
    const json& meta = root.at("metadata");
    MQ_CHECK(meta.is_object(), path, ": \"metadata\" must be an object, got ", meta.type_name());
    if (meta.contains("total_size"))
      MQ_CHECK(meta.at("total_size").is_number_unsigned(), path,
               ": \"metadata.total_size\" must be a non-negative integer, got ",
               meta.at("total_size").dump());
  }

  MQ_CHECK(root.contains("weight_map"), path, ": missing \"weight_map\"");
  const json& map = root.at("weight_map");
  MQ_CHECK(map.is_object(), path, ": \"weight_map\" must be an object, got ", map.type_name());
  MQ_CHECK(!map.empty(), path, ": \"weight_map\" lists no tensors");

  std::map<std::string, std::string> file_by_name;
  std::set<std::string> files;
  for (const auto& [name, file] : map.items()) {
    MQ_CHECK(file.is_string(), path, ": weight_map: tensor '", name,
             "' must map to a file name, got ", file.type_name());
    const std::string& f = file.get_ref<const std::string&>();
    MQ_CHECK(is_plain_file_name(f), path, ": weight_map: tensor '", name, "' maps to '", f,
             "', which is not a file name inside the folder");
    file_by_name.emplace(name, f);
    if (files.insert(f).second)
      MQ_CHECK(detail::is_regular_file(path_in(s.dir, f)), path, ": weight_map: tensor '", name,
               "' maps to '", f, "', which does not exist in ", s.dir);
  }

  s.files.assign(files.begin(), files.end());
  std::map<std::string, size_t> file_index;
  for (size_t i = 0; i < s.files.size(); ++i) file_index.emplace(s.files[i], i);
  s.names_by_file.resize(s.files.size());
  for (const auto& [name, f] : file_by_name) {
    const auto it = s.file_of.emplace(name, file_index.at(f)).first;
    s.names_by_file[it->second].push_back(&it->first);
  }
}

// The shard must hold exactly the tensors the index maps to it.
void check_shard_against_index(const detail::FolderState& s, size_t i,
                               const SafetensorsFile& shard) {
  for (const TensorInfo& t : shard.tensors()) {
    const auto it = s.file_of.find(t.name);
    MQ_CHECK(it != s.file_of.end(), shard.path(), ": holds tensor '", t.name, "', which ",
             s.index_path, " does not list");
    MQ_CHECK(it->second == i, shard.path(), ": holds tensor '", t.name, "', which ", s.index_path,
             " maps to '", s.files[it->second], "'");
  }
  for (const std::string* name : s.names_by_file[i])
    MQ_CHECK(shard.find(*name) != nullptr, s.index_path, ": weight_map: tensor '", *name,
             "' maps to '", s.files[i], "', which does not hold it");
}

}  // namespace

CheckpointFolder::CheckpointFolder(std::unique_ptr<detail::FolderState> state)
    : state_(std::move(state)) {}
CheckpointFolder::CheckpointFolder(CheckpointFolder&&) noexcept = default;
CheckpointFolder& CheckpointFolder::operator=(CheckpointFolder&&) noexcept = default;
CheckpointFolder::~CheckpointFolder() = default;

CheckpointFolder CheckpointFolder::open(const std::string& dir) {
  auto s = std::make_unique<detail::FolderState>();
  s->dir = dir;
  const std::string single = path_in(dir, kSingleFileName);
  const std::string index = path_in(dir, kIndexFileName);
  if (detail::is_regular_file(single)) {
    // The single file wins, as in transformers; but an index beside it that names a shard which
    // does not exist is a stale leftover of another save, and is refused naming the file rather
    // than silently ignored.
    if (detail::is_regular_file(index)) {
      detail::FolderState other;
      other.dir = dir;
      other.index_path = index;
      load_index(other);  // throws naming a shard file that does not exist
    }
    auto file = std::make_unique<SafetensorsFile>(SafetensorsFile::open(single));
    s->files = {kSingleFileName};
    s->names_by_file.resize(1);
    for (const TensorInfo& t : file->tensors()) s->file_of.emplace(t.name, 0);
    s->shards.push_back(std::move(file));
  } else {
    MQ_CHECK(detail::is_regular_file(index), dir, ": no ", kSingleFileName, " and no ",
             kIndexFileName, " (not a Hugging Face safetensors checkpoint)");
    s->index_path = index;
    load_index(*s);
    s->shards.resize(s->files.size());
  }
  return CheckpointFolder(std::move(s));
}

const SafetensorsFile& CheckpointFolder::shard(size_t i) const {
  detail::FolderState& s = *state_;
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.shards[i]) {
    auto file =
        std::make_unique<SafetensorsFile>(SafetensorsFile::open(path_in(s.dir, s.files[i])));
    check_shard_against_index(s, i, *file);
    s.shards[i] = std::move(file);
  }
  return *s.shards[i];
}

size_t CheckpointFolder::file_index_of(const std::string& name) const {
  const auto it = state_->file_of.find(name);
  MQ_CHECK(it != state_->file_of.end(), state_->dir, ": no tensor '", name, "' in this checkpoint");
  return it->second;
}

const std::string& CheckpointFolder::dir() const {
  return state_->dir;
}
bool CheckpointFolder::sharded() const {
  return !state_->index_path.empty();
}

std::vector<std::string> CheckpointFolder::names() const {
  std::vector<std::string> out;
  out.reserve(state_->file_of.size());
  for (const auto& entry : state_->file_of) out.push_back(entry.first);
  return out;
}

bool CheckpointFolder::has(const std::string& name) const {
  return state_->file_of.count(name) > 0;
}

const TensorInfo& CheckpointFolder::info(const std::string& name) const {
  const TensorInfo* t = shard(file_index_of(name)).find(name);
  MQ_CHECK(t != nullptr, state_->dir, ": no tensor '", name, "' in this checkpoint");
  return *t;
}

const uint8_t* CheckpointFolder::data(const std::string& name) const {
  const SafetensorsFile& file = shard(file_index_of(name));
  const TensorInfo* t = file.find(name);
  MQ_CHECK(t != nullptr, state_->dir, ": no tensor '", name, "' in this checkpoint");
  return file.data(*t);
}

void CheckpointFolder::release(const TensorSpan& span) const {
  const SafetensorsFile& file = shard(file_index_of(span.name));
  const TensorInfo* t = file.find(span.name);
  MQ_CHECK(t != nullptr, state_->dir, ": no tensor '", span.name, "' in this checkpoint");
  file.release(*t, span.offset, span.nbytes);
}

void CheckpointFolder::prefetch(const TensorSpan& span) const {
  const SafetensorsFile& file = shard(file_index_of(span.name));
  const TensorInfo* t = file.find(span.name);
  MQ_CHECK(t != nullptr, state_->dir, ": no tensor '", span.name, "' in this checkpoint");
  file.prefetch(*t, span.offset, span.nbytes);
}

std::string CheckpointFolder::file_of(const std::string& name) const {
  return state_->files[file_index_of(name)];
}

std::vector<std::string> CheckpointFolder::files() const {
  return state_->files;
}

void CheckpointFolder::validate_all() const {
  for (size_t i = 0; i < state_->files.size(); ++i) shard(i);
}

void write_index(const std::string& path, uint64_t total_size,
                 const std::map<std::string, std::string>& weight_map) {
  for (const auto& [name, file] : weight_map)
    MQ_CHECK(is_plain_file_name(file), path, ": tensor '", name, "' maps to '", file,
             "', which is not a file name inside the folder");
  json index;
  index["metadata"]["total_size"] = total_size;
  index["weight_map"] = weight_map;
  std::string text;
  try {
    text = index.dump(2) + "\n";  // std::map-backed json: keys come out sorted
  } catch (const json::exception& e) {
    MQ_THROW(path, ": cannot serialize the index: ", e.what());
  }
  detail::write_whole_file(path, text);
}

}  // namespace moequant::io
