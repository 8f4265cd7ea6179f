// SharedString: an immutable string whose copies share one buffer.
//
// Every traced op records the Python file it came from; that file name is the same for
// thousands of records. As a std::string it was an allocation, a copy and a free per op;
// shared, a copy is a reference count. Compared by content, like the string it holds.
#pragma once

#include <memory>
#include <string>
#include <utility>

namespace terra::graph {

class SharedString {
 public:
  SharedString() = default;
  SharedString(std::string text)  // NOLINT(google-explicit-constructor): a string value
      : text_(text.empty() ? nullptr : std::make_shared<const std::string>(std::move(text))) {}
  SharedString(const char* text) : SharedString(std::string(text)) {}  // NOLINT

  const std::string& str() const { return text_ ? *text_ : empty_string(); }
  bool empty() const { return !text_; }

  friend bool operator==(const SharedString& a, const SharedString& b) {
    return a.text_ == b.text_ || a.str() == b.str();
  }
  friend bool operator!=(const SharedString& a, const SharedString& b) { return !(a == b); }

 private:
  static const std::string& empty_string() {
    static const std::string empty;
    return empty;
  }

  std::shared_ptr<const std::string> text_;  // null for ""
};

}  // namespace terra::graph
