#include "kernel/utf8_decoder.hpp"

namespace terra::kernel {
namespace {

constexpr const char* kReplacement = "\xEF\xBF\xBD";

// Length of the sequence a lead byte announces, or 0 when it cannot start one.
std::size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// Whether byte `index` (1-based within the sequence) may follow `lead`; the first
// continuation byte is narrowed to exclude overlongs, surrogates and > U+10FFFF.
bool valid_continuation(unsigned char lead, std::size_t index, unsigned char byte) {
  if ((byte & 0xC0) != 0x80) return false;
  if (index != 1) return true;
  if (lead == 0xE0) return byte >= 0xA0;
  if (lead == 0xED) return byte <= 0x9F;
  if (lead == 0xF0) return byte >= 0x90;
  if (lead == 0xF4) return byte <= 0x8F;
  return true;
}

}  // namespace

std::string utf8_decoder::decode(const char* data, std::size_t size) {
  std::string bytes = std::move(m_pending);
  m_pending.clear();
  bytes.append(data, size);

  std::string out;
  out.reserve(bytes.size());
  std::size_t i = 0;
  while (i < bytes.size()) {
    const auto lead = static_cast<unsigned char>(bytes[i]);
    const std::size_t length = sequence_length(lead);
    if (length == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    std::size_t have = 1;
    while (have < length && i + have < bytes.size() &&
           valid_continuation(lead, have, static_cast<unsigned char>(bytes[i + have]))) {
      ++have;
    }
    if (have == length) {
      out.append(bytes, i, length);
      i += length;
    } else if (i + have == bytes.size()) {
      m_pending = bytes.substr(i);  // may complete with the next chunk
      break;
    } else {
      out += kReplacement;  // a truncated sequence counts as one bad character
      i += have;
    }
  }
  return out;
}

std::string utf8_decoder::finish() {
  std::string out = m_pending.empty() ? std::string() : std::string(kReplacement);
  m_pending.clear();
  return out;
}

}  // namespace terra::kernel
