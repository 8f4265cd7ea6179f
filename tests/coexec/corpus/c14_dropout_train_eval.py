"""Dropout in train mode, eval mode between, on the same global RNG stream.

Hard cases: train()/eval() with Dropout (the mask must come from the same RNG
stream as eager); no_grad evaluation every k steps.
"""
import torch

from corpus_common import checksum, device

torch.manual_seed(14)
dev = device()
model = torch.nn.Sequential(
    torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(32, 1)).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
x = torch.randn(32, 8)
y = x[:, :2].prod(1, keepdim=True)
x, y = x.to(dev), y.to(dev)
for step in range(30):
    model.train()
    opt.zero_grad()
    loss = (model(x) - y).pow(2).mean()
    loss.backward()
    opt.step()
    print(step, loss.item())
    if step % 6 == 5:
        model.eval()
        with torch.no_grad():
            print("eval", step, (model(x) - y).pow(2).mean().item())
print("rng after training", torch.rand(2, device=dev))
checksum(model)
