"""Early `continue` and `break` in the step loop.

Hard cases: early break/continue (partial iterations end the region's iteration
early). Repeats without divergence apart from the skipped and the last iteration.
"""
import torch

from corpus_common import checksum, device

torch.manual_seed(8)
dev = device()
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
x = torch.randn(40, 4)
y = x.mean(1, keepdim=True)
x, y = x.to(dev), y.to(dev)
for step in range(100):
    opt.zero_grad()
    loss = (model(x) - y).pow(2).mean()
    if step % 7 == 3:
        print(step, "skipped")
        continue
    loss.backward()
    opt.step()
    print(step, loss.item())
    if step == 33:
        break
checksum(model)
