// A generic executor, independent of torch: runs an ExecutionPlan through an op table keyed
// by operator (STYLE §7), holding values in a slot table and freeing each after its last use.
// Templated on the value type: tests use plain numbers, coexec/ instantiates it with
// at::Tensor.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "terra/graph/arg.h"
#include "terra/graph/execution_plan.h"
#include "terra/graph/node.h"

namespace terra::graph {

// What a kernel receives: the node, its arguments for this iteration (ScalarFeeds replaced
// by their fed values) and its tensor inputs in OpIdentity::inputs order.
template <typename Value>
struct KernelCall {
  const Node& node;
  const std::vector<Arg>& args;
  std::vector<Value>& inputs;
};

// A kernel returns one value per output of the node.
template <typename Value>
using Kernel = std::function<std::vector<Value>(KernelCall<Value>&)>;

// Per-op behaviour: kernels keyed by qualified operator name ("aten::add.Tensor"), with a
// fallback on the overload-less name ("aten::add") for kernels that serve every overload.
template <typename Value>
class OpTable {
 public:
  // Registers `kernel` under `qualified_name`, replacing an earlier one.
  void add(const std::string& qualified_name, Kernel<Value> kernel) {
    kernels_[qualified_name] = std::move(kernel);
  }
  // The kernel for `op` (exact overload first, then the bare name), or nullptr.
  const Kernel<Value>* find(const OperatorName& op) const {
    auto it = kernels_.find(op.qualified());
    if (it == kernels_.end()) it = kernels_.find(op.name());
    return it == kernels_.end() ? nullptr : &it->second;
  }

 private:
  std::unordered_map<std::string, Kernel<Value>> kernels_;
};

// Supplies what the plan does not produce itself.
template <typename Value>
class ValueSource {
 public:
  virtual ~ValueSource() = default;
  // The value of a State, Feed, Constant, or a NodeOutput from before the plan's first step.
  virtual Value input(const InputRef& ref) = 0;
  // This iteration's value of argument `arg` of `node`, which is a ScalarFeed.
  virtual Arg scalar(const Node& node, std::size_t arg) = 0;
};

// One run of a plan. Step by step (the GraphRunner executes nodes as they are confirmed)
// or all at once. Not thread-safe; the plan, table and source must outlive it.
template <typename Value>
class Execution {
 public:
  using Observer = std::function<void(const Node&, const std::vector<Value>&)>;

  // Binds every step's kernel up front. Throws ExecutionError for an op without a kernel.
  Execution(const ExecutionPlan& plan, const OpTable<Value>& table, ValueSource<Value>& source)
      : plan_(plan), source_(source), slots_(plan.slot_count()) {
    kernels_.reserve(plan.size());
    for (const PlannedStep& step : plan.steps()) {
      const Kernel<Value>* kernel = table.find(step.node->identity.op());
      if (kernel == nullptr) {
        throw ExecutionError("no kernel for " + step.node->identity.op().qualified());
      }
      kernels_.push_back(kernel);
    }
  }

  // Called with every step's outputs before any is released (e.g. to fill placeholders).
  void set_observer(Observer observer) { observer_ = std::move(observer); }
  bool done() const { return next_ == plan_.size(); }
  // Index of the next step to execute.
  std::size_t next() const { return next_; }

  // Executes the next step, then frees the slots whose last use it was. Throws
  // ExecutionError when the plan is done.
  void step() {
    if (done()) throw ExecutionError("Execution::step: the plan is done");
    const PlannedStep& planned = plan_.step(next_);
    const Node& node = *planned.node;
    std::vector<Value> inputs = gather_inputs(planned);
    std::vector<Arg> fed_args;
    KernelCall<Value> call{node, resolve_args(node, fed_args), inputs};
    std::vector<Value> outputs = (*kernels_[next_])(call);
    if (outputs.size() != node.outputs.size()) {
      throw ExecutionError(node.identity.op().qualified() + " returned " +
                           std::to_string(outputs.size()) + " values, expected " +
                           std::to_string(node.outputs.size()));
    }
    if (observer_) observer_(node, outputs);
    store_outputs(planned, std::move(outputs));
    release(planned);
    ++next_;
  }
  // Executes steps until `end` (default: all).
  void run(std::size_t end = SIZE_MAX) {
    while (!done() && next_ < end) step();
  }

  // The live value of output `output` at iteration step `step`, or nullptr when that value
  // is not (or no longer) held.
  const Value* value(NodeOutput output) const {
    std::uint32_t slot = plan_.slot_of(output);
    if (slot == PlannedInput::kExternal || !slots_[slot]) return nullptr;
    return &*slots_[slot];
  }
  // Number of values the slot table holds right now.
  std::size_t live_values() const { return live_; }
  // Largest live_values() seen so far.
  std::size_t peak_live_values() const { return peak_; }

 private:
  std::vector<Value> gather_inputs(const PlannedStep& planned) {
    std::vector<Value> inputs;
    inputs.reserve(planned.inputs.size());
    for (const PlannedInput& input : planned.inputs) {
      if (input.slot == PlannedInput::kExternal) {
        inputs.push_back(source_.input(input.ref));
      } else {
        if (!slots_[input.slot]) throw ExecutionError("input slot already released");
        inputs.push_back(*slots_[input.slot]);
      }
    }
    return inputs;
  }
  // The node's own args, or a copy with each ScalarFeed replaced by this iteration's value.
  const std::vector<Arg>& resolve_args(const Node& node, std::vector<Arg>& storage) {
    if (!node.identity.has_scalar_feeds()) return node.identity.args();
    storage = node.identity.args();
    for (std::size_t i = 0; i < storage.size(); ++i) {
      if (storage[i].template is<ScalarFeed>()) storage[i] = source_.scalar(node, i);
    }
    return storage;
  }
  void store_outputs(const PlannedStep& planned, std::vector<Value>&& outputs) {
    for (std::size_t i = 0; i < outputs.size(); ++i) {
      slots_[planned.first_output_slot + i] = std::move(outputs[i]);
    }
    live_ += outputs.size();
    if (live_ > peak_) peak_ = live_;
  }
  void release(const PlannedStep& planned) {
    for (std::uint32_t slot : planned.release) {
      if (slots_[slot]) {
        slots_[slot].reset();
        --live_;
      }
    }
  }

  const ExecutionPlan& plan_;
  ValueSource<Value>& source_;
  std::vector<const Kernel<Value>*> kernels_;
  std::vector<std::optional<Value>> slots_;
  Observer observer_;
  std::size_t next_ = 0;
  std::size_t live_ = 0;
  std::size_t peak_ = 0;
};

}  // namespace terra::graph
