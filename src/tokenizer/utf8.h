// UTF-8 validation and decoding: every text entering the tokenizer is checked once, so the rest of
// the layer may walk it without checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moequant::tokenizer {

// The byte offset of the first byte that does not start or continue a well-formed UTF-8 sequence
// (overlong forms, surrogates and code points above U+10FFFF are ill-formed), or npos if `text`
// is valid.
size_t find_invalid_utf8(std::string_view text);

// Throws moequant::Error "<source>: invalid UTF-8 at byte offset N (byte 0xHH)" unless `text` is
// valid UTF-8; `base_offset` is added to the offset (text that is a slice of a larger file).
void check_utf8(std::string_view text, std::string_view source, size_t base_offset = 0);

// Length in bytes of the sequence that starts with `lead` (valid UTF-8 assumed).
inline size_t utf8_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

// The code point at text[pos] (valid UTF-8 assumed); its length is utf8_length(text[pos]).
inline uint32_t decode_utf8(std::string_view text, size_t pos) {
  const auto b = [&](size_t i) {
    return static_cast<uint32_t>(static_cast<unsigned char>(text[i]));
  };
  const uint32_t lead = b(pos);
  if (lead < 0x80) return lead;
  if (lead < 0xE0) return ((lead & 0x1F) << 6) | (b(pos + 1) & 0x3F);
  if (lead < 0xF0) return ((lead & 0x0F) << 12) | ((b(pos + 1) & 0x3F) << 6) | (b(pos + 2) & 0x3F);
  return ((lead & 0x07) << 18) | ((b(pos + 1) & 0x3F) << 12) | ((b(pos + 2) & 0x3F) << 6) |
         (b(pos + 3) & 0x3F);
}

// Appends the UTF-8 encoding of code point `cp` (<= U+10FFFF, not a surrogate) to `out`.
void append_utf8(uint32_t cp, std::string& out);

}  // namespace moequant::tokenizer
