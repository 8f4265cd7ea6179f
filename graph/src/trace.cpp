#include "terra/graph/trace.h"

#include <stdexcept>
#include <utility>

namespace terra::graph {

void Trace::clear() {
  records.clear();
  states.clear();
  feeds.clear();
  constants.clear();
}

std::size_t Trace::append(OpRecord record) {
  records.push_back(std::move(record));
  return records.size() - 1;
}

void Trace::mark_fetch(std::size_t step) {
  if (step >= records.size()) throw std::out_of_range("Trace::mark_fetch: no such record");
  records[step].flags.is_fetch = true;
}

std::vector<std::size_t> Trace::fetch_points() const {
  std::vector<std::size_t> points;
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (records[i].flags.is_fetch) points.push_back(i);
  }
  return points;
}

}  // namespace terra::graph
