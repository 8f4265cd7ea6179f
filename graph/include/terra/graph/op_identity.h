// OperatorName and OpIdentity: what makes two recorded ops "the same node".
//
// Identity = operator + args + input refs + input metas + engine context bits. Matching a
// record against an expected node is the co-execution hot path, so the identity carries a
// hash computed once at construction; comparisons reject on the hash before looking deeper.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "terra/graph/arg.h"
#include "terra/graph/hash.h"
#include "terra/graph/input_ref.h"
#include "terra/graph/tensor_meta.h"

namespace terra::graph {

// An operator: schema name ("aten::addmm") and overload ("out", "" for the default), plus an
// optional integer key the engine may assign (e.g. its operator-table index) for fast compare.
class OperatorName {
 public:
  static constexpr std::int64_t kNoKey = -1;

  OperatorName() = default;
  explicit OperatorName(std::string name, std::string overload = "", std::int64_t key = kNoKey);

  const std::string& name() const { return name_; }
  const std::string& overload() const { return overload_; }
  std::int64_t key() const { return key_; }
  // "aten::add.Tensor", or just the name when the overload is empty.
  std::string qualified() const;
  // The name without its namespace: "addmm" for "aten::addmm".
  std::string short_name() const;
  // Hash of name and overload (not of the key, which is engine-local), computed once.
  HashValue hash() const { return hash_; }

  // Equal when name and overload agree; when both keys are set, keys decide (fast path).
  friend bool operator==(const OperatorName& a, const OperatorName& b) {
    if (a.key_ != kNoKey && b.key_ != kNoKey) return a.key_ == b.key_;
    return a.hash_ == b.hash_ && a.name_ == b.name_ && a.overload_ == b.overload_;
  }
  friend bool operator!=(const OperatorName& a, const OperatorName& b) { return !(a == b); }

 private:
  std::string name_;
  std::string overload_;
  std::int64_t key_ = kNoKey;
  HashValue hash_ = 0;
};

// One tensor input: where it came from and its metadata when the op ran.
struct TensorInput {
  InputRef ref;
  TensorMeta meta;
  friend bool operator==(const TensorInput& a, const TensorInput& b) {
    return a.ref == b.ref && a.meta == b.meta;
  }
  friend bool operator!=(const TensorInput& a, const TensorInput& b) { return !(a == b); }
};

// How an op differs from a node it was compared with (see OpIdentity::compare).
enum class IdentityMatch : std::uint8_t {
  kEqual,          // exactly equal (scalar values included)
  kMatches,        // equal except where the pattern holds ScalarFeeds of the same kind
  kScalarsDiffer,  // equal except for int/double scalar values: a generalisation candidate
  kDifferent,      // anything else
};

class OpIdentity {
 public:
  OpIdentity() { rehash(); }
  // `args` in schema order (tensors as TensorArg/TensorListArg into `inputs`); `context` holds
  // engine-defined bits of thread-local state that change an op's result (grad mode,
  // autocast...). Computes the hash once.
  OpIdentity(OperatorName op, std::vector<Arg> args, std::vector<TensorInput> inputs,
             std::uint64_t context = 0);

  const OperatorName& op() const { return op_; }
  const std::vector<Arg>& args() const { return args_; }
  const std::vector<TensorInput>& inputs() const { return inputs_; }
  std::uint64_t context() const { return context_; }
  // Hash over everything but int/double scalar values (see Arg::match_hash), so that a node
  // with ScalarFeeds and every record it matches hash equal.
  HashValue hash() const { return hash_; }
  // True when some argument is a ScalarFeed.
  bool has_scalar_feeds() const { return has_scalar_feeds_; }

  // True when `record` (concrete values) is accepted by this identity used as the pattern:
  // equal, or equal except where this identity holds ScalarFeeds. The hot-path test.
  bool accepts(const OpIdentity& record) const;
  // True when some record would be accepted by both this identity and `other` (they differ
  // only where one holds a ScalarFeed and the other a scalar or ScalarFeed of that kind).
  bool overlaps(const OpIdentity& other) const;
  // Full classification of `record` against this identity as pattern (slower than accepts).
  IdentityMatch compare(const OpIdentity& record) const;

  // "" when the tensor slots of args() (TensorArg, TensorListArg) name each input exactly
  // once and in range; otherwise what is wrong, for error messages.
  std::string tensor_slot_problem() const;

  // Turns argument `index` (an int/double scalar) into a ScalarFeed of its kind. The hash is
  // unchanged by construction. Precondition: args()[index].may_generalise().
  void generalise_arg(std::size_t index);
  // Recomputes the cached hash and ScalarFeed flag (the verifier compares against it).
  void rehash();

  // Exact equality (ScalarFeed equals only ScalarFeed); hash checked first.
  friend bool operator==(const OpIdentity& a, const OpIdentity& b) {
    return a.hash_ == b.hash_ && a.context_ == b.context_ && a.op_ == b.op_ &&
           a.inputs_ == b.inputs_ && a.args_ == b.args_;
  }
  friend bool operator!=(const OpIdentity& a, const OpIdentity& b) { return !(a == b); }

 private:
  HashValue compute_hash() const;

  OperatorName op_;
  std::vector<Arg> args_;
  std::vector<TensorInput> inputs_;
  std::uint64_t context_ = 0;
  HashValue hash_ = 0;
  bool has_scalar_feeds_ = false;
};

// Hash functor for unordered containers keyed by identity (uses the match hash).
struct OpIdentityHash {
  std::size_t operator()(const OpIdentity& identity) const { return identity.hash(); }
};

}  // namespace terra::graph
