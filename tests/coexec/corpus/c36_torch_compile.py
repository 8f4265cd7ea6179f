"""A function compiled with torch.compile (Inductor), called in every training step.

Hard case: code that reads tensor memory in its own kernels, past the dispatcher. The
compiled forward and backward take placeholders as inputs; each call must see the values
eager would, and co-execution must go on around it.
"""
import torch

from corpus_common import checksum, device

torch.manual_seed(36)
dev = device()
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4)).to(dev)


@torch.compile
def squash(h):
    return torch.sigmoid(h) * 2.0 + torch.tanh(h) * h


opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
x = torch.randn(32, 8).to(dev)
y = torch.randn(32, 4).to(dev)
for step in range(20):
    loss = (squash(model(x)) - y).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 5 == 0:
        print(step, round(loss.item(), 6))
checksum(model)
