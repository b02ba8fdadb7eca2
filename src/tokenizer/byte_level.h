// The byte-level alphabet of GPT-2 (bytes_to_unicode in openai/gpt-2's encoder.py, bytes_char in
// tokenizers): every byte becomes one printable character, so byte-level BPE vocabularies hold
// only printable strings ("Ġ" is the space byte).
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace moequant::tokenizer {

// The UTF-8 encoding of the character that stands for each byte.
const std::array<std::string, 256>& byte_level_alphabet();

// `text` with every byte replaced by its character.
std::string byte_level_encode(std::string_view text);

}  // namespace moequant::tokenizer
