"""MLP regression, plain SGD, full batch.

Hard cases: loss.backward(). Repeats without divergence.
"""
import torch

from corpus_common import checksum, device

torch.manual_seed(0)
dev = device()
model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
x = torch.randn(64, 8)
y = x.sum(dim=1, keepdim=True).sin()
x, y = x.to(dev), y.to(dev)
for step in range(30):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    print(step, loss.item())
checksum(model)
