// The verifier rejects each kind of malformed IR with VerifyError.
#include <gtest/gtest.h>

#include <functional>

#include "programs.h"

namespace terra::graph {
namespace {

using testing::training_step;
using testing::with_tanh;

// A graph taken apart, so that a test can break one thing and rebuild it.
struct Parts {
  Node root;
  std::vector<Node> nodes;
  std::map<std::int64_t, StateInfo> states;
  std::map<std::int64_t, FeedInfo> feeds;
  std::map<std::int64_t, ConstantInfo> constants;

  explicit Parts(const TraceGraph& graph)
      : root(graph.root()),
        states(graph.states()),
        feeds(graph.feeds()),
        constants(graph.constants()) {
    for (NodeId id = 0; id < graph.size(); ++id) nodes.push_back(graph.node(id));
  }
  TraceGraph build() const { return TraceGraph::from_parts(root, nodes, states, feeds, constants); }
};

// Branch after mm (relu | tanh); node ids: 0 mm, 1 relu, 2 sum, 3 mul, 4 sub_, 5 tanh, ...
TraceGraph sample() {
  TraceGraph graph;
  graph.merge(training_step());
  graph.merge(training_step(with_tanh()));
  graph.merge(training_step());
  return graph;
}

// Expects verify() to throw VerifyError whose message contains `expected`.
void expect_rejected(const std::function<void(Parts&)>& breakage, const std::string& expected) {
  Parts parts(sample());
  ASSERT_NO_THROW(parts.build().verify());
  breakage(parts);
  try {
    parts.build().verify();
    ADD_FAILURE() << "verify() accepted a graph that should fail with: " << expected;
  } catch (const VerifyError& error) {
    EXPECT_NE(std::string(error.what()).find(expected), std::string::npos) << error.what();
  }
}

OpIdentity with_inputs(const OpIdentity& identity, std::vector<TensorInput> inputs) {
  return OpIdentity(identity.op(), identity.args(), std::move(inputs), identity.context());
}

OpIdentity with_args(const OpIdentity& identity, std::vector<Arg> args) {
  return OpIdentity(identity.op(), std::move(args), identity.inputs(), identity.context());
}

TEST(Verify, AcceptsMergedGraphs) {
  EXPECT_NO_THROW(sample().verify());
  EXPECT_NO_THROW(TraceGraph().verify());
  EXPECT_NO_THROW(verify(sample()));
}

TEST(Verify, RejectsADanglingState) {
  expect_rejected([](Parts& p) { p.states.clear(); }, "unknown state 1");
}

TEST(Verify, RejectsADanglingFeed) {
  expect_rejected([](Parts& p) { p.feeds.clear(); }, "unknown feed 0");
}

TEST(Verify, RejectsADanglingConstant) {
  expect_rejected(
      [](Parts& p) {
        auto inputs = p.nodes[1].identity.inputs();
        inputs[0].ref = Constant{9};
        p.nodes[1].identity = with_inputs(p.nodes[1].identity, inputs);
      },
      "unknown constant 9");
}

TEST(Verify, RejectsAReferenceToANonAncestorStep) {
  expect_rejected(
      [](Parts& p) {
        auto inputs = p.nodes[1].identity.inputs();  // relu at step 1 reads step 1
        inputs[0].ref = NodeOutput{1, 0};
        p.nodes[1].identity = with_inputs(p.nodes[1].identity, inputs);
      },
      "not an ancestor");
}

TEST(Verify, RejectsAReferenceToAMissingOutput) {
  expect_rejected(
      [](Parts& p) {
        auto inputs = p.nodes[1].identity.inputs();
        inputs[0].ref = NodeOutput{0, 3};
        p.nodes[1].identity = with_inputs(p.nodes[1].identity, inputs);
      },
      "refers to output 3");
}

TEST(Verify, RejectsAChildListedTwice) {
  expect_rejected(
      [](Parts& p) {
        p.nodes[0].children.push_back(p.nodes[0].children[0]);
        p.nodes[0].taken.push_back(0);
      },
      "listed twice");
}

TEST(Verify, RejectsAMissingChild) {
  expect_rejected(
      [](Parts& p) {
        p.nodes[4].children = {99};
        p.nodes[4].taken = {0};
      },
      "child 99 missing");
}

TEST(Verify, RejectsAChildWithAnotherParent) {
  expect_rejected([](Parts& p) { p.nodes[2].parent = 0; }, "another parent");
}

TEST(Verify, RejectsAnOrphan) {
  expect_rejected(
      [](Parts& p) {
        p.nodes[0].children.pop_back();  // tanh is no longer listed; counts still add up
        p.nodes[0].taken.pop_back();
        p.nodes[0].last_taken = 0;
        p.nodes[0].ends = 1;
      },
      "not listed exactly once");
}

TEST(Verify, RejectsAWrongStep) {
  expect_rejected([](Parts& p) { p.nodes[2].step = 5; }, "step is not its parent's step + 1");
}

TEST(Verify, RejectsIdsThatAreNotDense) {
  expect_rejected([](Parts& p) { p.nodes[3].id = 7; }, "stored at index 3");
}

TEST(Verify, RejectsTakenCountsOfTheWrongLength) {
  expect_rejected([](Parts& p) { p.nodes[0].taken.pop_back(); }, "not one count per child");
}

TEST(Verify, RejectsLastTakenOutOfRange) {
  expect_rejected([](Parts& p) { p.nodes[0].last_taken = 2; }, "last_taken out of range");
}

TEST(Verify, RejectsCountsThatAreNotConserved) {
  expect_rejected([](Parts& p) { p.nodes[4].ends = 7; }, "count != sum(taken) + ends");
  expect_rejected([](Parts& p) { p.nodes[0].taken = {1, 1}; }, "differs from the child's count");
}

TEST(Verify, RejectsAnInputNamedByNoTensorArg) {
  expect_rejected(
      [](Parts& p) {
        auto args = p.nodes[0].identity.args();  // mm($0, $1)
        args[1] = Arg(TensorArg{0});
        p.nodes[0].identity = with_args(p.nodes[0].identity, args);
      },
      "is not named by exactly one arg");
}

TEST(Verify, RejectsATensorArgOutOfRange) {
  expect_rejected(
      [](Parts& p) {
        auto args = p.nodes[0].identity.args();
        args.push_back(Arg(TensorListArg{{0, 5}}));
        p.nodes[0].identity = with_args(p.nodes[0].identity, args);
      },
      "tensor arg refers to input 5");
}

TEST(Verify, RejectsAnAliasOfAMissingInput) {
  expect_rejected(
      [](Parts& p) {
        p.nodes[4].outputs[0].alias = AliasKind::kSame;
        p.nodes[4].outputs[0].input = 2;
      },
      "output alias refers to input 2");
}

TEST(Verify, RejectsAStaleIdentityHash) {
  // generalise_arg's precondition broken: a tensor slot turned into a ScalarFeed.
  expect_rejected([](Parts& p) { p.nodes[0].identity.generalise_arg(0); }, "stale");
}

TEST(Verify, RejectsSiblingsThatAcceptTheSameOp) {
  expect_rejected(
      [](Parts& p) {
        // relu (#1) and tanh (#5) under mm: tanh's identity becomes relu's.
        p.nodes[5].identity = p.nodes[1].identity;
      },
      "both accept some op");
}

TEST(Verify, RejectsABadRoot) {
  expect_rejected([](Parts& p) { p.root.id = 0; }, "root must have id");
}

TEST(Verify, ErrorNamesTheNodeAndItsOperator) {
  expect_rejected([](Parts& p) { p.states.clear(); }, "node 0 (aten::mm)");
}

}  // namespace
}  // namespace terra::graph
