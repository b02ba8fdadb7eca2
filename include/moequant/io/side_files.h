// Which files of a model folder travel into its export beside the weights: what a serving engine
// or a user needs to run the checkpoint (tokenizer, generation and chat-template files, remote
// code, README and LICENSE), and nothing else. Weights in other formats (pytorch_model.bin,
// consolidated.*.pt: the full-precision model again) never; links that leave the folder never
// (a link to /etc/passwd would be copied as its content).
#pragma once

#include <string>
#include <vector>

namespace moequant::io {

// True for a file name that is a side file by its name alone (see above).
bool is_side_file_name(const std::string& name);

// The side files of `dir`, sorted by name: each a regular file directly in `dir`, or a symlink
// that resolves to a regular file inside `dir` or inside the blobs folder of the Hugging Face
// cache repository `dir` is a snapshot of (".../snapshots/<rev>" -> ".../blobs/"). Returned as
// paths under `dir`.
std::vector<std::string> select_side_files(const std::string& dir);

}  // namespace moequant::io
