// terra::coexec without Python: interception sees forward, backward and factory ops; a small
// training loop co-executes and stays bitwise equal to eager.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "fresh_engine.h"
#include "terra/coexec/engine.h"

namespace {

using terra::coexec::Engine;
using terra::coexec::testing::fresh_engine;

struct Model {
  at::Tensor w1, b1, w2, b2;
};

Model make_model() {
  at::manual_seed(0);
  Model m{at::randn({16, 8}), at::randn({16}), at::randn({1, 16}), at::randn({1})};
  for (at::Tensor* t : {&m.w1, &m.b1, &m.w2, &m.b2}) t->set_requires_grad(true);
  return m;
}

// One SGD step of a linear+relu+linear regression; returns the loss.
at::Tensor train_step(Model& m, const at::Tensor& x, const at::Tensor& y) {
  // Factories inside the iteration: BackendSelect sends at::ones straight to its backend
  // kernel, so its fill_ is what interception sees; zeros_like (a tensor argument) is seen.
  at::Tensor noise = at::ones({x.size(0), 1}) * 0.5 + at::zeros_like(x).sum(1, true);
  at::Tensor h = at::relu(at::linear(x, m.w1, m.b1));
  at::Tensor out = at::linear(h, m.w2, m.b2) + noise;
  at::Tensor loss = at::mse_loss(out, y);
  loss.backward();
  c10::NoGradGuard no_grad;
  for (at::Tensor* p : {&m.w1, &m.b1, &m.w2, &m.b2}) {
    p->sub_(p->grad() * 0.01);
    p->mutable_grad().zero_();
  }
  return loss.detach();
}

std::set<std::string> graph_ops(const std::string& json) {
  std::set<std::string> ops;
  const nlohmann::json document = nlohmann::json::parse(json);
  for (const auto& node : document["nodes"]) {
    ops.insert(node["op"].get<std::string>());
  }
  return ops;
}

TEST(Interception, SeesForwardBackwardAndFactoryOps) {
  Engine& engine = fresh_engine();

  Model model = make_model();
  at::Tensor x = at::randn({4, 8});
  at::Tensor y = at::randn({4, 1});
  const int region = engine.region("test:interception", "interception", "test.cpp", 1);
  engine.begin_iteration(region);
  train_step(model, x, y);
  engine.end_iteration();
  engine.sync();
  const std::string json = engine.graph_json(region);
  const std::set<std::string> ops = graph_ops(json);
  ASSERT_FALSE(ops.empty()) << json;
  // Forward (addmm, relu, mse_loss), backward (…_backward, mm) and factory (ones, zeros_like)
  // ops.
  for (const char* expected :
       {"aten::fill_", "aten::zeros_like", "aten::addmm", "aten::relu", "aten::mse_loss",
        "aten::mse_loss_backward", "aten::threshold_backward", "aten::mm", "aten::sub_"}) {
    EXPECT_TRUE(ops.count(expected)) << "missing " << expected;
  }
}

TEST(Interception, OutsideIterationsNothingIsRecorded) {
  Engine& engine = fresh_engine();
  const int region = engine.region("test:outside", "outside", "test.cpp", 2);
  at::Tensor a = at::randn({3});
  at::Tensor b = a + 1;  // not inside an iteration
  engine.begin_iteration(region);
  engine.end_iteration();
  EXPECT_EQ(engine.stats().graph_nodes, 0u);
  EXPECT_TRUE(b.equal(a + 1));
}

TEST(CoExecution, TrainingLoopIsBitwiseEqualToEager) {
  constexpr int kIterations = 10;
  at::manual_seed(1);
  at::Tensor x = at::randn({32, 8});
  at::Tensor y = at::randn({32, 1});

  Model eager = make_model();
  std::vector<at::Tensor> eager_losses;
  for (int i = 0; i < kIterations; ++i) eager_losses.push_back(train_step(eager, x, y));

  Engine& engine = fresh_engine();
  Model terra = make_model();
  const int region = engine.region("test:train", "train", "test.cpp", 3);
  std::vector<at::Tensor> terra_losses;
  for (int i = 0; i < kIterations; ++i) {
    engine.begin_iteration(region);
    terra_losses.push_back(train_step(terra, x, y));
    engine.end_iteration();
  }
  engine.sync();
  for (int i = 0; i < kIterations; ++i) {
    EXPECT_TRUE(eager_losses[i].equal(terra_losses[i])) << "iteration " << i;
  }
  EXPECT_TRUE(eager.w1.equal(terra.w1));
  EXPECT_TRUE(eager.b2.equal(terra.b2));
  const auto stats = engine.stats();
  EXPECT_GE(stats.total.iterations_coexecuted, static_cast<std::uint64_t>(kIterations - 4));
  EXPECT_EQ(stats.total.fallbacks, 0u);
}

TEST(CoExecution, ValueCheckedOpRaisesAtTheOp) {
  Engine& engine = fresh_engine();
  const int region = engine.region("test:checked", "checked", "test.cpp", 4);
  at::Tensor table = at::randn({4, 3});
  // The index is made outside the iteration (a feed); `table * 2` is queued before it.
  auto step = [&](const at::Tensor& index) { return at::index_select(table * 2, 0, index); };
  const at::Tensor good = at::full({2}, 1, at::kLong);
  const at::Tensor bad = at::full({2}, 7, at::kLong);
  for (int i = 0; i < 4; ++i) {
    at::Tensor index = good.clone();
    engine.begin_iteration(region);
    step(index);
    engine.end_iteration();
  }
  ASSERT_EQ(engine.phase(region), terra::coexec::Phase::kCoexecuting);
  at::Tensor index = bad.clone();
  engine.begin_iteration(region);
  EXPECT_ANY_THROW(step(index));  // out of range: raised here, as eager raises it
  engine.abort_iteration();
  index = good.clone();
  engine.begin_iteration(region);
  at::Tensor ok = step(index);
  engine.end_iteration();
  engine.sync();
  EXPECT_TRUE(ok.equal(at::index_select(table * 2, 0, good)));
}

TEST(CoExecution, RunnerErrorSurfacesAtSync) {
  Engine& engine = fresh_engine();
  const int region = engine.region("test:error", "error", "test.cpp", 4);
  at::Tensor values = at::randn({2, 4});
  // segment_reduce has no value check (value_checks.cpp): a negative length fails on the
  // runner.
  auto step = [&](const at::Tensor& lengths) {
    return at::segment_reduce(values * 2, "sum", lengths);
  };
  const at::Tensor good = at::ones({2}, at::kLong);
  const at::Tensor bad = at::tensor({3, -1}, at::kLong);
  for (int i = 0; i < 4; ++i) {
    at::Tensor target = good.clone();
    engine.begin_iteration(region);
    step(target);
    engine.end_iteration();
  }
  ASSERT_EQ(engine.phase(region), terra::coexec::Phase::kCoexecuting);
  at::Tensor target = bad.clone();
  engine.begin_iteration(region);
  step(target);
  EXPECT_ANY_THROW(engine.sync());
  engine.abort_iteration();
  target = good.clone();
  engine.begin_iteration(region);
  at::Tensor ok = step(target);
  engine.end_iteration();
  engine.sync();
  EXPECT_TRUE(ok.equal(at::segment_reduce(values * 2, "sum", good)));
}

TEST(CoExecution, BackpressureBoundsQueuedOps) {
  Engine& engine = fresh_engine();
  auto config = engine.config();
  const auto saved = config;
  config.max_queued = 3;
  config.max_queued_ms = 0;
  engine.configure(config);
  const int region = engine.region("test:backpressure", "backpressure", "test.cpp", 5);
  at::manual_seed(2);
  const at::Tensor a = at::randn({256, 256});
  std::int64_t peak = 0;
  at::Tensor last;
  for (int i = 0; i < 40; ++i) {
    engine.begin_iteration(region);
    last = at::mm(a, a).relu();
    engine.end_iteration();
    peak = std::max(peak, engine.queued());
  }
  engine.sync();
  engine.configure(saved);
  EXPECT_TRUE(last.equal(at::mm(a, a).relu()));
  EXPECT_GE(engine.stats().total.iterations_coexecuted, 30u);
  EXPECT_GT(peak, 0);
  EXPECT_LE(peak, 3);
}

}  // namespace
