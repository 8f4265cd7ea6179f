// GraphRunner: executes confirmed ops on its own thread (see graph_runner.h).
#include "graph_runner.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/ops/copy_ops.h>
#include <c10/core/Allocator.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <typeinfo>

#include "openmp_threads.h"
#include "placeholder_storage.h"
#include "spin_guard.h"

namespace terra::coexec {
namespace {

using Clock = std::chrono::steady_clock;

// The CPU's hint that this thread spins (it leaves the core's resources to other work).
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#else
  std::this_thread::yield();
#endif
}

// ---------------------------------------------------------------------------------------------
// Shared allocations: one allocation owned by several StorageImpls (the program's and the
// runner's), freed when the last of them lets go. The runner holds a queued op's inputs
// through its own StorageImpls, so the program's StorageImpl use counts stay as in eager.
//
// Not c10::RefcountedDeleterContext (c10/core/RefcountedDeleter.h), although it is made for
// exactly this: its deleter decrements and then re-reads the count (`refcount--; if (refcount
// == 0)`), so when the program drops its tensor on the Python thread while the runner drops a
// finished op's input, both threads can see 0 and free twice. The price of our own context is
// that Storage::is_alias_of does not recognise two of our StorageImpls as aliases (it knows
// only c10's deleter); hold_arguments therefore gives the tensors of one op that share a
// StorageImpl one runner-side StorageImpl, which is all that overlap checks compare.

struct SharedAllocation {
  explicit SharedAllocation(c10::DataPtr allocation) : original(std::move(allocation)) {}
  std::atomic<std::int64_t> shares{1};
  c10::DataPtr original;  // the allocation as its allocator made it; freed with the last share
};

void release_share(void* context) {
  auto* shared = static_cast<SharedAllocation*>(context);
  if (shared->shares.fetch_sub(1, std::memory_order_acq_rel) == 1) delete shared;
}

bool is_share(const c10::DataPtr& data) { return data.get_deleter() == &release_share; }

// Memory that may be shared: an allocation of the default CPU allocator (what CPU kernels,
// factories and placeholders use), or one already shared. Anything else keeps the storage
// alias, because its DataPtr context means something to someone:
//  - CUDA: the caching allocator's recordStream finds its block through the context and
//    silently does nothing for a foreign one (so memory could be reused while another stream
//    still reads it), and IPC and graph pools read it too; pinned host memory likewise
//    (CachingHostAllocator's recordEvent);
//  - numpy arrays (from_numpy), shared memory (DataLoader workers; is_shared() and
//    share_memory_() read the context), mmap'ed files, DLPack imports, copy-on-write storages.
// Those are feeds and state, not gradients, so autograd's counts are not at stake there.
bool shareable(const c10::DataPtr& data) {
  if (is_share(data)) return true;
  if (data.get() == nullptr || data.device().type() != c10::DeviceType::CPU) return false;
  const c10::DeleterFnPtr cpu = c10::GetAllocator(c10::DeviceType::CPU)->raw_deleter();
  return cpu != nullptr && data.get_deleter() == cpu;
}

// `data` (shareable) as the first share of its allocation, unless it is one already. The data
// pointer and device stay; only the context and deleter change.
c10::DataPtr into_share(c10::DataPtr data) {
  if (is_share(data)) return data;
  void* ptr = data.mutable_get();
  const c10::Device device = data.device();
  auto* shared = new SharedAllocation(std::move(data));
  return c10::DataPtr(ptr, shared, &release_share, device);
}

// Another share of the allocation `data` (a share) belongs to.
c10::DataPtr another_share(const c10::DataPtr& data) {
  auto* shared = static_cast<SharedAllocation*>(data.get_context());
  shared->shares.fetch_add(1, std::memory_order_relaxed);
  return c10::DataPtr(const_cast<void*>(data.get()), shared, &release_share, data.device());
}

// Another share of `storage`'s allocation (shareable); makes the storage's own DataPtr a share
// first. The caller makes sure that no other thread reads or writes that DataPtr meanwhile.
c10::DataPtr share_data_ptr(c10::StorageImpl& storage) {
  c10::DataPtr& data = storage._mutable_data_ptr_no_checks();
  if (!is_share(data)) storage.set_data_ptr_noswap(into_share(std::move(data)));
  return another_share(storage._mutable_data_ptr_no_checks());
}

// ---------------------------------------------------------------------------------------------

// The result's memory can become the placeholder's as it is: laid out as promised, and nobody
// else can see the result (a share of an input's memory is never taken: it would make the
// placeholder an alias).
bool can_take_memory(const OutputSpec& spec, const at::Tensor& result) {
  if (!same_layout(spec, result)) return false;
  if (result.use_count() != 1 || !result.has_storage()) return false;
  const c10::Storage& storage = result.storage();
  return storage.use_count() == 1 && storage.nbytes() == spec.nbytes &&
         !is_share(storage.unsafeGetStorageImpl()->_mutable_data_ptr_no_checks());
}

void check_promised(const OutputSpec& spec, const at::Tensor& result) {
  TORCH_CHECK(result.sizes().equals(spec.sizes) && result.dtype() == spec.dtype,
              "terra: the GraphRunner produced ", result.sizes(), " ", result.dtype(),
              " where the graph promised ", c10::IntArrayRef(spec.sizes), " ", spec.dtype);
}

// The flattened tensors of the op's returns, left on the stack by redispatchBoxed.
std::vector<at::Tensor> take_results(torch::jit::Stack& stack) {
  std::vector<at::Tensor> results;
  for (auto& value : stack) {
    if (value.isTensor()) {
      results.push_back(std::move(value).toTensor());
    } else if (value.isTensorList()) {
      for (const at::Tensor& t : value.toTensorList()) results.push_back(t);
    }
  }
  stack.clear();
  return results;
}

// Memory of `spec.nbytes` bytes holding `result` laid out as `spec` promises: the result's own
// allocation when nobody else can see it and its layout agrees (and, with `must_share`, it is
// shareable), else a copy into a new allocation of the device's allocator. Touches no storage
// of the program.
c10::DataPtr produce(const OutputSpec& spec, at::Tensor result, bool must_share) {
  check_promised(spec, result);
  if (can_take_memory(spec, result)) {
    c10::StorageImpl* source = result.storage().unsafeGetStorageImpl();
    if (!must_share || shareable(source->_mutable_data_ptr_no_checks())) {
      return source->set_data_ptr(c10::DataPtr(nullptr, result.device()));
    }
  }
  c10::Allocator* allocator = c10::GetAllocator(spec.device.type());
  at::Tensor copy = at::detail::make_tensor<c10::TensorImpl>(
      c10::Storage(c10::make_intrusive<c10::StorageImpl>(
          c10::StorageImpl::use_byte_size_t(), static_cast<std::int64_t>(spec.nbytes),
          allocator->allocate(spec.nbytes), allocator, /*resizable=*/false)),
      spec.keys, spec.dtype);
  copy.unsafeGetTensorImpl()->set_sizes_and_strides(spec.sizes, spec.strides, spec.storage_offset);
  at::_ops::copy_::redispatch(spec.keys, copy, result, false);  // dense keys, below autograd
  return copy.storage().unsafeGetStorageImpl()->set_data_ptr(
      c10::DataPtr(nullptr, result.device()));
}

// Fills a promised placeholder from the op's result and shares the memory with the ops queued
// before this that read it; settles the promise. Runner thread. The memory is made ready
// first, then swapped into the placeholder without raising its use count.
void fill_promise(PendingOutput& promise, const OutputSpec& spec, at::Tensor result) {
  SpinGuard guard(promise.lock);
  struct Settle {
    PendingOutput& promise;
    ~Settle() { promise.done.store(true, std::memory_order_release); }
  } settle{promise};  // destroyed before `guard`: `done` is published under the lock
  const bool readers = promise.readers > 0;
  if (!readers && promise.target.expired()) return;  // nobody wants the value any more
  c10::DataPtr data = produce(spec, std::move(result), /*must_share=*/readers);
  // Made a share only when queued readers need one now; otherwise the Python thread does it
  // when it queues the first reader of the filled placeholder, if any (measured: no cheaper
  // for the Python side when the runner did it for every output).
  if (readers && shareable(data)) data = into_share(std::move(data));
  if (readers && is_share(data)) {
    promise.data = another_share(data);
  } else if (readers) {
    // Not shareable (a CPU allocator without a raw deleter is installed): the readers keep
    // this memory and the placeholder gets a copy.
    promise.data = std::move(data);
    at::Tensor filled = at::detail::make_tensor<c10::TensorImpl>(
        c10::Storage(c10::make_intrusive<c10::StorageImpl>(
            c10::StorageImpl::use_byte_size_t(), static_cast<std::int64_t>(spec.nbytes),
            c10::DataPtr(promise.data.mutable_get(), promise.data.device()), nullptr,
            /*resizable=*/false)),
        spec.keys, spec.dtype);
    filled.unsafeGetTensorImpl()->set_sizes_and_strides(spec.sizes, spec.strides,
                                                        spec.storage_offset);
    data = produce(spec, std::move(filled), /*must_share=*/true);  // a copy
  }
  // Not locked into a strong reference (placeholder_storage.h): `target` keeps the object.
  if (promise.target.expired()) return;
  c10::DataPtr previous = static_cast<PlaceholderStorage*>(promise.key)->fill(std::move(data));
  // `previous`: nothing, poisoned memory (TERRA_DEBUG_POISON), or `data` if the program
  // released the placeholder meanwhile; freed here, outside the placeholder's gate.
}

}  // namespace

bool same_layout(const OutputSpec& spec, const at::Tensor& tensor) {
  return tensor.sizes().equals(spec.sizes) && tensor.strides().equals(spec.strides) &&
         tensor.storage_offset() == spec.storage_offset && tensor.dtype() == spec.dtype &&
         tensor.device() == spec.device;
}

bool is_runner_share(const c10::DataPtr& data) { return is_share(data); }

void fill_placeholder(const c10::Storage& target, const OutputSpec& spec, at::Tensor result) {
  c10::StorageImpl* impl = target.unsafeGetStorageImpl();
  if (result.storage().unsafeGetStorageImpl() == impl) return;
  if (can_take_memory(spec, result)) {
    c10::StorageImpl* source = result.storage().unsafeGetStorageImpl();
    impl->set_data_ptr_noswap(source->set_data_ptr(c10::DataPtr(nullptr, result.device())));
    return;
  }
  check_promised(spec, result);
  if (impl->data() == nullptr && impl->nbytes() > 0) {
    impl->set_data_ptr_noswap(impl->allocator()->allocate(impl->nbytes()));
  }
  // A plain tensor over the placeholder's storage, below autograd.
  at::Tensor view =
      at::detail::make_tensor<c10::TensorImpl>(c10::Storage(target), spec.keys, spec.dtype);
  view.unsafeGetTensorImpl()->set_sizes_and_strides(spec.sizes, spec.strides, spec.storage_offset);
  at::_ops::copy_::redispatch(spec.keys, view, result, false);  // dense keys, below autograd
}

// Drops what a finished (or dropped) item holds, leaving its vectors' memory to the slot (the
// Python thread frees it when it reuses the slot).
void WorkItem::clear() {
  op.reset();
  arguments.clear();
  held.clear();
  pending.clear();
  specs.reset();
  storages.clear();
  stream.reset();
  region = -1;
  node = 0;
}

// The thread starts in the body, once every member it uses exists.
GraphRunner::GraphRunner() : slots_(kCapacity) {
  thread_ = std::thread([this] {
    c10::WarningUtils::set_warning_handler(&warnings_);  // this thread's handler (op_warnings.h)
    loop();
  });
}

GraphRunner::~GraphRunner() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    hold_ = false;
  }
  work_ready_.notify_all();
  thread_.join();
}

bool GraphRunner::hold_tensor(const at::Tensor& tensor, std::uint32_t argument,
                              std::int32_t element, WorkItem& item) {
  if (!tensor.defined() || !tensor.has_storage()) return false;
  const c10::TensorImpl* impl = tensor.unsafeGetTensorImpl();
  if (typeid(*impl) != typeid(c10::TensorImpl) || impl->has_symbolic_sizes_strides()) {
    return false;
  }
  // A Python number the binding wrapped for this call: nobody else can see it or count it.
  if (impl->is_wrapped_number()) return false;
  c10::StorageImpl* source = impl->unsafe_storage().unsafeGetStorageImpl();
  if (source->sym_nbytes().is_heap_allocated()) return false;
  const auto index = static_cast<std::int32_t>(item.held.size());
  HeldTensor& held = item.held.emplace_back();
  held.argument = argument;
  held.element = element;
  held.keys = impl->key_set();
  held.dtype = impl->dtype();
  held.storage_offset = impl->storage_offset();
  held.sizes.assign(impl->sizes().begin(), impl->sizes().end());
  held.strides.assign(impl->strides().begin(), impl->strides().end());
  // Over a program storage an earlier tensor of this op uses: the same runner-side storage.
  // A scan for the few tensors of most ops, a map for long tensor lists (cat, _foreach_*).
  if (held_sources_.size() < kHeldScan) {
    for (std::size_t k = 0; k < held_sources_.size(); ++k) {
      if (held_sources_[k] == source) {
        held.same_storage = static_cast<std::int32_t>(k);
        break;
      }
    }
    held_sources_.push_back(source);
    if (held_sources_.size() == kHeldScan) {
      for (std::size_t k = kHeldScan; k-- > 0;) held_index_[held_sources_[k]] = k;
    }
  } else {
    auto [found, inserted] = held_index_.emplace(source, index);
    if (!inserted) held.same_storage = found->second;
  }
  if (held.same_storage >= 0) {
    held.same_storage = item.held[held.same_storage].same_storage >= 0
                            ? item.held[held.same_storage].same_storage
                            : held.same_storage;
    return true;
  }
  if (!pending_.empty()) {
    auto found = pending_.find(source);
    if (found != pending_.end()) {
      PendingOutput& promise = *found->second;  // alive: `promises_` holds it
      if (!promise.done.load(std::memory_order_acquire)) {
        SpinGuard guard(promise.lock);
        if (!promise.done.load(std::memory_order_relaxed)) {
          // Not filled, and the runner is not filling it (it would hold the lock): this op
          // reads the memory the producer gives the placeholder, through the promise.
          ++promise.readers;
          held.promise = c10::intrusive_ptr<PendingOutput>::reclaim_copy(found->second);
          held.nbytes = static_cast<std::int64_t>(source->nbytes());
          held.allocator = source->allocator();
          return true;
        }
      }
      pending_.erase(found);  // settled: its DataPtr is final, no longer the runner's business
    }
  }
  c10::DataPtr& data = source->_mutable_data_ptr_no_checks();
  if (shareable(data)) {
    held.data = share_data_ptr(*source);
  } else if (data.get() == nullptr && data.device().type() == c10::DeviceType::CPU) {
    held.data = c10::DataPtr(nullptr, data.device());  // no memory to keep alive
  } else {
    held.storage = c10::intrusive_ptr<c10::StorageImpl>::reclaim_copy(source);  // the alias
    return true;
  }
  held.nbytes = static_cast<std::int64_t>(source->nbytes());
  held.allocator = source->allocator();
  held.resizable = source->resizable();
  return true;
}

void GraphRunner::hold_arguments(WorkItem& item) {
  held_sources_.clear();
  if (!held_index_.empty()) held_index_.clear();
  std::vector<c10::IValue>& arguments = item.arguments;
  for (std::size_t i = 0; i < arguments.size(); ++i) {
    c10::IValue& value = arguments[i];
    const auto argument = static_cast<std::uint32_t>(i);
    if (value.isTensor()) {
      if (hold_tensor(value.toTensor(), argument, -1, item)) value = at::Tensor();
    } else if (value.isTensorList()) {
      c10::List<at::Tensor> tensors;
      std::int32_t k = 0;
      for (const at::Tensor& t : value.toTensorList()) {
        tensors.push_back(hold_tensor(t, argument, k++, item) ? at::Tensor() : t);
      }
      value = std::move(tensors);
    } else if (value.isList()) {
      // Optional tensor lists (aten::index): hold the tensors, keep the Nones.
      c10::List<c10::IValue> items = value.toList();
      bool has_tensor = false;
      for (const c10::IValue& element : items) has_tensor = has_tensor || element.isTensor();
      if (!has_tensor) continue;
      c10::impl::GenericList copy(items.elementType());
      std::int32_t k = 0;
      for (const c10::IValue& element : items) {
        const bool held = element.isTensor() && hold_tensor(element.toTensor(), argument, k, item);
        copy.push_back(held ? c10::IValue() : element);
        ++k;
      }
      value = std::move(copy);
    }
  }
}

void GraphRunner::forget_settled_promises() {
  while (!promises_.empty() && promises_.front()->done.load(std::memory_order_acquire)) {
    c10::intrusive_ptr<PendingOutput> promise = std::move(promises_.front());
    promises_.pop_front();
    auto found = pending_.find(promise->key);
    if (found != pending_.end() && found->second == promise.get()) pending_.erase(found);
    if (promise.use_count() == 1 && spare_promises_.size() < 64) {
      std::atomic_thread_fence(std::memory_order_acquire);  // the runner is done with it
      promise->target =
          c10::weak_intrusive_ptr<c10::StorageImpl>(c10::intrusive_ptr<c10::StorageImpl>());
      promise->data.clear();
      promise->readers = 0;
      promise->done.store(false, std::memory_order_relaxed);
      spare_promises_.push_back(std::move(promise));
    }
  }
}

void GraphRunner::register_promises(WorkItem& item) {
  for (std::size_t i = 0; i < item.storages.size(); ++i) {
    c10::StorageImpl* placeholder = item.storages[i]._unsafe_get_target();
    if (placeholder == nullptr || !item.specs || !(*item.specs)[i].device.is_cpu()) continue;
    if (item.pending.empty()) item.pending.resize(item.storages.size());
    c10::intrusive_ptr<PendingOutput> promise;
    if (spare_promises_.empty()) {
      promise = c10::make_intrusive<PendingOutput>();
    } else {
      promise = std::move(spare_promises_.back());
      spare_promises_.pop_back();
    }
    promise->target = std::move(item.storages[i]);
    promise->key = placeholder;
    pending_[placeholder] = promise.get();
    promises_.push_back(promise);
    item.pending[i] = std::move(promise);
  }
}

WorkItem& GraphRunner::next_slot() {
  return slots_[tail_.load(std::memory_order_relaxed) % kCapacity];
}

void GraphRunner::commit() {
  // In batches: reading a promise the runner just settled costs a cache-line transfer.
  if (promises_.size() >= kPromiseBatch) forget_settled_promises();
  register_promises(next_slot());
  --room_budget_;
  tail_.store(tail_.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_seq_cst)) {
    // Taking the mutex orders this wake-up after the runner's last look at the ring.
    { std::lock_guard<std::mutex> lock(mutex_); }
    work_ready_.notify_one();
  }
}

void GraphRunner::abandon() { next_slot().clear(); }

void GraphRunner::wait_idle() {
  const WaitingProducer waiting(producer_waiting_);
  std::unique_lock<std::mutex> lock(mutex_);
  if (hold_) {
    hold_ = false;
    work_ready_.notify_one();
  }
  idle_.wait(lock, [this] { return !pending(); });
}

bool GraphRunner::has_room(std::int64_t max_items, double max_lag_s) {
  // Within the budget the last full check granted under the same bounds, the queue cannot
  // have grown past them (it only shrinks meanwhile). A lag bound may be overshot by that
  // many ops of the mean op time when a long op starts among them.
  if (room_budget_ > 0 && max_items == budget_max_items_ && max_lag_s == budget_max_lag_s_) {
    return true;
  }
  budget_max_items_ = max_items;
  budget_max_lag_s_ = max_lag_s;
  const std::int64_t queued = outstanding();
  room_budget_ = 0;
  if (queued >= kCapacity || (max_items > 0 && queued >= max_items)) return false;
  // The op running now has taken at least its elapsed time: a lower bound of the op cost
  // that also holds before the first op finished (no mean yet) and for one huge op.
  double op_seconds = max_lag_s > 0 ? mean_op_seconds_.load(std::memory_order_relaxed) : 0.0;
  const std::int64_t since =
      max_lag_s > 0 && queued > 0 ? running_since_ns_.load(std::memory_order_relaxed) : 0;
  if (since != 0 && static_cast<double>(queued) * op_seconds < max_lag_s) {
    const std::int64_t now = Clock::now().time_since_epoch() / std::chrono::nanoseconds(1);
    op_seconds = std::max(op_seconds, static_cast<double>(now - since) * 1e-9);
  }
  if (max_lag_s > 0 && queued > 0 && static_cast<double>(queued) * op_seconds >= max_lag_s) {
    return false;
  }
  // Ops that fit by this estimate, up to kRoomBudget, need no further look.
  std::int64_t fits = kRoomBudget;
  if (max_items > 0) fits = std::min(fits, max_items - queued);
  if (max_lag_s > 0) {
    // No op timed yet: one at a time, as the elapsed time of the running op bounds the lag.
    fits = op_seconds > 0
               ? std::min(fits, static_cast<std::int64_t>(max_lag_s / op_seconds) - queued)
               : 1;
  }
  fits = std::min(fits, kCapacity - queued);
  room_budget_ = std::max<std::int64_t>(fits, 0);
  return true;
}

void GraphRunner::wait_for_finished(std::uint64_t count) {
  const WaitingProducer waiting(producer_waiting_);
  std::unique_lock<std::mutex> lock(mutex_);
  if (hold_) {
    hold_ = false;
    work_ready_.notify_one();
  }
  wake_at_finished_ = count;  // the runner notifies `progress_` once that many finished
  progress_.wait(lock, [&] {
    return stop_ || failed_.load(std::memory_order_acquire) || finished() >= count;
  });
  wake_at_finished_ = kNoWaiter;
}

void GraphRunner::wait_for_room() {
  // Until half the queue drained: the program then queues many ops per wake-up, rather than
  // one op per finished op, each a context switch on cores the runner's kernels need.
  const std::int64_t queued = outstanding();
  wait_for_finished(tail_.load(std::memory_order_relaxed) - static_cast<std::uint64_t>(queued / 2));
}

void GraphRunner::wait_until_finished(std::uint64_t count) {
  if (finished() >= count) return;
  wait_for_finished(count);
}

void GraphRunner::wait_for_committed_from_any_thread() {
  const std::uint64_t committed = tail_.load(std::memory_order_seq_cst);
  if (finished() >= committed) return;
  if (hold_.load(std::memory_order_acquire)) set_hold(false);
  while (finished() < committed && !failed()) {
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

std::exception_ptr GraphRunner::take_error() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::exception_ptr error = error_;
  error_ = nullptr;
  failed_.store(false, std::memory_order_release);
  return error;
}

void GraphRunner::set_hold(bool hold) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    hold_ = hold;
  }
  work_ready_.notify_one();
}

double GraphRunner::busy_seconds(int region) {
  std::lock_guard<std::mutex> lock(mutex_);
  return region >= 0 && region < static_cast<int>(busy_by_region_.size()) ? busy_by_region_[region]
                                                                          : 0.0;
}

std::vector<NodeTime> GraphRunner::take_node_times() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<NodeTime> times;
  times.swap(node_times_);
  return times;
}

void GraphRunner::defer_small_releases(WorkItem& item) {
  for (HeldTensor& held : item.held) {
    if (held.runner_owned && held.same_storage < 0 && held.nbytes <= kDeferredMaxBytes) {
      deferred_releases_.push_back(std::move(held.storage));
    }
  }
}

void GraphRunner::record_time(int region, std::uint32_t node, double seconds) {
  // Called with mutex_ held.
  if (region < 0) return;
  if (region >= static_cast<int>(busy_by_region_.size())) {
    busy_by_region_.resize(region + 1, 0.0);
  }
  busy_by_region_[region] += seconds;
  if (node_times_.size() < (1u << 20)) node_times_.push_back({region, node, seconds * 1e6});
}

void GraphRunner::update_mean_op_time(double seconds) {
  // Only the runner thread writes it; a short memory (about 8 ops) follows a loop's mix of
  // ops closely enough for backpressure, which only needs the order of magnitude.
  const double mean = mean_op_seconds_.load(std::memory_order_relaxed);
  mean_op_seconds_.store(mean == 0.0 ? seconds : mean + (seconds - mean) / 8.0,
                         std::memory_order_relaxed);
}

bool GraphRunner::wait_for_work(std::unique_lock<std::mutex>& lock) {
  // Python usually confirms the next op within microseconds: waiting awake a little keeps
  // commit() from paying a futex wake-up per op. Awake on the CPU's spin-wait hint, not on
  // sched_yield: measured on the 2-core VM, a runner calling sched_yield in a loop slowed the
  // Python thread's own code on the other core by a fifth to a third (the MLP's zero_grad,
  // pure Python, 12.7 -> 17.5 us; its step 0.80x eager), the hint not at all (1.04x).
  const bool was_empty = queue_empty();
  const auto until = Clock::now() + kSpinTime;
  for (int i = 0; queue_empty(); ++i) {
    cpu_relax();
    if (i % 64 == 63 && Clock::now() >= until) break;
  }
  if (!queue_empty() && !hold_.load(std::memory_order_acquire)) {
    if (was_empty) gather_burst();
    return true;
  }
  lock.lock();
  sleeping_.store(true, std::memory_order_seq_cst);
  const auto ready = [this] { return stop_ || (!queue_empty() && !hold_); };
  const auto woken = [&] { return ready() || team_release_requested_; };
  const auto idle_until = Clock::now() + kIdleBeforeReleasingTeam;
  while (!ready()) {
    bool idle_long_enough = false;
    if (openmp_team_may_exist_) {
      idle_long_enough = !work_ready_.wait_until(lock, idle_until, woken);
    } else {
      work_ready_.wait(lock, woken);
    }
    if (ready()) break;
    if (openmp_team_may_exist_ && (idle_long_enough || team_release_requested_)) {
      // Python runs eagerly now (or nothing runs): its parallel kernels must not pay for
      // this thread's idle team (openmp_threads.h). A wake-up meanwhile is not lost: `ready`
      // is checked again before sleeping.
      lock.unlock();
      release_openmp_threads();
      openmp_team_may_exist_ = false;
      lock.lock();
    }
    if (team_release_requested_) {
      team_release_requested_ = false;
      team_released_.notify_all();
    }
  }
  sleeping_.store(false, std::memory_order_relaxed);
  const bool work = !queue_empty();
  lock.unlock();
  return work;
}

void GraphRunner::gather_burst() {
  // The first op of a burst: let the producer queue a few more before starting, unless it
  // waits. Started at once, the runner touches each op's lines (the slot, the inputs' shared
  // counts, the promises) right after the producer did, moving them between the cores once
  // per op; measured, the producer's side of an op cost 1.15-1.25 us with both threads free,
  // 0.90-1.01 us with both on one core.
  const auto until = Clock::now() + kBurstWait;
  for (int i = 1;; ++i) {
    cpu_relax();
    if (i % 64 != 0) continue;
    if (outstanding() >= kBurstOps || producer_waiting_.load(std::memory_order_relaxed) ||
        hold_.load(std::memory_order_relaxed) || Clock::now() >= until) {
      return;
    }
  }
}

void GraphRunner::release_openmp_team() {
  std::unique_lock<std::mutex> lock(mutex_);
  team_release_requested_ = true;
  work_ready_.notify_all();
  team_released_.wait_for(lock, kTeamReleaseWait, [this] { return !team_release_requested_; });
  team_release_requested_ = false;
}

void GraphRunner::loop() {
  int current_threads = -1;
  std::unique_lock<std::mutex> lock(mutex_, std::defer_lock);
  int current_flush_denormal = -1;
  while (wait_for_work(lock)) {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);
    WorkItem& item = slots_[head % kCapacity];
    const bool drop = failed_.load(std::memory_order_acquire);

    const int wanted = wanted_threads_.load();
    if (wanted > 0 && wanted != current_threads) {
      at::set_num_threads(wanted);  // OpenMP thread counts are per thread
      current_threads = wanted;
    }
    const int flush = wanted_flush_denormal_.load(std::memory_order_relaxed);
    if (flush >= 0 && flush != current_flush_denormal) {
      at::globalContext().setFlushDenormal(flush == 1);  // sets this thread's MXCSR
      current_flush_denormal = flush;
    }
    double seconds = 0;
    std::exception_ptr error;
    if (!drop) {
      const auto start = Clock::now();
      running_since_ns_.store(start.time_since_epoch() / std::chrono::nanoseconds(1),
                              std::memory_order_relaxed);
      openmp_team_may_exist_ = true;
      warnings_.set_current(item.region, item.node);
      try {
        execute(item);
      } catch (...) {
        error = std::current_exception();
      }
      running_since_ns_.store(0, std::memory_order_relaxed);
      seconds = std::chrono::duration<double>(Clock::now() - start).count();
    }
    for (auto& promise : item.pending) {
      // Dropped, failed, or no result for it: later readers find no memory, as before.
      if (promise && !promise->done.load(std::memory_order_acquire)) {
        SpinGuard guard(promise->lock);
        promise->done.store(true, std::memory_order_release);
      }
    }
    const int region = item.region;
    const std::uint32_t node = item.node;
    defer_small_releases(item);
    item.clear();  // drop the references before taking the lock
    // Released when enough gathered, and before the queue reads empty (so sync() still means:
    // the queued ops hold no memory).
    // (The producer's tail is read only when the ops last seen are done, as in queue_empty.)
    if (deferred_releases_.size() >= kDeferredReleases ||
        (!deferred_releases_.empty() && head + 1 == tail_seen_ &&
         head + 1 == tail_.load(std::memory_order_acquire))) {
      deferred_releases_.clear();
    }

    lock.lock();
    if (!drop) {
      record_time(region, node, seconds);
      update_mean_op_time(seconds);
    }
    if (error && !error_) {
      error_ = error;
      failed_.store(true, std::memory_order_release);
    }
    // Published after the error: once the queue reads empty, sync() finds the error.
    head_.store(head + 1, std::memory_order_release);
    if (queue_empty()) idle_.notify_all();
    if (head + 1 >= wake_at_finished_ || error) progress_.notify_all();
    lock.unlock();
  }
}

namespace {

// Builds the tensors hold_arguments replaced, on the runner thread (their allocations and frees
// stay on this thread).
void rebuild_arguments(WorkItem& item) {
  for (HeldTensor& held : item.held) {
    if (held.same_storage >= 0) {
      held.storage = item.held[held.same_storage].storage;
    } else if (held.promise) {
      // Its producer ran before this op (program order) and shared the memory if it could.
      PendingOutput& promise = *held.promise;
      c10::DataPtr data = promise.data ? another_share(promise.data)
                                       : c10::DataPtr(nullptr, c10::Device(c10::kCPU));
      if (--promise.readers == 0) promise.data.clear();  // the last reader: no lingering share
      held.promise.reset();
      held.storage =
          c10::make_intrusive<c10::StorageImpl>(c10::StorageImpl::use_byte_size_t(), held.nbytes,
                                                std::move(data), held.allocator, held.resizable);
      held.runner_owned = true;
    } else if (!held.storage) {
      held.storage = c10::make_intrusive<c10::StorageImpl>(c10::StorageImpl::use_byte_size_t(),
                                                           held.nbytes, std::move(held.data),
                                                           held.allocator, held.resizable);
      held.runner_owned = true;
    }
    at::Tensor tensor =
        at::detail::make_tensor<c10::TensorImpl>(c10::Storage(held.storage), held.keys, held.dtype);
    c10::TensorImpl* impl = tensor.unsafeGetTensorImpl();
    impl->set_sizes_and_strides(held.sizes, held.strides, held.storage_offset);
    c10::IValue& value = item.arguments[held.argument];
    if (held.element < 0) {
      value = std::move(tensor);
    } else if (value.isTensorList()) {
      value.toTensorList().set(held.element, std::move(tensor));
    } else {
      value.toList().set(held.element, c10::IValue(std::move(tensor)));
    }
  }
}

}  // namespace

void GraphRunner::execute(WorkItem& item) {
  rebuild_arguments(item);
  // The caller's thread-local state below autograd, so nested calls dispatch as in eager.
  c10::impl::ForceDispatchKeyGuard keys_guard(item.tls_included, item.tls_excluded);
  const c10::AutogradState saved_autograd = c10::AutogradState::get_tls_state();
  c10::AutogradState::set_tls_state(item.autograd_state);
  std::optional<c10::StreamGuard> stream_guard;
  if (item.stream) stream_guard.emplace(*item.stream);

  torch::jit::Stack& stack = item.arguments;  // becomes the results; keeps its capacity
  try {
    item.op->redispatchBoxed(item.keys, &stack);
  } catch (...) {
    c10::AutogradState::set_tls_state(saved_autograd);
    throw;
  }
  c10::AutogradState::set_tls_state(saved_autograd);
  std::vector<at::Tensor> results = take_results(stack);
  TORCH_CHECK(results.size() == item.storages.size(), "terra: ", item.op->operator_name(),
              " returned ", results.size(), " tensors, the graph promised ", item.storages.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (i < item.pending.size() && item.pending[i]) {
      fill_promise(*item.pending[i], (*item.specs)[i], std::move(results[i]));
    } else if (c10::intrusive_ptr<c10::StorageImpl> target = item.storages[i].lock()) {
      fill_placeholder(c10::Storage(std::move(target)), (*item.specs)[i], std::move(results[i]));
    }
  }
  item.storages.clear();  // drop the references right after the node (memory)
}

}  // namespace terra::coexec
