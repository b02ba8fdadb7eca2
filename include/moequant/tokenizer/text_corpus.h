// Calibration text: the samples of a .jsonl file (one JSON object per line with a string field
// "text") or of a .txt file (samples separated by blank lines).
#pragma once

#include <string>
#include <vector>

namespace moequant::tokenizer {

// The samples of `path`, in file order, as valid UTF-8.
//   .jsonl: every non-blank line is a JSON object whose "text" is a string (other fields are
//           ignored); a sample may be empty.
//   .txt:   runs of non-blank lines, joined with '\n' (a line's '\r' before '\n' is dropped); a
//           blank line holds nothing but spaces, tabs or '\r'.
// A UTF-8 byte order mark at the start is skipped. Throws moequant::Error naming the file (and
// file:line for a bad .jsonl line): unreadable or non-regular file (read_regular_file), other
// extension, invalid UTF-8 (with its byte offset), a malformed line, a missing or non-string
// "text", no samples at all.
std::vector<std::string> read_text_samples(const std::string& path);

// The same from the file's content, already read (once) by the caller; `path` names it in
// errors and decides the kind (.jsonl or .txt).
std::vector<std::string> text_samples_from(const std::string& content, const std::string& path);

}  // namespace moequant::tokenizer
