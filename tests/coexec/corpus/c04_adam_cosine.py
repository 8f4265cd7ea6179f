"""Adam with a cosine-annealing schedule and warm-up through LambdaLR chained in.

Hard cases: Adam with LR schedulers. Repeats without divergence.
"""
import math

import torch

from corpus_common import checksum, device

torch.manual_seed(3)
dev = device()
model = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.SiLU(), torch.nn.Linear(32, 1)).to(dev)
opt = torch.optim.Adam(model.parameters(), lr=5e-3, betas=(0.8, 0.99))
warmup = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 5))
cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30)
x = torch.linspace(-2, 2, 40).unsqueeze(1).repeat(1, 4) * torch.tensor([1.0, -0.5, 0.3, 2.0])
y = torch.sin(x.sum(1, keepdim=True) * math.pi / 4)
x, y = x.to(dev), y.to(dev)
for step in range(30):
    opt.zero_grad()
    loss = torch.nn.functional.smooth_l1_loss(model(x), y)
    loss.backward()
    opt.step()
    warmup.step()
    cosine.step()
    print(step, round(opt.param_groups[0]["lr"], 12), loss.item())
checksum(model)
