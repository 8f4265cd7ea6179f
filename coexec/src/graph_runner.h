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
#include <c10/util/SmallVector.h>
#include <c10/util/flat_hash_map.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "op_warnings.h"

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
  c10::DispatchKeySet keys;  // the dense backend key (CPU or CUDA), below autograd
};

// The runner's promise of one placeholder's memory (CPU placeholders only; see
// GraphRunner::hold_arguments). Shared by the producing WorkItem, the runner's list of
// promises and the HeldTensors of ops that read the placeholder before it was filled. `lock`
// guards `readers` and the transition to `done`; the runner holds it while it fills
// `target`, so once `done` reads true (acquire) the placeholder's DataPtr is final and the
// Python thread may share it.
struct PendingOutput : c10::intrusive_ptr_target {
  c10::weak_intrusive_ptr<c10::StorageImpl> target{c10::intrusive_ptr<c10::StorageImpl>()};
  c10::StorageImpl* key = nullptr;  // the placeholder's address (kept unique by `target`)
  // Ops queued before the placeholder was filled that read it (guarded by `lock` until
  // `done`; then counted down by the runner as they run). They read `data`: a share of the
  // allocation the producer gives the placeholder, dropped when the last of them ran.
  std::int32_t readers = 0;
  c10::DataPtr data;
  std::atomic<bool> done{false};
  std::atomic<bool> lock{false};
};

// A tensor argument of a queued op as the runner rebuilds it right before the op runs (see
// GraphRunner::hold_arguments): its metadata at queue time and a handle on its memory that
// raises the use count of no TensorImpl or StorageImpl the program can see.
struct HeldTensor {
  std::uint32_t argument = 0;      // index into WorkItem::arguments
  std::int32_t element = -1;       // position in that (tensor or optional tensor) list; -1: itself
  std::int32_t same_storage = -1;  // an earlier record of this op over the same program storage
  // Where the memory comes from: the program's own StorageImpl (alias path); or a promise
  // whose producer had not run (the runner takes a share of its memory); or `data`, a share
  // of the program storage's allocation (or nothing, when it has no memory). The runner builds
  // its own StorageImpl (`storage`) for the last two.
  c10::intrusive_ptr<c10::StorageImpl> storage;
  c10::intrusive_ptr<PendingOutput> promise;
  c10::DataPtr data;
  std::int64_t nbytes = 0;
  c10::Allocator* allocator = nullptr;
  bool resizable = false;
  bool runner_owned = false;  // `storage` was built by the runner (not the program's alias)
  c10::DispatchKeySet keys;
  caffe2::TypeMeta dtype;
  std::int64_t storage_offset = 0;
  c10::SmallVector<std::int64_t, 5> sizes, strides;
};

// True when `tensor` is laid out as `spec` says: sizes, strides, offset, dtype, device.
bool same_layout(const OutputSpec& spec, const at::Tensor& tensor);

// True when `data` is a share of an allocation the runner and the program both hold (the
// memory of a default-allocator tensor, given another owner: graph_runner.cpp).
bool is_runner_share(const c10::DataPtr& data);

// One confirmed op: everything needed to run it exactly as eager would have. Work items live
// in the runner's ring and are reused: clear() keeps the vectors' capacity, so a steady loop
// queues ops without allocating them, and what the Python thread allocated is freed by the
// Python thread when it reuses the slot. (A field that holds a reference must be released
// in clear().)
struct WorkItem {
  std::optional<c10::OperatorHandle> op;
  c10::DispatchKeySet keys;  // the dispatch keys below interception
  // The caller's thread-local included/excluded keys.
  c10::DispatchKeySet tls_included, tls_excluded;
  c10::AutogradState autograd_state{false, false, false, false};
  // The boxed arguments, actual values; after GraphRunner::hold_arguments, the tensors it
  // holds are undefined here and described by `held` until the runner rebuilds them.
  std::vector<c10::IValue> arguments;
  std::vector<HeldTensor> held;
  // Per flattened tensor output: the placeholder's storage to fill (null when the output is
  // an argument itself or undefined), described by specs[i]. Held weakly: tensor and storage
  // use counts stay as in eager (autograd accumulates a gradient in place, and AccumulateGrad
  // steals one, only when nobody else holds it); a placeholder Python already dropped is
  // simply not filled.
  std::shared_ptr<const std::vector<OutputSpec>> specs;
  std::vector<c10::weak_intrusive_ptr<c10::StorageImpl>> storages;
  // Per flattened output, set by GraphRunner::commit for CPU placeholders (whose weak storage
  // moves from `storages` into the promise): the runner fills them through it.
  std::vector<c10::intrusive_ptr<PendingOutput>> pending;
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
  // commit() registers the op's CPU placeholders as pending (see hold_arguments).
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
  // The same for every op committed so far, from any thread (the engine's thread has the one
  // wake-up of wait_until_finished; other threads poll). Releases a hold.
  void wait_for_committed_from_any_thread();
  // Makes the boxed arguments of an op about to be pushed safe to hold while queued, without
  // raising the use count of any TensorImpl or StorageImpl the program can see (autograd reads
  // both: InputBuffer accumulates a gradient in place only when `use_count() == 1 &&
  // storage().use_count() == 1`, AccumulateGrad steals one only when `use_count()` allows).
  // Each plain tensor (also inside lists; not a wrapped Python number, which nobody else can
  // see) is replaced by a HeldTensor: its metadata at this moment and a handle on its memory,
  // from which the runner builds a TensorImpl over a StorageImpl of its own right before the
  // op runs (the Python thread allocates nothing per tensor). The handle:
  // - memory that exists (a parameter, a feed, a filled placeholder): a share of the
  //   allocation through a refcounted DataPtr context (the program storage's DataPtr is made
  //   a share once; see SharedAllocation in graph_runner.cpp);
  // - a placeholder whose producer has not run yet: its promise, through which the producer
  //   shares the memory it gives the placeholder (also when Python dropped the placeholder);
  // - anything else (CUDA, memory of other allocators: numpy, shared memory, pinned,
  //   copy-on-write): the program's StorageImpl itself (a storage alias, as before: its use
  //   count is raised while queued). Sparse, wrapper and symbolic tensors stay as they are.
  // Tensors of one op over one program StorageImpl get one runner-side StorageImpl, so that
  // overlap checks (Storage::is_alias_of) see what eager sees. Engine thread only; the item
  // must be pushed next.
  void hold_arguments(WorkItem& item);
  // Blocks until every queued op ran (or was dropped after an error). Releases a hold.
  void wait_idle();
  // True while queued work remains (cheap, lock-free). Once false, what the ops did, an
  // error included, is visible (take_error).
  bool pending() const { return outstanding() > 0; }
  // Ops queued and not yet finished (cheap, lock-free).
  std::int64_t outstanding() const {
    return static_cast<std::int64_t>(tail_.load(std::memory_order_relaxed) -
                                     head_.load(std::memory_order_acquire));
  }
  // True when one more op may be queued: fewer than `max_items` (and kCapacity) are
  // outstanding and their estimated run time (count x the recent mean op time) is below
  // `max_lag_s`. A bound <= 0 is off. Cheap, lock-free: the producer's fast path, which reads what
  // the runner writes only once per kRoomBudget ops while the queue is short (engine thread only).
  bool has_room(std::int64_t max_items, double max_lag_s);
  // Backpressure, after has_room() said no: blocks until half the queued ops finished (so at
  // most about half the lag bound), the runner failed or stopped. Releases a hold.
  void wait_for_room();
  // Replaces the recent mean op time with an estimate from elsewhere (a region's eager ops
  // while traced), so the first co-executed ops are bounded before the runner timed any.
  void seed_mean_op_time(double seconds) {
    if (seconds > 0) mean_op_seconds_.store(seconds, std::memory_order_relaxed);
  }
  // True after an op failed; cleared by take_error().
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  // The first error since the last call, or null. Ops queued after a failure are dropped.
  std::exception_ptr take_error();
  // Warnings the kernels of queued ops raised on the runner thread (op_warnings.h).
  RunnerWarnings& warnings() { return warnings_; }
  // While held, no new op starts (test hook); wait_idle() releases the hold.
  void set_hold(bool hold);
  // Has the idle runner give its OpenMP team back now, not kIdleBeforeReleasingTeam later,
  // and returns once it did (at most kTeamReleaseWait). Call with nothing queued (after
  // wait_idle): eager code that follows then runs as it would without the runner.
  void release_openmp_team();
  // The intra-op thread count the runner should use (the Python thread's, DESIGN §4).
  void set_num_threads(int threads) { wanted_threads_.store(threads); }
  // Flush-to-zero of denormals is a per-thread CPU mode: the runner takes the program's.
  void set_flush_denormal(bool on) { wanted_flush_denormal_.store(on ? 1 : 0); }
  // Seconds spent executing ops of `region`, and the per-node times measured since the last
  // call (both drained by the engine thread).
  double busy_seconds(int region);
  std::vector<NodeTime> take_node_times();

 private:
  void loop();
  // Blocks until `count` ops finished, the runner failed or stopped; woken by the runner only
  // then. Releases a hold.
  void wait_for_finished(std::uint64_t count);
  // Waits (spinning briefly, then asleep) until an op is queued, the hold is off, or stop;
  // false on stop with nothing queued. Takes and returns `lock` unlocked.
  bool wait_for_work(std::unique_lock<std::mutex>& lock);
  // Runner thread, at the first op after the queue ran empty (see graph_runner.cpp).
  void gather_burst();
  static constexpr std::int64_t kBurstOps = 32;
  static constexpr std::chrono::microseconds kBurstWait{30};
  // The producer blocks on the runner (wait_for_finished, wait_idle): no burst to gather.
  std::atomic<bool> producer_waiting_{false};
  struct WaitingProducer {
    explicit WaitingProducer(std::atomic<bool>& flag) : flag_(flag) { flag_.store(true); }
    ~WaitingProducer() { flag_.store(false); }
    std::atomic<bool>& flag_;
  };
  // Runner thread. Rereads the producer's tail only when the ops it last saw are done.
  bool queue_empty() {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);
    if (head != tail_seen_) return false;
    // seq_cst: read after the runner announced it sleeps (see sleeping_).
    tail_seen_ = tail_.load(std::memory_order_seq_cst);
    return head == tail_seen_;
  }
  // How long the runner stays awake for the next op before it sleeps.
  static constexpr std::chrono::microseconds kSpinTime{100};
  // Idle this long, the runner gives its OpenMP team back (openmp_threads.h): long enough
  // that a co-executed loop's gaps between iterations keep it, short against an eager phase.
  static constexpr std::chrono::milliseconds kIdleBeforeReleasingTeam{20};
  bool openmp_team_may_exist_ = false;   // runner thread only
  bool team_release_requested_ = false;  // under mutex_ (release_openmp_team)
  std::condition_variable team_released_;
  static constexpr std::chrono::milliseconds kTeamReleaseWait{100};
  void execute(WorkItem& item);
  bool hold_tensor(const at::Tensor& tensor, std::uint32_t argument, std::int32_t element,
                   WorkItem& item);
  void forget_settled_promises();
  void register_promises(WorkItem& item);
  void record_time(int region, std::uint32_t node, double seconds);
  // Keeps the runner-built StorageImpls of small inputs of a finished op for a while, so that
  // their shares are released in bursts: each release writes the share count that the Python
  // thread writes when it queues the next reader of the same memory (a parameter read by every
  // step), and a count written by both threads per op moves between the cores twice per op
  // (measured: 84 % of hold_tensor). Large inputs are released at once (memory).
  void defer_small_releases(WorkItem& item);
  static constexpr std::size_t kDeferredReleases = 64;
  static constexpr std::int64_t kDeferredMaxBytes = 64 * 1024;
  std::vector<c10::intrusive_ptr<c10::StorageImpl>> deferred_releases_;  // runner thread only
  void update_mean_op_time(double seconds);

  std::thread thread_;
  mutable std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable idle_;
  // The op the producer waits for finished (wait_for_finished).
  std::condition_variable progress_;
  static constexpr std::uint64_t kNoWaiter = ~std::uint64_t{0};
  std::uint64_t wake_at_finished_ = kNoWaiter;  // under mutex_
  // The ring of work items: the producer owns [tail_, head_ + kCapacity), the runner
  // [head_, tail_). Single producer, single consumer: no lock on the hot path. What each
  // thread writes per op sits on a cache line of its own, and each reads the other's line only
  // when it must (tail_seen_, room_budget_): a line that moves between the cores costs about as
  // much as the rest of queuing an op (measured: a third of the Python side of a small op).
  std::vector<WorkItem> slots_;
  // Written by the runner per op.
  alignas(64) std::atomic<std::uint64_t> head_{0};  // ops finished, published under mutex_
  std::atomic<double> mean_op_seconds_{0.0};        // moving average
  std::atomic<std::int64_t> running_since_ns_{0};   // start of the op running now, 0: none
  std::uint64_t tail_seen_ = 0;                     // the runner's last look at tail_
  // Written by the producer per op.
  alignas(64) std::atomic<std::uint64_t> tail_{0};
  std::int64_t room_budget_ = 0;       // ops has_room() may still grant without looking
  std::int64_t budget_max_items_ = 0;  // the bounds room_budget_ was granted under
  double budget_max_lag_s_ = 0;
  static constexpr std::int64_t kRoomBudget = 32;
  // Written rarely.
  alignas(64) std::atomic<bool> failed_{false};
  std::atomic<int> wanted_threads_{0};
  std::atomic<int> wanted_flush_denormal_{-1};  // -1: never set
  std::exception_ptr error_;
  RunnerWarnings warnings_;
  bool stop_ = false;
  std::atomic<bool> hold_{false};
  // Set by the runner (under mutex_) before it sleeps; commit() then wakes it. Sequentially
  // consistent with the ring's tail, so that a wake-up is never lost.
  std::atomic<bool> sleeping_{false};
  // Runner thread, under mutex_ (per op): a line of their own, away from the flags above,
  // which the producer reads per op.
  alignas(64) std::vector<double> busy_by_region_;
  std::vector<NodeTime> node_times_;
  // Promises of CPU placeholders, in the order their ops were queued, which is the order the
  // runner settles them in: settled ones leave from the front, checked at a commit once
  // kPromiseBatch are listed (engine thread only, like everything below). A promise nobody
  // else holds any more is reused.
  static constexpr std::size_t kPromiseBatch = 32;
  std::deque<c10::intrusive_ptr<PendingOutput>> promises_;
  std::vector<c10::intrusive_ptr<PendingOutput>> spare_promises_;
  // The unsettled ones by placeholder StorageImpl (a settled one may linger until a lookup or
  // the front of `promises_` removes it).
  ska::flat_hash_map<c10::StorageImpl*, PendingOutput*> pending_;
  // hold_arguments: the program storage of each record of the op (the first kHeldScan), and
  // past that, the first record over each program storage.
  static constexpr std::size_t kHeldScan = 8;
  std::vector<c10::StorageImpl*> held_sources_;
  ska::flat_hash_map<c10::StorageImpl*, std::int32_t> held_index_;
};

// Moves the memory of `result` (what the op produced on the runner) into the placeholder
// storage `target` described by `spec`: swaps the data pointer when layouts agree and nobody
// else holds the result, copies otherwise. Throws when the metadata disagree.
void fill_placeholder(const c10::Storage& target, const OutputSpec& spec, at::Tensor result);

}  // namespace terra::coexec
