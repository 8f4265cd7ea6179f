#include "terra/graph/trace.h"

#include <stdexcept>
#include <utility>

namespace terra::graph {

void Trace::clear() {
  followed.clear();
  records.clear();
  states.clear();
  feeds.clear();
  constants.clear();
}

std::size_t Trace::append(OpRecord record) {
  records.push_back(std::move(record));
  return steps() - 1;
}

std::size_t Trace::append_followed(NodeId node, bool is_fetch, bool outputs_differ, bool warns) {
  if (!records.empty()) {
    throw std::logic_error("Trace::append_followed: a followed op after a record");
  }
  followed.push_back({node, is_fetch, outputs_differ, warns});
  return steps() - 1;
}

void Trace::mark_fetch(std::size_t step) {
  if (step >= steps()) throw std::out_of_range("Trace::mark_fetch: no such step");
  if (step < followed.size()) {
    followed[step].is_fetch = true;
  } else {
    records[step - followed.size()].flags.is_fetch = true;
  }
}

std::vector<std::size_t> Trace::fetch_points() const {
  std::vector<std::size_t> points;
  for (std::size_t i = 0; i < followed.size(); ++i) {
    if (followed[i].is_fetch) points.push_back(i);
  }
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (records[i].flags.is_fetch) points.push_back(followed.size() + i);
  }
  return points;
}

}  // namespace terra::graph
