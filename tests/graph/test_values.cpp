// Value types of the IR: TensorMeta, Arg, InputRef, OperatorName, OpIdentity.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <unordered_set>

#include "trace_builder.h"

namespace terra::graph {
namespace {

using testing::meta;

TEST(TensorMeta, ContiguousStridesAndNumel) {
  TensorMeta m = TensorMeta::contiguous({2, 3, 4});
  EXPECT_EQ(m.strides, (std::vector<std::int64_t>{12, 4, 1}));
  EXPECT_EQ(m.numel(), 24);
  EXPECT_EQ(TensorMeta::contiguous({}).numel(), 1);
}

TEST(Dims, InlineAndHeapHoldTheSameValues) {
  const std::vector<std::int64_t> many{1, 2, 3, 4, 5, 6, 7, 8, 9};  // past the inline room
  Dims small{4, 5};
  Dims large(many);
  EXPECT_EQ(small.size(), 2u);
  EXPECT_EQ(large.vec(), many);
  Dims copied = large;
  Dims moved = std::move(copied);
  EXPECT_EQ(moved, large);
  EXPECT_TRUE(copied.empty());  // a moved-from Dims is empty, whatever it held
  moved = small;                // heap to inline contents
  EXPECT_EQ(moved, small);
  EXPECT_NE(moved, large);
  for (std::int64_t v : many) small.push_back(v);  // grows from inline to heap
  EXPECT_EQ(small.size(), 2u + many.size());
  EXPECT_EQ(small[2], 1);
  EXPECT_EQ(small[0], 4);
  Dims moved_inline = Dims{7};
  EXPECT_EQ(moved_inline.vec(), (std::vector<std::int64_t>{7}));
}

TEST(SharedString, ComparesByContentAndSharesCopies) {
  const SharedString file("train.py");
  const SharedString copy = file;
  EXPECT_EQ(&copy.str(), &file.str());  // one buffer
  EXPECT_EQ(SharedString(std::string("train.py")), file);
  EXPECT_NE(SharedString("model.py"), file);
  EXPECT_TRUE(SharedString().empty());
  EXPECT_TRUE(SharedString("").empty());
  EXPECT_EQ(SharedString(), SharedString(""));
  EXPECT_EQ(SharedString().str(), "");
}

TEST(TensorMeta, EveryFieldTakesPartInEqualityAndHash) {
  const TensorMeta base = meta({2, 3});
  std::vector<TensorMeta> variants(6, base);
  variants[0].sizes = {3, 2};
  variants[1].strides = {1, 2};
  variants[2].storage_offset = 4;
  variants[3].dtype = "float64";
  variants[4].device = "cuda:0";
  variants[5].requires_grad = true;
  std::unordered_set<TensorMeta, TensorMetaHash> seen{base};
  for (const TensorMeta& v : variants) {
    EXPECT_NE(v, base);
    EXPECT_NE(v.hash(), base.hash());
    seen.insert(v);
  }
  EXPECT_EQ(seen.size(), 7u);
  EXPECT_EQ(meta({2, 3}).hash(), base.hash());
}

TEST(Arg, DoublesCompareByBits) {
  EXPECT_EQ(Arg(0.5), Arg(0.5));
  EXPECT_NE(Arg(0.0), Arg(-0.0));  // both change results
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(Arg(nan), Arg(nan));
  EXPECT_NE(Arg(std::int64_t{1}), Arg(1.0));
  EXPECT_EQ(Arg(DoubleList{1.0, -0.0}), Arg(DoubleList{1.0, -0.0}));
  EXPECT_NE(Arg(DoubleList{1.0, 0.0}), Arg(DoubleList{1.0, -0.0}));
}

TEST(Arg, OnlyIntAndDoubleScalarsMayGeneralise) {
  EXPECT_TRUE(Arg(std::int64_t{3}).may_generalise());
  EXPECT_TRUE(Arg(2.5).may_generalise());
  EXPECT_FALSE(Arg(true).may_generalise());
  EXPECT_FALSE(Arg(IntList{1, 2}).may_generalise());
  EXPECT_FALSE(Arg("mean").may_generalise());
  EXPECT_FALSE(Arg().may_generalise());
  EXPECT_FALSE(Arg(OtherArg{"memory_format:contiguous"}).may_generalise());
  EXPECT_FALSE(Arg(ScalarFeed{ScalarKind::kDouble}).may_generalise());
}

TEST(Arg, ScalarFeedMatchesValuesOfItsKindOnly) {
  const Arg feed_double = ScalarFeed{ScalarKind::kDouble};
  const Arg feed_int = ScalarFeed{ScalarKind::kInt};
  EXPECT_TRUE(Arg(0.25).matches(feed_double));
  EXPECT_FALSE(Arg(std::int64_t{2}).matches(feed_double));
  EXPECT_TRUE(Arg(std::int64_t{2}).matches(feed_int));
  EXPECT_FALSE(Arg(true).matches(feed_int));
  EXPECT_TRUE(Arg(0.25).matches(Arg(0.25)));
  EXPECT_FALSE(Arg(0.25).matches(Arg(0.5)));
  EXPECT_EQ(Arg(0.25).match_hash(), feed_double.match_hash());
  EXPECT_EQ(Arg(std::int64_t{7}).match_hash(), feed_int.match_hash());
  EXPECT_NE(feed_int.match_hash(), feed_double.match_hash());
}

TEST(Arg, NonScalarKindsHashTheirValues) {
  std::vector<Arg> args = {Arg(),
                           Arg(true),
                           Arg(false),
                           Arg("a"),
                           Arg("b"),
                           Arg(IntList{1}),
                           Arg(IntList{2}),
                           Arg(DoubleList{1.0}),
                           Arg(OtherArg{"x"}),
                           Arg(TensorArg{0}),
                           Arg(TensorArg{1}),
                           Arg(TensorListArg{{0, TensorListArg::kNoTensor}})};
  std::unordered_set<HashValue> hashes;
  for (const Arg& arg : args) hashes.insert(arg.match_hash());
  EXPECT_EQ(hashes.size(), args.size());
}

TEST(InputRef, AlternativesAndFieldsHashApart) {
  std::vector<InputRef> refs = {NodeOutput{1, 0}, NodeOutput{0, 1}, State{1}, Feed{1}, Constant{1}};
  std::unordered_set<HashValue> hashes;
  for (const InputRef& ref : refs) hashes.insert(hash_input_ref(ref));
  EXPECT_EQ(hashes.size(), refs.size());
  EXPECT_EQ(hash_input_ref(State{3}), hash_input_ref(State{3}));
}

TEST(OperatorName, NamesOverloadsAndKeys) {
  OperatorName add("aten::add", "Tensor");
  EXPECT_EQ(add.qualified(), "aten::add.Tensor");
  EXPECT_EQ(add.short_name(), "add");
  EXPECT_EQ(OperatorName("aten::relu").qualified(), "aten::relu");
  EXPECT_NE(add, OperatorName("aten::add", "Scalar"));
  EXPECT_EQ(add, OperatorName("aten::add", "Tensor", 17));  // one side without a key
  EXPECT_EQ(OperatorName("aten::add", "Tensor", 17), OperatorName("aten::add", "Tensor", 17));
  EXPECT_EQ(add.hash(), OperatorName("aten::add", "Tensor", 17).hash());
}

OpIdentity mul_by(Arg scalar, TensorMeta input = meta({4})) {
  return OpIdentity(OperatorName("aten::mul", "Scalar"), {Arg(TensorArg{0}), std::move(scalar)},
                    {{State{1}, std::move(input)}});
}

TEST(OpIdentity, EqualPartsGiveEqualIdentityAndHash) {
  EXPECT_EQ(mul_by(Arg(0.1)), mul_by(Arg(0.1)));
  EXPECT_EQ(mul_by(Arg(0.1)).hash(), mul_by(Arg(0.1)).hash());
  EXPECT_NE(mul_by(Arg(0.1)), mul_by(Arg(0.2)));
  EXPECT_NE(mul_by(Arg(0.1)), mul_by(Arg(0.1), meta({5})));
  EXPECT_NE(mul_by(Arg(0.1)).hash(), mul_by(Arg(0.1), meta({5})).hash());
  OpIdentity grad_off = mul_by(Arg(0.1));
  OpIdentity grad_on(grad_off.op(), grad_off.args(), grad_off.inputs(), /*context=*/1);
  EXPECT_NE(grad_off, grad_on);
  EXPECT_EQ(grad_off.compare(grad_on), IdentityMatch::kDifferent);
}

TEST(OpIdentity, CompareClassifiesScalarDifferences) {
  OpIdentity node = mul_by(Arg(0.1));
  EXPECT_EQ(node.compare(mul_by(Arg(0.1))), IdentityMatch::kEqual);
  EXPECT_EQ(node.compare(mul_by(Arg(0.3))), IdentityMatch::kScalarsDiffer);
  EXPECT_EQ(node.compare(mul_by(Arg(std::int64_t{3}))), IdentityMatch::kDifferent);
  EXPECT_EQ(node.compare(mul_by(Arg(0.3), meta({5}))), IdentityMatch::kDifferent);
  EXPECT_TRUE(node.accepts(mul_by(Arg(0.1))));
  EXPECT_FALSE(node.accepts(mul_by(Arg(0.3))));
}

TEST(OpIdentity, GeneralisedArgumentKeepsTheHashAndAcceptsAnyValueOfItsKind) {
  OpIdentity node = mul_by(Arg(0.1));
  const HashValue before = node.hash();
  node.generalise_arg(1);
  EXPECT_EQ(node.hash(), before);
  EXPECT_TRUE(node.has_scalar_feeds());
  EXPECT_TRUE(node.accepts(mul_by(Arg(0.777))));
  EXPECT_EQ(node.compare(mul_by(Arg(0.777))), IdentityMatch::kMatches);
  EXPECT_FALSE(node.accepts(mul_by(Arg(std::int64_t{1}))));
  EXPECT_FALSE(node.accepts(mul_by(Arg(0.777), meta({5}))));
  OpIdentity copy = node;
  copy.rehash();
  EXPECT_EQ(copy.hash(), node.hash());
  EXPECT_EQ(copy, node);
}

}  // namespace
}  // namespace terra::graph
