"""Shapes that depend on values: boolean masks, nonzero, unique.

Hard cases: data-dependent shapes (x[x > 0], nonzero, unique: fetch points whose
output shapes come from the data).
"""
import torch

from corpus_common import checksum, device

torch.manual_seed(23)
dev = device()
w = torch.randn(6, 6).to(dev).requires_grad_()
opt = torch.optim.SGD([w], lr=0.02)
x = torch.randn(12, 6).to(dev)
for step in range(25):
    opt.zero_grad()
    h = x @ w
    positive = h[h > 0]
    idx = torch.nonzero(h[:, 0] > 0).squeeze(1)
    buckets = torch.unique((h.detach() * 2).round().clamp(-3, 3))
    loss = positive.pow(2).mean() + h[idx].abs().mean() if len(idx) else positive.pow(2).mean()
    loss.backward()
    opt.step()
    print(step, positive.numel(), idx.tolist(), buckets.tolist(), loss.item())
checksum(w)
