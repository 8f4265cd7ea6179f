"""Realistic generated graph JSON (docs/architecture.md "Graph JSON") for tests and benchmarks.

The graph imitates one training step of a pre-norm transformer: an embedding, ``layers``
identical blocks (attention + MLP), a loss whose value Python fetches (``loss.item()``),
the backward pass (namespaced `backward/<forward module path>`), a foreach Adam update,
and a branch at the end (evaluation every k steps).
Everything is deterministic: the same arguments give the same JSON.
"""

from __future__ import annotations

import random

__all__ = ["transformer_graph", "graph_with_nodes"]

_BLOCK_FORWARD = [
    # (relative namespace, op, output shape kind)
    ("ln1", "aten::native_layer_norm", "act"),
    ("attn/q", "aten::addmm", "act"),
    ("attn/k", "aten::addmm", "act"),
    ("attn/v", "aten::addmm", "act"),
    ("attn", "aten::view", "heads"),
    ("attn", "aten::transpose.int", "heads"),
    ("attn", "aten::bmm", "scores"),
    ("attn", "aten::_softmax", "scores"),
    ("attn", "aten::bmm", "heads"),
    ("attn", "aten::view", "act"),
    ("attn/o", "aten::addmm", "act"),
    ("", "aten::add.Tensor", "act"),
    ("ln2", "aten::native_layer_norm", "act"),
    ("mlp/fc1", "aten::addmm", "wide"),
    ("mlp/act", "aten::gelu", "wide"),
    ("mlp/fc2", "aten::addmm", "act"),
    ("", "aten::add.Tensor", "act"),
]

_BACKWARD_OF = {
    "aten::addmm": ["aten::mm", "aten::mm", "aten::sum.dim_IntList"],
    "aten::gelu": ["aten::gelu_backward"],
    "aten::_softmax": ["aten::_softmax_backward_data"],
    "aten::native_layer_norm": ["aten::native_layer_norm_backward"],
    "aten::bmm": ["aten::bmm", "aten::bmm"],
    "aten::add.Tensor": ["aten::add.Tensor"],
    "aten::view": ["aten::view"],
    "aten::transpose.int": ["aten::transpose.int"],
}


class _Builder:
    """Appends nodes in program order; each node's ``succ`` is the next node (a chain)."""

    def __init__(self, batch: int, width: int, seed: int):
        self.nodes: list[dict] = []
        self.states: list[dict] = []
        self.rng = random.Random(seed)
        self.shapes = {
            "act": [batch, width],
            "wide": [batch, 4 * width],
            "heads": [8, batch, width // 8],
            "scores": [8, batch, batch],
            "scalar": [],
        }

    def state(self, name: str, shape: list[int]) -> int:
        sid = len(self.states)
        self.states.append({"id": sid, "shape": shape, "dtype": "float32", "name": name})
        return sid

    def add(self, op: str, namespace: str, inputs: list[dict], shape: str, line: int,
            fetch: bool = False) -> int:
        nid = len(self.nodes)
        if self.nodes and not self.nodes[-1]["succ"]:
            self.nodes[-1]["succ"].append(nid)
        self.nodes.append({
            "id": nid,
            "op": op,
            "label": op.split("::", 1)[-1].split(".", 1)[0],
            "namespace": namespace,
            "inputs": inputs,
            "args": [],
            "outputs": [{"shape": list(self.shapes[shape]), "dtype": "float32", "device": "cpu"}],
            "source": {"file": "train.py", "line": line},
            "succ": [],
            "fetch": fetch,
            "count": 12,
            "time_us": round(self.rng.uniform(2.0, 40.0) * (3.0 if op.endswith("mm") else 1.0), 2),
        })
        return nid


def transformer_graph(layers: int = 4, batch: int = 32, width: int = 64, seed: int = 0,
                      region: str = "train.py:42", with_branch: bool = True) -> dict:
    """Graph JSON of a transformer training step with ``layers`` identical blocks."""
    b = _Builder(batch, width, seed)
    prev = b.add("aten::embedding", "model/embed", [{"state": b.state("model.embed.weight",
                                                                    [1000, width])},
                                                    {"feed": 0}], "act", 30)
    block_nodes: list[int] = []
    for layer in range(layers):
        base = f"model/layers/{layer}"
        residual = prev
        for k, (rel, op, shape) in enumerate(_BLOCK_FORWARD):
            ns = f"{base}/{rel}" if rel else base
            inputs = [{"node": prev, "port": 0}]
            if op == "aten::addmm":
                pname = ns.replace("/", ".")
                inputs = [{"state": b.state(pname + ".bias", [width])}, inputs[0],
                          {"state": b.state(pname + ".weight", [width, width])}]
            elif op == "aten::add.Tensor":
                inputs.append({"node": residual, "port": 0})
            prev = b.add(op, ns, inputs, shape, 60 + k)
            if op == "aten::add.Tensor":
                residual = prev
            block_nodes.append(prev)
    logits = b.add("aten::addmm", "model/head", [{"node": prev, "port": 0},
                                                 {"state": b.state("model.head.weight",
                                                                   [width, 10])}], "act", 90)
    loss = b.add("aten::cross_entropy_loss", "loss", [{"node": logits, "port": 0},
                                                      {"feed": 1}], "scalar", 101)
    b.add("aten::_local_scalar_dense", "loss", [{"node": loss, "port": 0}], "scalar", 102,
          fetch=True)
    grad = b.add("aten::ones_like", "loss", [{"node": loss, "port": 0}], "scalar", 103)
    for fwd in reversed(block_nodes):
        node = b.nodes[fwd]
        for op in _BACKWARD_OF.get(node["op"], ["aten::mul.Tensor"]):
            grad = b.add(op, "backward/" + node["namespace"], [{"node": grad, "port": 0},
                                                 {"node": fwd, "port": 0}],
                         "act", node["source"]["line"])
    params = [{"state": sid} for sid in range(len(b.states))]
    for k, op in enumerate(["aten::_foreach_mul_.Scalar", "aten::_foreach_add_.List",
                            "aten::_foreach_addcmul_.Scalar", "aten::_foreach_sqrt",
                            "aten::_foreach_div_.ScalarList", "aten::_foreach_addcdiv_.Scalar"]):
        b.add(op, "optimizer", [{"node": grad, "port": 0}] + params[:4], "act", 110 + k)
    if with_branch:
        branch = len(b.nodes) - 1
        train_path = b.add("aten::zero_", "optimizer", [{"node": grad, "port": 0}], "act", 117)
        b.nodes[branch]["succ"] = [train_path]
        eval_path = b.add("aten::addmm", "model/head", [{"node": logits, "port": 0}], "act", 120)
        b.nodes[train_path]["succ"] = []
        b.nodes[branch]["succ"].append(eval_path)
        b.add("aten::argmax", "eval", [{"node": eval_path, "port": 0}], "act", 121)
        b.add("aten::_local_scalar_dense", "eval", [{"node": eval_path + 1, "port": 0}],
              "scalar", 122, fetch=True)
        branches = [{"node": branch, "succ": [train_path, eval_path], "counts": [10, 2],
                     "last": 0}]
    else:
        branches = []
    file, _, line = region.rpartition(":")
    return {
        "format": "terra.graph",
        "version": 1,
        "region": {"id": "r1", "name": region, "file": file or region,
                   "line": int(line) if line.isdigit() else 0},
        "nodes": b.nodes,
        "branches": branches,
        "states": b.states,
        "feeds": [{"id": 0, "shape": [batch], "dtype": "int64"},
                  {"id": 1, "shape": [batch], "dtype": "int64"}],
        "stats": {"iterations_traced": 2, "iterations_coexecuted": 10, "fallbacks": 0},
    }


def graph_with_nodes(target: int, seed: int = 0) -> dict:
    """A transformer graph with about ``target`` nodes (at least ``target``)."""
    small = transformer_graph(layers=1, seed=seed)
    per_layer = len(transformer_graph(layers=2, seed=seed)["nodes"]) - len(small["nodes"])
    layers = max(1, -(-(target - len(small["nodes"])) // per_layer) + 1)
    return transformer_graph(layers=layers, seed=seed)
