// Engine::Impl: the engine's state (regions, the running iteration, the GraphRunner) and the
// handling of every intercepted op. Private to coexec/.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/util/SmallVector.h>

#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "backward_replay.h"
#include "call_pattern.h"
#include "external_memory.h"
#include "graph_runner.h"
#include "op_table.h"
#include "pending_accesses.h"
#include "pointer_map.h"
#include "terra/coexec/backward.h"
#include "terra/coexec/engine.h"
#include "terra/graph/cursor.h"
#include "terra/graph/trace_graph.h"

namespace terra::coexec {

struct AutogradWalk;  // autograd_walk.h

using TensorImplRef = c10::weak_intrusive_ptr<c10::TensorImpl>;

// Runtime side table of a node (identity lives in the graph, STYLE.md §4).
// Built on first use and dropped whenever the region's graph merges a trace.
struct NodeRuntime {
  // Shared with queued work items, which outlive a resize of the side table.
  std::shared_ptr<const std::vector<OutputSpec>> outputs;
  std::unique_ptr<CallPattern> pattern;
  // Every tensor input is a CPU scalar (or two): a candidate to run at once (may_run_now).
  bool tiny_cpu_inputs = false;
  // A later op's value check reads this node's output through this many ops (1: directly);
  // 0: none does (check_feeders.cpp).
  std::uint8_t check_feeder_depth = 0;
  // The depth at which this node (a check: 0, or a check feeder) marked the producers of its
  // inputs: the same for every iteration that reaches the node, so marked once, not per
  // iteration (again only from a smaller depth).
  static constexpr std::uint8_t kInputsNotMarked = 0xFF;
  std::uint8_t inputs_marked_at = kInputsNotMarked;
};

struct Region {
  int id = 0;
  std::string key, name, file;
  int line = 0;
  graph::TraceGraph graph;
  std::unique_ptr<graph::Cursor> cursor;
  Phase phase = Phase::kTracing;
  int traced_iterations = 0;
  int fallbacks_in_row = 0;
  bool last_repeated = false;
  Counters counters;
  std::vector<NodeRuntime> runtime;  // by node id
  // Recorded backward passes by the node they start after (backward_replay.h); dropped with
  // the runtimes whenever the graph merges a trace.
  std::unordered_map<graph::NodeId, BackwardBlock> backward_blocks;

  // After a merge: what was built for the old graph's nodes is rebuilt on demand.
  void forget_compiled() {
    runtime.clear();
    backward_blocks.clear();
  }
};

enum class IterationMode { kInactive, kTracing, kCoexecuting, kFallenBack };

// Where the engine has seen a tensor in this iteration.
struct ValueEntry {
  graph::InputRef ref;
  TensorImplRef keep;  // keeps the address unique for the iteration
  // Found through its storage (an autograd shallow copy, or another alias): `ref` is the
  // output last registered over that storage, which may be laid out otherwise.
  bool by_storage = false;
};

struct StorageEntry {
  graph::NodeOutput output;
  c10::weak_intrusive_ptr<c10::StorageImpl> keep;  // keeps the address unique
};

struct Iteration {
  Region* region = nullptr;
  IterationMode mode = IterationMode::kInactive;
  graph::Trace trace;  // tracing: the whole iteration; after a fallback: the rest
  graph::NodeId fallback_from = graph::kRootId;
  std::uint32_t step = 0;  // step of the next op
  PointerMap<c10::TensorImpl*, ValueEntry> values;
  // Outputs by storage: autograd hands saved outputs back as shallow copies (new TensorImpl,
  // same storage), which are still that node's output.
  PointerMap<c10::StorageImpl*, StorageEntry> storages;
  // Ordinal of the next tensor from outside the iteration (State or Feed): one counter, so
  // that one input changing kind does not renumber the others.
  std::int64_t next_external = 0;
  std::uint64_t ops_coexecuted_before = 0;  // the region's count when the iteration began
  // The last outputs registered (a ring): an output found dead once kRecentOutputs more were
  // registered is forgotten at once (note_recent_output), not at the iteration's end. Its entries
  // pin its TensorImpl and StorageImpl (weak references keep the addresses unique), and a
  // pinned object above a freed buffer kept the allocator from reusing the buffer: every
  // temporary of a traced iteration took fresh memory (256 KiB tensors: 2x eager's time).
  // Used while tracing only (register_outputs says why).
  static constexpr std::size_t kRecentOutputs = 8;
  struct RecentOutput {
    c10::TensorImpl* tensor = nullptr;
    c10::StorageImpl* storage = nullptr;
  };
  std::array<RecentOutput, kRecentOutputs> recent_outputs{};
  std::size_t recent_next = 0;
  std::chrono::steady_clock::time_point start;
  // A backward pass being recorded (backward_replay.h), or null.
  std::unique_ptr<BackwardRecording> recording;
  // An op of this iteration on tensors requiring grad had scalar feeds or outputs whose shapes
  // may vary, or saved-tensor hooks were pushed: a recorded backward pass (constant
  // arguments, promised shapes, no Python) may not stand in for the real one.
  bool replay_unsafe = false;

  // Back to a fresh iteration, keeping the tables' capacity (a steady loop allocates none).
  void recycle();
  // Registers `output` as one of the latest outputs; forgets the oldest one if it has died.
  void note_recent_output(c10::TensorImpl* tensor, c10::StorageImpl* storage);
};

// A boxed call seen through the IR: its identity and its tensor inputs in identity order.
struct CallView {
  graph::OpIdentity identity;
  c10::SmallVector<at::Tensor, 6> inputs;         // inline: most ops have few (one malloc per op)
  std::vector<graph::TensorInput> tensor_inputs;  // moved into `identity` once built
  bool bool_index = false;  // a boolean/byte mask among the inputs of aten::index
  // A torch.Generator object among the arguments: the op runs on the Python thread after a
  // sync, so that the generator's state is current whenever Python reads or reseeds it (its
  // methods bypass the dispatcher and cannot be hooked: a C type).
  bool explicit_generator = false;
};

struct Engine::Impl {
  Impl();

  // The boxed kernel of every intercepted op.
  void handle(const c10::OperatorHandle& op, c10::DispatchKeySet keys, torch::jit::Stack* stack);

  void begin_iteration(int region_id);
  // Backward passes (backward_replay.cpp; terra/coexec/backward.h).
  BackwardStart begin_backward(const std::vector<at::Tensor>& roots, bool retain_graph);
  void end_backward(bool completed);
  void end_iteration();
  void abort_iteration();
  void sync();
  // Passes the warnings queued ops raised on the runner thread to this thread's handler and
  // marks their nodes (op_warnings.h).
  void reissue_runner_warnings();

  Region* find_region(int id) const;
  // Moves the runner's per-node times into the graphs (engine thread only).
  void collect_node_times();

  EngineConfig config;
  Hooks hooks;
  GraphRunner runner;
  std::map<int, std::unique_ptr<Region>> regions;
  std::unordered_map<std::string, int> region_by_key;
  int next_region_id = 0;
  int last_region = -1;
  std::unique_ptr<Iteration> iteration;
  std::unique_ptr<Iteration> spare_iteration;  // the last one, recycled
  int nested = 0;  // begin_iteration calls ignored inside an active iteration
  std::string module_path;
  std::string last_fallback;
  double traced_op_seconds = 0;
  std::uint64_t traced_ops = 0;            // ops traced since the engine started (timing samples)
  std::vector<at::Tensor> traced_outputs;  // trace_op's buffer, empty between ops
  PendingAccesses pending_accesses;        // by queued ops, across iterations until a sync
  ExposedStorages exposed;                 // viewed by numpy arrays (external_memory.h)

  // In a forked child (engine.cpp), which has no runner thread: every op runs eagerly.
  void disable_after_fork();

  // The program's other threads (other_threads.cpp). The thread that began the last iteration
  // owns the engine: only it traces and queues. Another Python thread, adopted when it started,
  // is intercepted too, so that its ops on the owner's tensors first wait for what the owner
  // queued before them.
  std::atomic<std::thread::id> owner_thread{};
  // True on an adopted thread other than the owner (an autograd worker, which runs the
  // owner's backward while the owner waits, is not adopted).
  bool on_other_thread() const;
  // An op of such a thread: runs eagerly once every op the owner queued so far finished.
  void run_for_other_thread(const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                            torch::jit::Stack* stack);
  // A read past the dispatcher (Engine::fetch) on a thread other than the owner: the same wait.
  void wait_for_owner_ops();

 private:
  bool build_call(const OpInfo& info, const torch::jit::Stack& stack, Iteration& it,
                  CallView* call);
  graph::InputRef input_ref(const at::Tensor& tensor, Iteration& it);
  void register_outputs(const torch::jit::Stack& stack, std::uint32_t step, Iteration& it);
  // Traces the op as the node a compiled pattern matches at the cursor (Trace::followed);
  // false, having run nothing, when none does or the op needs a full record.
  bool trace_as_followed(const OpInfo& info, const c10::OperatorHandle& op,
                         c10::DispatchKeySet keys, torch::jit::Stack* stack);
  // Runs a traced op on this thread (timing one in kTimeOneOpIn); true when its kernel warned.
  bool run_eagerly_sampling_time(const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                                 torch::jit::Stack* stack);
  void trace_op(const OpInfo& info, const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                torch::jit::Stack* stack, CallView& call);
  // The hot path: the node whose compiled pattern accepts this call, or nullptr when no
  // pattern could decide (then build_call and coexecute_op decide through the IR).
  const graph::Node* match_compiled(const OpInfo& info, const torch::jit::Stack& stack,
                                    Iteration& it);
  void coexecute_op(const OpInfo& info, const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                    torch::jit::Stack* stack, CallView& call);
  // Answers a call the cursor matched to `node`: at once, after a fetch, or queued.
  // `run_now`: sync and run eagerly even where the node could be queued.
  void coexecute_matched(const graph::Node& node, const OpInfo& info, const c10::OperatorHandle& op,
                         c10::DispatchKeySet keys, torch::jit::Stack* stack, bool run_now = false);
  // `snapshot_external`: the op reads external memory (external_memory.h), given as copies.
  void queue_op(const graph::Node& node, const OpInfo& info, const c10::OperatorHandle& op,
                c10::DispatchKeySet keys, torch::jit::Stack* stack, bool snapshot_external);
  // How a matched op must treat its arguments in external memory: none there; copies for the
  // runner; or run now (it writes there, or would copy more than kSnapshotMaxBytes).
  enum class ExternalInputs : std::uint8_t { kNone, kSnapshot, kRunNow };
  ExternalInputs external_inputs(const OpInfo& info, const torch::jit::Stack& stack) const;
  bool is_external(const at::Tensor& tensor) const;
  // Replaces each argument in external memory by a snapshot (for an op that only reads).
  void snapshot_external_arguments(std::vector<c10::IValue>& arguments) const;
  // Before `op` (with its arguments on `stack`) runs at once on the Python thread: waits
  // until it may. An op that reads only waits for the queued ops that write its inputs; one
  // that writes, or draws random numbers (their order on the default generator), waits for
  // everything queued (sync). Rethrows a runner error.
  void wait_before_running_now(const OpInfo& info, const torch::jit::Stack& stack);
  // Waits (GIL released) until the runner finished `needed` committed ops; rethrows its error.
  void wait_until_finished(std::uint64_t needed);
  // For an op with a ValueCheck: waits for the values the check reads (only those: the
  // labels of a batch, not the logits), then true when the kernel may raise on them.
  // The values' producers in this iteration are marked as check feeders (`node`: the
  // checked op).
  bool may_raise_on_values(const graph::Node& node, const OpInfo& info,
                           const torch::jit::Stack& stack);
  // Notes that queued op `sequence` reads (or, when `writes`, writes) every tensor among the
  // last `n` stack values.
  void note_accesses_of_arguments(const torch::jit::Stack& stack, std::size_t n,
                                  std::uint64_t sequence, bool writes);
  // True when `op` touches only tiny CPU storages that no unfinished queued op writes (nor
  // reads, when `op` writes): it may then run at once instead of being queued.
  bool may_run_now(const OpInfo& info, const torch::jit::Stack& stack);
  // Backpressure: blocks (GIL released) while the runner is too far behind (EngineConfig).
  void wait_for_runner_room();
  // Moving average of traced (eager) op times; seeds the runner's estimate for backpressure.
  void note_traced_op_time(double seconds);
  void fall_back(const OpInfo& info, const CallView& call);
  void run_eagerly(const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                   torch::jit::Stack* stack);
  NodeRuntime& node_runtime(Region& region, const graph::Node& node);
  // While a backward pass is recorded: notes the matched op with its arguments.
  void record_backward_op(const graph::Node& node, const OpInfo& info,
                          const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                          const torch::jit::Stack& stack);
  // Turns a finished recording into `block`; false when it cannot be replayed (an op ran at
  // once, or a leaf's .grad did not come from the block).
  bool finish_recording(BackwardRecording& recording, BackwardBlock* block);
  // Issues `block`'s ops for the autograd graph `walk` ran over; false (having done nothing)
  // when some tensor it needs is gone.
  bool replay_backward(const BackwardBlock& block, const AutogradWalk& walk, bool retain_graph);
  // Check feeders (check_feeders.cpp): the producers of the values a value check reads run at
  // once, when their inputs are ready, instead of behind everything queued.
  // Marks the op of this iteration whose output is `tensor` (if any) as a check feeder
  // `depth` ops away from the check (`reader` is at or after it).
  void mark_check_feeder(const graph::Node& reader, const at::Tensor& tensor, std::uint8_t depth);
  // The same for the op at `step` (an ancestor of `reader`); a view passes it on to its bases.
  void mark_check_feeder_at(const graph::Node& reader, std::uint32_t step, std::uint8_t depth);
  // True when `node`, `depth` ops from a check, has yet to mark its inputs' producers at that
  // depth; then they count as marked (the caller marks them now).
  bool take_input_marking(const graph::Node& node, std::uint8_t depth);
  // True when check feeder `node` (`depth` ops from its check) may run now; marks the
  // producers of its inputs in this iteration, one op further from the check.
  bool check_feeder_runs_now(const graph::Node& node, std::uint8_t depth, const OpInfo& info,
                             const torch::jit::Stack& stack);
  // Builds the node runtimes (compiled patterns, output specs) along the path the region's
  // last iteration took.
  void compile_last_path(Region& region);
  Iteration& start_iteration(Region* region);
  // The iteration an end or abort closes; null when it matches a nested begin (counted down
  // here) or no iteration is active.
  std::unique_ptr<Iteration> take_iteration();
  void debug(int level, const std::string& message) const;
};

}  // namespace terra::coexec
