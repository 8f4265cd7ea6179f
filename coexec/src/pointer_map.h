// PointerMap: an open-addressing hash map from object addresses to small values.
//
// The engine looks up every tensor an op touches (which node made it, is it state or a feed)
// and records every output: a few lookups and inserts per op on the co-execution hot path.
// std::unordered_map allocates a node per insert; this map keeps one flat array whose
// capacity survives clear(), so a steady loop allocates nothing. Entries are never erased one
// by one: the engine forgets a whole iteration at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace terra::coexec {

template <class Key, class Value>
class PointerMap {
  static_assert(std::is_pointer_v<Key>, "PointerMap keys are addresses");

 public:
  PointerMap() : slots_(kInitialCapacity) {}

  std::size_t size() const { return size_; }

  // The value of `key`, or nullptr.
  Value* find(Key key) {
    Slot& slot = slots_[probe(key)];
    return slot.key == key ? &*slot.value : nullptr;
  }

  // Inserts or replaces the value of `key`.
  void insert_or_assign(Key key, Value value) {
    Slot& slot = slots_[probe(key)];
    if (slot.key == key) {
      slot.value = std::move(value);
      return;
    }
    slot.key = key;
    slot.value.emplace(std::move(value));
    if (++size_ * 2 > slots_.size()) grow();
  }

  // Keeps only the entries for which keep(key, value) is true.
  template <class Keep>
  void retain_if(Keep keep) {
    std::vector<Slot> old(slots_.size());
    old.swap(slots_);
    size_ = 0;
    for (Slot& slot : old) {
      if (slot.key != nullptr && keep(slot.key, *slot.value)) {
        slots_[probe(slot.key)] = std::move(slot);
        ++size_;
      }
    }
  }

  // Forgets every entry (their values are destroyed now); keeps the capacity.
  void clear() {
    if (size_ == 0) return;
    for (Slot& slot : slots_) {
      if (slot.key != nullptr) slot = Slot{};
    }
    size_ = 0;
  }

 private:
  static constexpr std::size_t kInitialCapacity = 64;  // a power of two

  struct Slot {
    Key key = nullptr;
    std::optional<Value> value;  // engaged exactly when key is set
  };

  // The slot holding `key`, or the empty slot where it would go (linear probing; the load
  // factor stays at most 1/2, so an empty slot always exists).
  std::size_t probe(Key key) const {
    const std::size_t mask = slots_.size() - 1;
    // Allocations are aligned: drop the low bits, then mix (Fibonacci hashing).
    auto bits = reinterpret_cast<std::uintptr_t>(key) >> 4;
    std::size_t index = (bits * 0x9E3779B97F4A7C15ull) >> 20 & mask;
    while (slots_[index].key != nullptr && slots_[index].key != key) index = (index + 1) & mask;
    return index;
  }

  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    for (Slot& slot : old) {
      if (slot.key != nullptr) slots_[probe(slot.key)] = std::move(slot);
    }
  }

  std::vector<Slot> slots_;
  std::size_t size_ = 0;
};

}  // namespace terra::coexec
