"""A training function that returns from inside its loop.

Hard cases: early return from within the region; the function is called twice
(a second run of the same loop continues its graph).
"""
import torch

from corpus_common import checksum, device


def train(model, opt, x, y, max_steps, patience_value):
    for step in range(max_steps):
        opt.zero_grad()
        loss = (model(x) - y).abs().mean()
        loss.backward()
        opt.step()
        print("step", step, loss.item())
        if loss.item() < patience_value:
            return step
    return max_steps


torch.manual_seed(9)
dev = device()
model = torch.nn.Linear(3, 1).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.5)
x = torch.randn(16, 3)
y = x @ torch.tensor([[0.3], [0.2], [-0.1]])
x, y = x.to(dev), y.to(dev)
print("first run stopped at", train(model, opt, x, y, 40, 0.2))
print("second run stopped at", train(model, opt, x, y, 15, 0.0))
checksum(model)
