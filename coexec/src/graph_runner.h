// GraphRunner: the C++ thread that executes confirmed ops, in program order, through the
// dispatcher below the interception key, and moves each result into the placeholder that
// Python already holds (DESIGN §3, §5 "Replay").
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/core/AutogradState.h>
#include <c10/core/Stream.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace terra::coexec {

// What a placeholder of one output looks like, decoded once per node from the graph.
struct OutputSpec {
  bool undefined = false;      // the op returned an undefined tensor here
  bool same_as_input = false;  // the output is an input itself (in-place, out=)
  std::int32_t input = -1;
  std::vector<std::int64_t> sizes, strides;
  std::int64_t storage_offset = 0;
  std::size_t nbytes = 0;
  caffe2::TypeMeta dtype;
  c10::Device device{c10::DeviceType::CPU};
  c10::DispatchKeySet keys;
};

// One confirmed op: everything needed to run it exactly as eager would have. Work items live
// in the runner's ring and are reused: clear() keeps the vectors' capacity, so a steady loop
// queues ops without allocating.
struct WorkItem {
  std::optional<c10::OperatorHandle> op;
  c10::DispatchKeySet keys;  // the dispatch keys below interception
  // The caller's thread-local included/excluded keys.
  c10::DispatchKeySet tls_included, tls_excluded;
  c10::AutogradState autograd_state{false, false, false, false};
  std::vector<c10::IValue> arguments;  // the boxed arguments, actual values
  // Per flattened tensor output: the placeholder's storage to fill (null when the output is
  // an argument itself or undefined), described by specs[i]. Held weakly: tensor and storage
  // use counts stay as in eager (autograd accumulates a gradient in place, and AccumulateGrad
  // steals one, only when nobody else holds it); a placeholder Python already dropped is
  // simply not filled.
  std::shared_ptr<const std::vector<OutputSpec>> specs;
  std::vector<c10::weak_intrusive_ptr<c10::StorageImpl>> storages;
  std::optional<c10::Stream> stream;  // the caller's current stream (CUDA)
  int region = -1;
  std::uint32_t node = 0;

  // Drops every reference the item holds; keeps the capacity of its vectors.
  void clear();
};

// Per-node time measured by the runner, collected by the engine on its own thread.
struct NodeTime {
  int region = -1;
  std::uint32_t node = 0;
  double us = 0;
};

class GraphRunner {
 public:
  GraphRunner();
  ~GraphRunner();
  GraphRunner(const GraphRunner&) = delete;
  GraphRunner& operator=(const GraphRunner&) = delete;

  // At most this many ops are outstanding (the ring's size; has_room() keeps to it).
  static constexpr std::int64_t kCapacity = 1024;

  // Queuing a confirmed op, without copying it: the producer (one thread, the engine's)
  // fills next_slot() in place, then commit()s it; it runs after every op queued before it.
  // Precondition of next_slot(): has_room(). abandon() empties a slot the producer could not
  // finish filling.
  WorkItem& next_slot();
  void commit();
  void abandon();
  // Ops are numbered in commit order from 0: the number the next committed op gets.
  std::uint64_t next_sequence() const { return tail_.load(std::memory_order_relaxed); }
  // How many committed ops have finished (ops finish in commit order).
  std::uint64_t finished() const { return head_.load(std::memory_order_acquire); }
  // Blocks until the first `count` committed ops finished, the runner failed or stopped. What
  // those ops wrote is then visible to the caller. Releases a hold.
  void wait_until_finished(std::uint64_t count);
  // Blocks until every queued op ran (or was dropped after an error). Releases a hold.
  void wait_idle();
  // True while queued work remains (cheap, lock-free).
  bool pending() const { return outstanding_.load(std::memory_order_acquire) > 0; }
  // Ops queued and not yet finished (cheap, lock-free).
  std::int64_t outstanding() const { return outstanding_.load(std::memory_order_acquire); }
  // True when one more op may be queued: fewer than `max_items` (and kCapacity) are
  // outstanding and their
  // estimated run time (count x the recent mean op time) is below `max_lag_s`. A bound <= 0
  // is off. Cheap, lock-free: the producer's fast path.
  bool has_room(std::int64_t max_items, double max_lag_s) const;
  // Backpressure: blocks until has_room(), the runner failed or stopped. Every finished op
  // re-checks, so the wait lasts at most about one op's run time per missing slot. Releases
  // a hold.
  void wait_for_room(std::int64_t max_items, double max_lag_s);
  // Replaces the recent mean op time with an estimate from elsewhere (a region's eager ops
  // while traced), so the first co-executed ops are bounded before the runner timed any.
  void seed_mean_op_time(double seconds) {
    if (seconds > 0) mean_op_seconds_.store(seconds, std::memory_order_relaxed);
  }
  // True after an op failed; cleared by take_error().
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  // The first error since the last call, or null. Ops queued after a failure are dropped.
  std::exception_ptr take_error();
  // While held, no new op starts (test hook); wait_idle() releases the hold.
  void set_hold(bool hold);
  // The intra-op thread count the runner should use (the Python thread's, DESIGN §4).
  void set_num_threads(int threads) { wanted_threads_.store(threads); }
  // Seconds spent executing ops of `region`, and the per-node times measured since the last
  // call (both drained by the engine thread).
  double busy_seconds(int region);
  std::vector<NodeTime> take_node_times();

 private:
  void loop();
  // Waits (spinning briefly, then asleep) until an op is queued, the hold is off, or stop;
  // false on stop with nothing queued. Takes and returns `lock` unlocked.
  bool wait_for_work(std::unique_lock<std::mutex>& lock);
  bool queue_empty() const {
    // seq_cst: read after the runner announced it sleeps (see sleeping_).
    return head_.load(std::memory_order_acquire) == tail_.load(std::memory_order_seq_cst);
  }
  static constexpr int kSpinChecks = 200;
  void execute(WorkItem& item);
  void record_time(int region, std::uint32_t node, double seconds);
  void update_mean_op_time(double seconds);

  std::thread thread_;
  mutable std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable idle_;
  // An op finished while the producer waits (for room, or for some op to finish).
  std::condition_variable room_;
  bool room_wanted_ = false;
  std::atomic<double> mean_op_seconds_{0.0};       // moving average, written by the runner only
  std::atomic<std::int64_t> running_since_ns_{0};  // start of the op running now, 0: none
  // The ring of work items: the producer owns [tail_, head_ + kCapacity), the runner
  // [head_, tail_). Single producer, single consumer: no lock on the hot path.
  std::vector<WorkItem> slots_;
  std::atomic<std::uint64_t> head_{0};
  std::atomic<std::uint64_t> tail_{0};
  std::atomic<std::int64_t> outstanding_{0};
  std::atomic<bool> failed_{false};
  std::atomic<int> wanted_threads_{0};
  std::exception_ptr error_;
  bool stop_ = false;
  std::atomic<bool> hold_{false};
  // Set by the runner (under mutex_) before it sleeps; commit() then wakes it. Sequentially
  // consistent with the ring's tail, so that a wake-up is never lost.
  std::atomic<bool> sleeping_{false};
  std::vector<double> busy_by_region_;
  std::vector<NodeTime> node_times_;
};

// Replaces every tensor among `arguments` (also inside tensor lists) by a storage alias: a
// new TensorImpl over the same StorageImpl with the tensor's keys, dtype, sizes, strides and
// offset at this moment. A queued op then keeps its inputs' memory alive without raising the
// use count of the program's tensors, which autograd reads (InputBuffer's in-place
// accumulation, AccumulateGrad stealing a gradient) and must see as in eager.
void alias_tensor_arguments(std::vector<c10::IValue>& arguments);

// Moves the memory of `result` (what the op produced on the runner) into the placeholder
// storage `target` described by `spec`: swaps the data pointer when layouts agree and nobody
// else holds the result, copies otherwise. Throws when the metadata disagree.
void fill_placeholder(const c10::Storage& target, const OutputSpec& spec, at::Tensor result);

}  // namespace terra::coexec
