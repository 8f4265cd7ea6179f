"""Control flow on fetched tensor values: `if loss.item() > c` picks a path.

Hard cases: `if t.item() > c` (the graph branches; both paths co-execute once seen).
Not repeating without divergence: the path changes when the loss crosses the bar.
"""
import torch

from corpus_common import checksum, device

torch.manual_seed(6)
dev = device()
model = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
x = torch.randn(30, 3)
y = (x[:, :1] * 2 - x[:, 1:2]).tanh()
x, y = x.to(dev), y.to(dev)
for step in range(40):
    opt.zero_grad()
    out = model(x)
    loss = (out - y).pow(2).mean()
    if loss.item() > 0.25:
        loss = loss + 0.01 * out.abs().mean()  # extra penalty while the loss is high
        tag = "high"
    else:
        tag = "low"
    if step % 3 == 0:
        loss = loss * 1.0  # another Python-decided path
    loss.backward()
    opt.step()
    print(step, tag, loss.item())
checksum(model)
