"""The interception kernels' registration (coexec/src/interceptor.cpp), read back from the
dispatcher's computed dispatch tables once the engine is installed.

Inside an iteration every op dispatches to a PrivateUse1 key: PrivateUse1 itself for dense
tensors, and SparsePrivateUse1, SparseCsrPrivateUse1, QuantizedPrivateUse1 or
NestedTensorPrivateUse1 for other layouts (the included key's backend bit). On none of them
may a CompositeExplicitAutograd kernel answer: it would run the op's decomposition on the
Python thread instead of reaching the engine, or a kernel for another layout (`values()` of
a CSR tensor ran the COO kernel). CompositeImplicitAutograd kernels stay (they decompose
above autograd, DESIGN §4), as do kernels other libraries registered for every key.
"""

import torch

import terra
from engine_programs import fresh_engine

PRIVATE_USE1_KEYS = ("PrivateUse1", "SparsePrivateUse1", "SparseCsrPrivateUse1",
                     "QuantizedPrivateUse1", "NestedTensorPrivateUse1")


def _entries(op_name: str) -> dict:
    """Key -> the description of the kernel the dispatch table holds for it."""
    entries = {}
    for line in torch._C._dispatch_dump_table(op_name).splitlines():
        key, _, kernel = line.partition(": ")
        entries[key] = kernel
    return entries


def test_no_composite_explicit_kernel_answers_a_private_use1_key():
    fresh_engine()
    with terra.iteration("install"):  # the engine registers its kernels when it starts
        torch.ones(2) + 1
    answered_by_composite = []
    for name in torch._C._dispatch_get_all_op_names():
        entries = _entries(name)
        answered_by_composite += [(name, key) for key in PRIVATE_USE1_KEYS
                                  if "CompositeExplicitAutograd" in entries.get(key, "")]
    assert not answered_by_composite, (
        f"{len(answered_by_composite)} entries, e.g. {answered_by_composite[:5]}")
    values = _entries("aten::values")
    assert all("interceptor.cpp" in values[key] for key in PRIVATE_USE1_KEYS), values
