// PointerMap: an open-addressing hash map from object addresses to small values.
//
// The engine looks up every tensor an op touches (which node made it, is it state or a feed)
// and records every output: a few lookups and inserts per op on the co-execution hot path.
// std::unordered_map allocates a node per insert; this map keeps one flat array whose
// capacity survives clear(), so a steady loop allocates nothing. The engine forgets a whole
// iteration at once (clear), and erases entries of tensors that died young (erase).
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

  // Removes `key`'s entry, if any (backward-shift deletion: no tombstones, so lookups stay as
  // short as before).
  void erase(Key key) {
    std::size_t hole = probe(key);
    if (slots_[hole].key != key) return;
    slots_[hole] = Slot{};
    --size_;
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t next = (hole + 1) & mask; slots_[next].key != nullptr;
         next = (next + 1) & mask) {
      // An entry moves into the hole unless its home slot lies after the hole, up to it.
      const std::size_t home = home_of(slots_[next].key);
      const bool home_in_between =
          hole <= next ? (hole < home && home <= next) : (hole < home || home <= next);
      if (home_in_between) continue;
      slots_[hole] = std::move(slots_[next]);
      slots_[next] = Slot{};
      hole = next;
    }
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

  // Calls visit(key, value) for every entry.
  template <class Visit>
  void for_each(Visit visit) {
    for (Slot& slot : slots_) {
      if (slot.key != nullptr) visit(slot.key, *slot.value);
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
    std::size_t index = home_of(key);
    while (slots_[index].key != nullptr && slots_[index].key != key) index = (index + 1) & mask;
    return index;
  }

  // The slot where probing for `key` starts.
  std::size_t home_of(Key key) const {
    // Allocations are aligned: drop the low bits, then mix (Fibonacci hashing).
    auto bits = reinterpret_cast<std::uintptr_t>(key) >> 4;
    return (bits * 0x9E3779B97F4A7C15ull) >> 20 & (slots_.size() - 1);
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
