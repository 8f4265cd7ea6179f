"""Inner Python loops inside the step loop: one without tensor ops (bookkeeping), one
over parameters that fetches per-parameter norms (never repeats: other tensors each
time), and gradient accumulation over micro-batches.

Hard cases: the region policy with nested loops (the inner loops must not steal the
region from the step loop, or the accumulation loop is the region); integer
results used as Python ints; numpy on fetched values.
"""
import numpy as np
import torch

from corpus_common import checksum, device

torch.manual_seed(32)
dev = device()
model = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.ReLU(), torch.nn.Linear(12, 1)).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.02)
x = torch.randn(48, 6)
y = x[:, :3].sum(1, keepdim=True)
x, y = x.to(dev), y.to(dev)
log = {}
for step in range(20):
    opt.zero_grad()
    total = 0.0
    for micro in range(3):
        part = slice(micro * 16, micro * 16 + 16)
        loss = (model(x[part]) - y[part]).pow(2).mean() / 3
        loss.backward()
        total += loss.item()
    norms = []
    for name, param in model.named_parameters():
        norms.append(param.grad.norm().item())
    opt.step()
    for key in ("a", "b", "c"):
        log[key] = log.get(key, 0) + len(key) * step
    print(step, total, np.round(np.array(norms), 6).tolist(), sum(log.values()))
checksum(model)
