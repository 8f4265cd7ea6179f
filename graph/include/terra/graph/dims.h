// Dims: the sizes or strides of a tensor, as a value type that holds up to kInline
// dimensions without a heap allocation.
//
// Every traced op records the metadata of each input and output (TensorMeta: sizes and
// strides). With std::vector that was two allocations and two frees per tensor per op, a
// good part of tracing's cost (docs/performance.md); tensors of more than kInline
// dimensions are rare and fall back to the heap.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <vector>

namespace terra::graph {

class Dims {
 public:
  using value_type = std::int64_t;
  using const_iterator = const std::int64_t*;
  using iterator = std::int64_t*;
  static constexpr std::size_t kInline = 6;

  Dims() = default;
  Dims(std::initializer_list<std::int64_t> values) { assign(values.begin(), values.end()); }
  // From a std::vector (JSON, tests and callers that build sizes as vectors).
  Dims(const std::vector<std::int64_t>& values) {  // NOLINT(google-explicit-constructor)
    assign(values.begin(), values.end());
  }
  Dims(const Dims& other) { assign(other.begin(), other.end()); }
  Dims(Dims&& other) noexcept { take(other); }
  Dims& operator=(const Dims& other) {
    if (this != &other) assign(other.begin(), other.end());
    return *this;
  }
  Dims& operator=(Dims&& other) noexcept {
    if (this != &other) take(other);
    return *this;
  }
  ~Dims() = default;

  template <class Iterator>
  void assign(Iterator first, Iterator last) {
    const auto count = static_cast<std::size_t>(std::distance(first, last));
    reserve_exactly(count);
    std::copy(first, last, data());
    size_ = count;
  }
  void assign(std::size_t count, std::int64_t value) {
    reserve_exactly(count);
    std::fill(data(), data() + count, value);
    size_ = count;
  }
  void push_back(std::int64_t value) {
    if (size_ == capacity()) grow(size_ * 2);
    data()[size_++] = value;
  }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::int64_t* data() { return heap_ ? heap_.get() : inline_; }
  const std::int64_t* data() const { return heap_ ? heap_.get() : inline_; }
  std::int64_t& operator[](std::size_t i) { return data()[i]; }
  std::int64_t operator[](std::size_t i) const { return data()[i]; }
  iterator begin() { return data(); }
  iterator end() { return data() + size_; }
  const_iterator begin() const { return data(); }
  const_iterator end() const { return data() + size_; }
  std::vector<std::int64_t> vec() const { return {begin(), end()}; }

  friend bool operator==(const Dims& a, const Dims& b) {
    return a.size_ == b.size_ && std::equal(a.begin(), a.end(), b.begin());
  }
  friend bool operator!=(const Dims& a, const Dims& b) { return !(a == b); }

 private:
  std::size_t capacity() const { return heap_ ? heap_capacity_ : kInline; }
  // Room for `count` values; the old contents are not kept (assign overwrites them).
  void reserve_exactly(std::size_t count) {
    if (count <= capacity()) return;
    heap_ = std::make_unique<std::int64_t[]>(count);
    heap_capacity_ = count;
  }
  void grow(std::size_t wanted) {
    wanted = std::max(wanted, kInline * 2);
    auto bigger = std::make_unique<std::int64_t[]>(wanted);
    std::copy(begin(), end(), bigger.get());
    heap_ = std::move(bigger);
    heap_capacity_ = wanted;
  }
  void take(Dims& other) {
    if (other.heap_) {
      heap_ = std::move(other.heap_);
      heap_capacity_ = other.heap_capacity_;
    } else {
      heap_.reset();
      std::copy(other.begin(), other.end(), inline_);
    }
    size_ = other.size_;
    other.size_ = 0;
  }

  std::size_t size_ = 0;
  std::int64_t inline_[kInline] = {};
  std::unique_ptr<std::int64_t[]> heap_;
  std::size_t heap_capacity_ = 0;
};

}  // namespace terra::graph
