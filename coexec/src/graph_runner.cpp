// GraphRunner: executes confirmed ops on its own thread (see graph_runner.h).
#include "graph_runner.h"

#include <ATen/Parallel.h>
#include <ATen/ops/copy_ops.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

#include <algorithm>
#include <chrono>
#include <typeinfo>

namespace terra::coexec {
namespace {

using Clock = std::chrono::steady_clock;

bool same_layout(const OutputSpec& spec, const at::Tensor& result) {
  return result.sizes().equals(spec.sizes) && result.strides().equals(spec.strides) &&
         result.storage_offset() == spec.storage_offset && result.dtype() == spec.dtype &&
         result.device() == spec.device;
}

// The result's memory can become the placeholder's when nobody else can see the result.
bool can_steal(const c10::Storage& target, const OutputSpec& spec, const at::Tensor& result) {
  if (!same_layout(spec, result)) return false;
  if (result.use_count() != 1 || !result.has_storage()) return false;
  const c10::Storage& storage = result.storage();
  return storage.use_count() == 1 && storage.nbytes() == target.nbytes();
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

// A new TensorImpl over `tensor`'s storage with its metadata; `tensor` itself when it has
// no plain storage-backed impl (undefined, sparse, wrappers), which is then held as before.
at::Tensor storage_alias(const at::Tensor& tensor) {
  if (!tensor.defined() || !tensor.has_storage()) return tensor;
  const c10::TensorImpl* impl = tensor.unsafeGetTensorImpl();
  if (typeid(*impl) != typeid(c10::TensorImpl) || impl->has_symbolic_sizes_strides()) {
    return tensor;
  }
  at::Tensor alias = at::detail::make_tensor<c10::TensorImpl>(c10::Storage(tensor.storage()),
                                                              impl->key_set(), impl->dtype());
  c10::TensorImpl* alias_impl = alias.unsafeGetTensorImpl();
  alias_impl->set_sizes_and_strides(impl->sizes(), impl->strides(), impl->storage_offset());
  if (impl->is_wrapped_number()) alias_impl->set_wrapped_number(true);
  return alias;
}

}  // namespace

void alias_tensor_arguments(std::vector<c10::IValue>& arguments) {
  for (c10::IValue& value : arguments) {
    if (value.isTensor()) {
      value = storage_alias(value.toTensor());
    } else if (value.isTensorList()) {
      c10::List<at::Tensor> aliases;
      for (const at::Tensor& t : value.toTensorList()) aliases.push_back(storage_alias(t));
      value = std::move(aliases);
    } else if (value.isList()) {
      // Optional tensor lists (aten::index): alias the tensors, keep the Nones.
      c10::List<c10::IValue> items = value.toList();
      bool has_tensor = false;
      for (const c10::IValue& item : items) has_tensor = has_tensor || item.isTensor();
      if (!has_tensor) continue;
      c10::impl::GenericList copy(items.elementType());
      for (const c10::IValue& item : items) {
        copy.push_back(item.isTensor() ? c10::IValue(storage_alias(item.toTensor())) : item);
      }
      value = std::move(copy);
    }
  }
}

void fill_placeholder(const c10::Storage& target, const OutputSpec& spec, at::Tensor result) {
  c10::StorageImpl* impl = target.unsafeGetStorageImpl();
  if (result.storage().unsafeGetStorageImpl() == impl) return;
  if (can_steal(target, spec, result)) {
    c10::StorageImpl* source = result.storage().unsafeGetStorageImpl();
    impl->set_data_ptr_noswap(source->set_data_ptr(c10::DataPtr(nullptr, result.device())));
    return;
  }
  TORCH_CHECK(result.sizes().equals(spec.sizes) && result.dtype() == spec.dtype,
              "terra: the GraphRunner produced ", result.sizes(), " ", result.dtype(),
              " where the graph promised ", c10::IntArrayRef(spec.sizes), " ", spec.dtype);
  if (impl->data() == nullptr && impl->nbytes() > 0) {
    impl->set_data_ptr_noswap(impl->allocator()->allocate(impl->nbytes()));
  }
  // A plain tensor over the placeholder's storage, below autograd.
  at::Tensor view =
      at::detail::make_tensor<c10::TensorImpl>(c10::Storage(target), spec.keys, spec.dtype);
  view.unsafeGetTensorImpl()->set_sizes_and_strides(spec.sizes, spec.strides, spec.storage_offset);
  const c10::DispatchKeySet dense(spec.device.is_cuda() ? c10::DispatchKey::CUDA
                                                        : c10::DispatchKey::CPU);
  at::_ops::copy_::redispatch(dense, view, result, false);
}

void WorkItem::clear() {
  op.reset();
  arguments.clear();
  specs.reset();
  storages.clear();
  stream.reset();
  region = -1;
  node = 0;
}

// The thread starts in the body, once every member it uses exists.
GraphRunner::GraphRunner() : slots_(kCapacity) {
  thread_ = std::thread([this] { loop(); });
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

WorkItem& GraphRunner::next_slot() {
  return slots_[tail_.load(std::memory_order_relaxed) % kCapacity];
}

void GraphRunner::commit() {
  outstanding_.fetch_add(1, std::memory_order_acq_rel);
  tail_.fetch_add(1, std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_seq_cst)) {
    // Taking the mutex orders this wake-up after the runner's last look at the ring.
    { std::lock_guard<std::mutex> lock(mutex_); }
    work_ready_.notify_one();
  }
}

void GraphRunner::abandon() { next_slot().clear(); }

void GraphRunner::wait_idle() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (hold_) {
    hold_ = false;
    work_ready_.notify_one();
  }
  idle_.wait(lock, [this] { return outstanding_.load(std::memory_order_acquire) == 0; });
}

bool GraphRunner::has_room(std::int64_t max_items, double max_lag_s) const {
  const std::int64_t queued = outstanding_.load(std::memory_order_acquire);
  if (queued == 0) return true;
  if (queued >= kCapacity || (max_items > 0 && queued >= max_items)) return false;
  if (max_lag_s <= 0) return true;
  // The op running now has taken at least its elapsed time: a lower bound of the op cost
  // that also holds before the first op finished (no mean yet) and for one huge op.
  double op_seconds = mean_op_seconds_.load(std::memory_order_relaxed);
  const std::int64_t since = running_since_ns_.load(std::memory_order_relaxed);
  if (since != 0 && static_cast<double>(queued) * op_seconds < max_lag_s) {
    const std::int64_t now = Clock::now().time_since_epoch() / std::chrono::nanoseconds(1);
    op_seconds = std::max(op_seconds, static_cast<double>(now - since) * 1e-9);
  }
  return static_cast<double>(queued) * op_seconds < max_lag_s;
}

void GraphRunner::wait_for_room(std::int64_t max_items, double max_lag_s) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (hold_) {
    hold_ = false;
    work_ready_.notify_one();
  }
  room_wanted_ = true;
  room_.wait(lock, [&] {
    return stop_ || failed_.load(std::memory_order_acquire) || has_room(max_items, max_lag_s);
  });
  room_wanted_ = false;
}

void GraphRunner::wait_until_finished(std::uint64_t count) {
  if (finished() >= count) return;
  std::unique_lock<std::mutex> lock(mutex_);
  if (hold_) {
    hold_ = false;
    work_ready_.notify_one();
  }
  room_wanted_ = true;
  room_.wait(lock, [&] {
    return stop_ || failed_.load(std::memory_order_acquire) || finished() >= count;
  });
  room_wanted_ = false;
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
  // commit() from paying a futex wake-up per op.
  for (int i = 0; i < kSpinChecks && queue_empty(); ++i) std::this_thread::yield();
  if (!queue_empty() && !hold_.load(std::memory_order_acquire)) return true;
  lock.lock();
  sleeping_.store(true, std::memory_order_seq_cst);
  work_ready_.wait(lock, [this] { return stop_ || (!queue_empty() && !hold_); });
  sleeping_.store(false, std::memory_order_relaxed);
  const bool work = !queue_empty();
  lock.unlock();
  return work;
}

void GraphRunner::loop() {
  int current_threads = -1;
  std::unique_lock<std::mutex> lock(mutex_, std::defer_lock);
  while (wait_for_work(lock)) {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);
    WorkItem& item = slots_[head % kCapacity];
    const bool drop = failed_.load(std::memory_order_acquire);

    const int wanted = wanted_threads_.load();
    if (wanted > 0 && wanted != current_threads) {
      at::set_num_threads(wanted);  // OpenMP thread counts are per thread
      current_threads = wanted;
    }
    double seconds = 0;
    std::exception_ptr error;
    if (!drop) {
      const auto start = Clock::now();
      running_since_ns_.store(start.time_since_epoch() / std::chrono::nanoseconds(1),
                              std::memory_order_relaxed);
      try {
        execute(item);
      } catch (...) {
        error = std::current_exception();
      }
      running_since_ns_.store(0, std::memory_order_relaxed);
      seconds = std::chrono::duration<double>(Clock::now() - start).count();
    }
    const int region = item.region;
    const std::uint32_t node = item.node;
    item.clear();  // drop the references before taking the lock
    head_.store(head + 1, std::memory_order_release);

    lock.lock();
    if (!drop) {
      record_time(region, node, seconds);
      update_mean_op_time(seconds);
    }
    if (error && !error_) {
      error_ = error;
      failed_.store(true, std::memory_order_release);
    }
    if (outstanding_.fetch_sub(1, std::memory_order_acq_rel) == 1) idle_.notify_all();
    if (room_wanted_) room_.notify_all();
    lock.unlock();
  }
}

void GraphRunner::execute(WorkItem& item) {
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
    c10::intrusive_ptr<c10::StorageImpl> target = item.storages[i].lock();
    if (target) {
      fill_placeholder(c10::Storage(std::move(target)), (*item.specs)[i], std::move(results[i]));
    }
  }
  item.storages.clear();  // drop the references right after the node (memory)
}

}  // namespace terra::coexec
