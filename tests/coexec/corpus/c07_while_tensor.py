"""A `while` loop on tensor values inside each training step.

Hard cases: `while` loops on tensor values (a renormalisation that runs a
data-dependent number of times). Not repeating without divergence: the trip count
varies, so the graph branches.
"""
import torch

from corpus_common import checksum, device

torch.manual_seed(7)
dev = device()
w = torch.randn(6, 6).to(dev).requires_grad_()
opt = torch.optim.SGD([w], lr=0.3)
x = torch.randn(20, 6)
target = torch.randn(20, 6)
x, target = x.to(dev), target.to(dev)
for step in range(25):
    opt.zero_grad()
    loss = ((x @ w) - target).pow(2).mean()
    loss.backward()
    opt.step()
    trips = 0
    with torch.no_grad():
        while w.norm() > 3.0:
            w.mul_(0.9)
            trips += 1
    print(step, trips, loss.item(), w.norm().item())
checksum(w)
