"""A residual MLP whose forward loops over a ModuleList, trained inside an epoch loop.

Hard cases: the region policy: the loop over layers in forward never repeats
(each iteration uses other weights) and must be rejected, the epoch loop contains
the region and must not become one; the step loop is the region. Repeats without
divergence.
"""
import torch

from corpus_common import checksum, device


class ResMLP(torch.nn.Module):
    def __init__(self, width, depth):
        super().__init__()
        self.blocks = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(depth))
        self.out = torch.nn.Linear(width, 1)

    def forward(self, x):
        for block in self.blocks:
            x = x + torch.relu(block(x))
        return self.out(x)


torch.manual_seed(31)
dev = device()
model = ResMLP(8, 4).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x = torch.randn(64, 8)
y = x.norm(dim=1, keepdim=True)
x, y = x.to(dev), y.to(dev)
for epoch in range(3):
    for start in range(0, 64, 8):
        opt.zero_grad()
        loss = (model(x[start:start + 8]) - y[start:start + 8]).pow(2).mean()
        loss.backward()
        opt.step()
        print(epoch, start, loss.item())
checksum(model)
