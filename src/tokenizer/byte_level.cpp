#include "byte_level.h"

#include "utf8.h"

namespace moequant::tokenizer {

namespace {

// Printable Latin-1 bytes stand for themselves; the others (controls, space, soft hyphen...) take
// the code points 256, 257, ... in byte order.
std::array<std::string, 256> make_alphabet() {
  std::array<std::string, 256> chars;
  const auto keeps_itself = [](int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  };
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const uint32_t cp = keeps_itself(b) ? static_cast<uint32_t>(b) : next++;
    append_utf8(cp, chars[b]);
  }
  return chars;
}

}  // namespace

const std::array<std::string, 256>& byte_level_alphabet() {
  static const std::array<std::string, 256> alphabet = make_alphabet();
  return alphabet;
}

std::string byte_level_encode(std::string_view text) {
  const auto& alphabet = byte_level_alphabet();
  std::string out;
  out.reserve(text.size() * 2);
  for (char c : text) out += alphabet[static_cast<unsigned char>(c)];
  return out;
}

}  // namespace moequant::tokenizer
