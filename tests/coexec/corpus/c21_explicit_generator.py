"""An explicit torch.Generator drives shuffling and noise; the global RNG is untouched.

Hard cases: explicit torch.Generator (its state advances on the runner in program
order; randperm/normal with generator=). Repeats without divergence.
"""
import torch
import torch.nn.functional as F

from corpus_common import checksum, device

dev = device()
gen = torch.Generator().manual_seed(21)  # a CPU generator: its draws move to dev
torch.manual_seed(0)
data = torch.randn(48, 4, generator=gen)
labels = (data[:, 0] > data[:, 1]).long()
data, labels = data.to(dev), labels.to(dev)
model = torch.nn.Sequential(
    torch.nn.Linear(4, 10), torch.nn.ReLU(), torch.nn.Linear(10, 2)).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(30):
    order = torch.randperm(48, generator=gen)[:16].to(dev)
    xb = data[order] + torch.normal(0.0, 0.05, size=(16, 4), generator=gen).to(dev)
    opt.zero_grad()
    loss = F.cross_entropy(model(xb), labels[order])
    loss.backward()
    opt.step()
    print(step, order[:4].tolist(), loss.item())
print("generator next", torch.rand(2, generator=gen), "global next", torch.rand(2, device=dev))
checksum(model)
