"""Fetched values feed numpy, random and math every iteration.

Hard cases: numpy/random/math calls on fetched values each iteration; integer
results used as Python ints. Repeats without divergence (Python decides values,
the tensor ops stay the same).
"""
import math
import random

import numpy as np
import torch

from corpus_common import checksum, device

random.seed(0)
np.random.seed(0)
torch.manual_seed(4)
dev = device()
model = torch.nn.Linear(5, 1).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.02)
x = torch.randn(32, 5)
y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0], [3.0]]) + 0.1
x, y = x.to(dev), y.to(dev)
history = []
for step in range(30):
    noise = torch.from_numpy(np.random.normal(0, 0.01, size=(32, 1)).astype(np.float32)).to(dev)
    opt.zero_grad()
    loss = ((model(x) - y - noise) ** 2).mean()
    loss.backward()
    opt.step()
    value = loss.item()
    history.append(value)
    smooth = float(np.mean(history[-5:]))
    jitter = random.random()
    grad_norm = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters()))
    best = np.argmax(model.weight.detach().cpu().numpy())
    print(step, value, math.log(value), smooth, jitter, grad_norm, best)
checksum(model)
