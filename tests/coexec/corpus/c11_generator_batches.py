"""Batches come from a Python generator; the last batch of each epoch is smaller.

Hard cases: generators yielding batches; last batch smaller (new shapes);
epoch loop around the step loop (the step loop is the region). Repeats except at
the smaller last batch.
"""
import torch
import torch.nn.functional as F

from corpus_common import checksum, device


def batches(x, y, size):
    for start in range(0, len(x), size):
        yield x[start:start + size], y[start:start + size]


torch.manual_seed(11)
dev = device()
x = torch.randn(70, 5)
y = (x.sum(1) > 0).long()
x, y = x.to(dev), y.to(dev)
model = torch.nn.Sequential(torch.nn.Linear(5, 12), torch.nn.ReLU(), torch.nn.Linear(12, 2)).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.8)
for epoch in range(4):
    for i, (xb, yb) in enumerate(batches(x, y, 16)):
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        print(epoch, i, len(xb), loss.item())
checksum(model)
