"""A user exception raised in mid-iteration (after the forward), caught; training goes on.

Hard cases: a user exception in mid-iteration, caught, training continues (what
ran before the raise is kept exactly as eager; the rest of the step is skipped).
"""
import torch

from corpus_common import checksum, device


class BadBatch(Exception):
    pass


torch.manual_seed(22)
dev = device()
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
x = torch.randn(20, 4)
y = x.sum(1, keepdim=True)
x, y = x.to(dev), y.to(dev)
skipped = 0
for step in range(30):
    try:
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        if step % 8 == 6:
            raise BadBatch(f"bad batch at {step}")
        loss.backward()
        opt.step()
        print(step, loss.item())
    except BadBatch as error:
        skipped += 1
        print("caught:", error, "weight sum", model[0].weight.sum().item())
print("skipped", skipped)
checksum(model)
