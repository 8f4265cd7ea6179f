// PointerMap (coexec/src/pointer_map.h): erase keeps every other entry findable, however the
// probe sequences of colliding keys wrap around the table.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "pointer_map.h"

namespace terra::coexec {
namespace {

using Map = PointerMap<const int*, int>;

TEST(PointerMap, EraseKeepsTheOtherEntriesAgainstAReferenceMap) {
  std::vector<int> objects(4096);  // distinct addresses to use as keys
  std::mt19937 random(7);
  Map map;
  std::map<const int*, int> reference;
  for (int round = 0; round < 20000; ++round) {
    const int* key = &objects[random() % 300];  // few keys: long collision chains
    if (random() % 3 == 0) {
      map.erase(key);
      reference.erase(key);
    } else {
      map.insert_or_assign(key, round);
      reference[key] = round;
    }
    ASSERT_EQ(map.size(), reference.size());
  }
  for (int i = 0; i < 300; ++i) {
    const int* key = &objects[i];
    const int* found = map.find(key);
    auto expected = reference.find(key);
    if (expected == reference.end()) {
      EXPECT_EQ(found, nullptr);
    } else {
      ASSERT_NE(found, nullptr);
      EXPECT_EQ(*found, expected->second);
    }
  }
}

TEST(PointerMap, ErasingAMissingKeyChangesNothing) {
  int a = 0, b = 0;
  Map map;
  map.insert_or_assign(&a, 1);
  map.erase(&b);
  EXPECT_EQ(map.size(), 1u);
  ASSERT_NE(map.find(&a), nullptr);
  EXPECT_EQ(*map.find(&a), 1);
}

}  // namespace
}  // namespace terra::coexec
