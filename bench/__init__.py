"""Terra's benchmark suite: ten imperative PyTorch programs, run side by side under
eager PyTorch, Terra, torch.compile (default and fullgraph=True) and TorchScript.

`python -m bench --quick` checks that every program runs and that Terra equals
eager; `python -m bench --full` measures. See bench/README.md.
"""
