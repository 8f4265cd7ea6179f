"""Programs at the edges of what co-execution sees, each run as `python PROG` and as
`python -m terra run PROG`: stdout and exit code must be identical, and the Terra run
must have co-executed (TERRA_STATS). Each one crashed, hung or printed other values
before its fix (docs/architecture.md names the mechanism of each):

- fork: a multiprocessing child started while ops were queued hung on a runner it lacks;
- sparse and nested results made from dense tensors crashed at the runner or at once;
- `values()` of a CSR tensor and `clone()` of a quantized one ran a kernel for another layout
  (CompositeExplicitAutograd answered their PrivateUse1 keys before the fallback);
- a custom op with a Python kernel deadlocked (its `.numpy()` ran on the runner);
- Tensor.apply_ on a placeholder segfaulted; tensor_split and ctc_loss read lengths
  from memory a queued op had not written;
- the lengths of a packed sequence changed after co-execution began;
- settings kernels read at run time (default dtype, denormals, oneDNN flag, thread
  count) were changed back before the queued ops ran;
- a normal() with a negative std raised past the program's `try`, or never;
- torch.compile(module) traced Terra's module-path hooks;
- a kernel's warning (`std` of one row) was printed to stderr by the runner instead of
  reaching Python's `warnings` at the op (and raising under an "error" filter).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
BUSY = "busy = torch.randn(200, 200) @ torch.randn(200, 200)  # keeps the runner behind\n"

PROGRAMS = {
    "fork_child": """
        import multiprocessing as mp
        import torch
        def child(t):
            print("child", (t * 2).sum().item(), flush=True)
        w = torch.ones(1000)
        for step in range(8):
            BUSY
            w = w * 1.01
            if step % 4 == 3:
                p = mp.get_context("fork").Process(target=child, args=(w,))
                p.start(); p.join()
                print("exitcode", p.exitcode)
        """,
    "sparse_results": """
        import torch
        torch.manual_seed(0)
        emb = torch.nn.Embedding(10, 3, sparse=True)
        opt = torch.optim.SparseAdam(emb.parameters(), lr=0.1)
        idx = torch.tensor([[0, 1, 2], [1, 2, 0]])
        for step in range(8):
            adj = torch.sparse_coo_tensor(idx, torch.ones(3) * step, (3, 3))
            y = torch.sparse.mm(adj, emb.weight[:3].detach())
            opt.zero_grad()
            (emb(torch.tensor([1, 2, step % 10])).sum() + y.sum() * 0).backward()
            opt.step()
        print(emb.weight.sum().item(), y.sum().item())
        """,
    "sparse_compressed_and_quantized": """
        import torch
        torch.manual_seed(0)
        w = torch.randn(4, 4)
        lin = torch.nn.Linear(4, 4)
        opt = torch.optim.SGD(lin.parameters(), lr=0.1)
        for step in range(6):
            d = (w * step).relu()
            csr, csc, bsr = d.to_sparse_csr(), d.to_sparse_csc(), d.to_sparse_bsr((2, 2))
            print(step, csr.values().sum().item(), csr.crow_indices().tolist(),
                  csc.row_indices().tolist(), bsr.values().shape,
                  (csr @ torch.ones(4, 1)).sum().item(), torch.add(csr, csr).to_dense().sum().item())
            q = torch.quantize_per_tensor(d, 0.1, 10, torch.quint8)
            print(q.int_repr().sum().item(), q.clone().dequantize().sum().item(),
                  torch.flatten(q).int_repr()[:3].tolist(), q[1].dequantize().tolist())
            opt.zero_grad()
            loss = lin(d).pow(2).mean()
            loss.backward()
            opt.step()
        print(loss.item())
        """,
    "nested_fast_path": """
        import torch
        torch.manual_seed(0)
        layer = torch.nn.TransformerEncoderLayer(16, 4, 32, batch_first=True)
        enc = torch.nn.TransformerEncoder(layer, 1, enable_nested_tensor=True).eval()
        mask = torch.tensor([[False] * 7, [False] * 4 + [True] * 3])
        total = 0.0
        with torch.no_grad():
            for step in range(6):
                total += enc(torch.randn(2, 7, 16), src_key_padding_mask=mask).sum().item()
        print(round(total, 4))
        """,
    "python_custom_op": """
        import numpy as np
        import torch
        @torch.library.custom_op("terra_test::np_sin", mutates_args=(), device_types="cpu")
        def np_sin(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(np.sin(x.numpy()))
        torch.manual_seed(0)
        x = torch.randn(1000)
        for step in range(6):
            BUSY
            x = np_sin(x * 2)
        print(f"{x.sum().item():.5f}")
        """,
    "direct_memory_readers": """
        import torch
        import torch.nn.functional as F
        torch.manual_seed(0)
        w = torch.randn(8)
        T, C, N, S = 30, 12, 4, 8
        for step in range(6):
            BUSY
            q = (w * 2).clone()
            q.apply_(lambda v: round(v))
            w = w + q * 0.01
            x = torch.arange(100.0) * step
            parts = torch.tensor_split(x, torch.full((3,), 20).cumsum(0))
            log_probs = torch.randn(T, N, C).log_softmax(2)
            targets = torch.randint(1, C, (N, S))
            loss = F.ctc_loss(log_probs, targets, torch.full((N,), T, dtype=torch.long),
                              torch.full((N,), S, dtype=torch.long))
        print([round(v, 4) for v in w.tolist()], [p.sum().item() for p in parts],
              f"{loss.item():.5f}")
        """,
    "packed_lengths": """
        import torch
        from torch.nn.utils.rnn import pack_padded_sequence
        x = torch.ones(3, 5, 2)
        for step in range(8):
            lengths = torch.tensor([5, 3, 2]) if step < 5 else torch.tensor([5, 4, 2])
            packed = pack_padded_sequence(x * step, lengths, batch_first=True,
                                          enforce_sorted=False)
            s = packed.data.sum()
        print(s.item())
        """,
    "runtime_settings": """
        import torch
        torch.manual_seed(0)
        counts = torch.randint(1, 5, (1000,))
        conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        img = torch.randn(2, 3, 16, 16)
        w = torch.randn(200_000) * 0.01
        torch.set_flush_denormal(True)
        acc = torch.zeros(4)
        outs = []
        for step in range(6):
            BUSY
            torch.set_default_dtype(torch.float64)
            f = counts / counts.sum()
            torch.set_default_dtype(torch.float32)
            acc = acc + (torch.full((4,), 1e-20) * 1e-19) * 1e3
            with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
                c = conv(img)
            with torch.no_grad():
                d = conv(img)  # queued with oneDNN on: it must run with it on
                torch.backends.mkldnn.enabled = False  # a property, not flags()
                e = conv(img)
                torch.backends.mkldnn.enabled = True
            torch.set_num_threads(1)
            s = (w * torch.randn(200_000)).sum()
            torch.set_num_threads(2)
            outs.append((f.sum().item(), c.sum().item(), s.item(), d.sum().item(),
                         e.sum().item()))
        print(f.dtype, acc.tolist(), outs[-1])
        """,
    "normal_std": """
        import torch
        std = torch.full((1000,), 1.0)
        caught = 0
        for step in range(8):
            BUSY
            s = std - (2.0 if step == 6 else 0.0)
            try:
                eps = torch.normal(torch.zeros(1000), s)
            except RuntimeError:
                caught += 1
        print("caught", caught)
        """,
    "kernel_warnings": """
        import warnings
        import torch
        x = torch.ones(1, 3)
        counts, raised = [], 0
        for step in range(8):
            BUSY
            y = x * 2
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                s = y.std(0)  # one row: "degrees of freedom is <= 0"
                counts.append(len(caught))
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                try:
                    (y + 1).std(0)
                except UserWarning:
                    raised += 1
            total = (s.nan_to_num() + y).sum()
        print("warnings at the op", counts, "raised", raised, total.item())
        """,
    "compiled_module": """
        import torch
        torch.manual_seed(0)
        m = torch.nn.Linear(4, 4)
        cm = torch.compile(m, backend="eager")
        total = 0.0
        for step in range(4):
            total += cm(torch.randn(2, 4)).sum().item()
        print(round(total, 5))
        """,
}


def _source(name: str) -> str:
    return textwrap.dedent(PROGRAMS[name]).replace("BUSY", BUSY.strip())


def _run(path: pathlib.Path, terra: bool, stats: pathlib.Path):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TERRA_STATS=str(stats),
               OMP_NUM_THREADS="2")
    command = [sys.executable, *(["-m", "terra", "run"] if terra else []), str(path)]
    try:
        return subprocess.run(command, cwd=path.parent, env=env, capture_output=True,
                              text=True, timeout=120)
    except subprocess.TimeoutExpired as expired:  # a hang fails its own program only
        return subprocess.CompletedProcess(command, -9, expired.stdout or "", "timed out")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    root = tmp_path_factory.mktemp("edges")
    jobs = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for name in PROGRAMS:
            path = root / f"{name}.py"
            path.write_text(_source(name))
            stats = root / f"{name}.stats.json"
            jobs[name] = (pool.submit(_run, path, False, root / "unused.json"),
                          pool.submit(_run, path, True, stats), stats)
        return {name: (eager.result(), terra.result(), stats)
                for name, (eager, terra, stats) in jobs.items()}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_edge_program_matches_eager(outcomes, name):
    eager, terra, stats_path = outcomes[name]
    assert eager.returncode == 0, eager.stderr[-2000:]
    assert terra.returncode == eager.returncode, terra.stderr[-2000:]
    assert terra.stdout == eager.stdout
    stats = json.loads(stats_path.read_text())
    assert stats["iterations_coexecuted"] >= 1, stats
    # c10's own printing of a warning ("[W1205 19:12:02.59 ReduceOps.cpp:1858] Warning: ..."),
    # which only a kernel run off the Python thread (the runner's) falls back to.
    assert not re.search(r"^\[W\d{4} ", terra.stderr, re.MULTILINE), terra.stderr[-2000:]
