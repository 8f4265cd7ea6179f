"""In-place ops, views, and slicing assignment on tensors alive across iterations.

Hard cases: in-place ops, views, slicing assignment (aliasing must be recorded;
a running buffer is updated through views). Repeats without divergence.
"""
import torch

from corpus_common import checksum, device

torch.manual_seed(19)
dev = device()
w = torch.randn(8, 4).to(dev).requires_grad_()
memory = torch.zeros(10, 4, device=dev)
opt = torch.optim.SGD([w], lr=0.05)
x = torch.randn(16, 8).to(dev)
for step in range(30):
    opt.zero_grad()
    h = x @ w
    h2 = h.view(4, 4, 4).transpose(0, 1).reshape(16, 4)
    loss = (h2 - 1).pow(2).mean() + h[:, 1:3].abs().mean()
    loss.backward()
    opt.step()
    with torch.no_grad():
        row = memory[step % 10]  # a view of the buffer
        row.copy_(h.mean(0))
        memory[:, 0] *= 0.5
        memory[2:5, 1:3] = h[:3, :2]
        w.data[0].clamp_(-2, 2)
        w[1:3].add_(0.001)
    print(step, loss.item(), memory.sum().item())
checksum(w, memory)
