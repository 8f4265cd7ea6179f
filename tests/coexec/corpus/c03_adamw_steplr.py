"""AdamW with a StepLR schedule.

Hard cases: Adam(W) with LR schedulers (learning rate and bias corrections vary
every step: scalar feeds, not branches). Repeats without divergence.
"""
import torch

from corpus_common import checksum, device

torch.manual_seed(2)
dev = device()
model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.GELU(), torch.nn.Linear(16, 2)).to(dev)
opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.7)
x = torch.randn(48, 6)
y = torch.stack([x[:, 0] * x[:, 1], x[:, 2].cos()], dim=1)
x, y = x.to(dev), y.to(dev)
for step in range(30):
    opt.zero_grad()
    loss = (model(x) - y).pow(2).mean()
    loss.backward()
    opt.step()
    sched.step()
    print(step, sched.get_last_lr()[0], loss.item())
checksum(model)
