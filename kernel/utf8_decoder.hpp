// Incremental UTF-8 decoding of byte streams for Jupyter `stream` messages.
#pragma once

#include <cstddef>
#include <string>

namespace terra::kernel {

// Turns arbitrary bytes into valid UTF-8, chunk by chunk: a multi-byte character split
// across two reads is kept whole, and every invalid byte becomes U+FFFD (the way
// Python's `errors="replace"` does), so no message ever carries invalid UTF-8.
class utf8_decoder {
 public:
  // Decodes `size` more bytes; an incomplete trailing sequence is held for the next call.
  std::string decode(const char* data, std::size_t size);
  // Returns what is still held (an incomplete sequence, as U+FFFD) and resets.
  std::string finish();

 private:
  std::string m_pending;
};

}  // namespace terra::kernel
