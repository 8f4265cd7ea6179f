"""KeyboardInterrupt in mid-iteration (a real SIGINT and a raised one), caught by the
program, which checks its parameters and goes on.

Hard cases: a KeyboardInterrupt in mid-iteration leaves parameters consistent
(what ran is kept exactly as eager: here between backward and step, and in the
middle of the optimizer's update loop of a hook).
"""
import signal

import torch

from corpus_common import checksum, device

torch.manual_seed(28)
dev = device()
model = torch.nn.Sequential(torch.nn.Linear(5, 10), torch.nn.ReLU(), torch.nn.Linear(10, 1)).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
x = torch.randn(30, 5)
y = x[:, 1:2] - x[:, 3:4]
x, y = x.to(dev), y.to(dev)
interrupts = 0
for step in range(30):
    try:
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        if step == 9:
            signal.raise_signal(signal.SIGINT)
        if step == 17:
            with torch.no_grad():
                model[0].weight.mul_(0.99)
            raise KeyboardInterrupt
        opt.step()
        print(step, loss.item())
    except KeyboardInterrupt:
        interrupts += 1
        weight = model[0].weight
        print("interrupted at", step, weight.sum().item(), weight.grad.sum().item())
print("interrupts", interrupts)
checksum(model)
