"""Gradient clipping by total norm, with the returned norm printed.

Hard cases: clip_grad_norm_ (a foreach reduction and in-place scaling of .grad).
Repeats without divergence.
"""
import torch

from corpus_common import checksum, device

torch.manual_seed(16)
dev = device()
model = torch.nn.Sequential(
    torch.nn.Linear(10, 20), torch.nn.ReLU(), torch.nn.Linear(20, 10)).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.5)
x = (torch.randn(25, 10) * 4).to(dev)
for step in range(25):
    opt.zero_grad()
    loss = (model(x) - x).pow(2).mean()
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    opt.step()
    print(step, loss.item(), norm.item())
checksum(model)
