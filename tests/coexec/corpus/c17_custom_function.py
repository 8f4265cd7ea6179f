"""A custom autograd Function (a clipped straight-through estimator).

Hard cases: custom autograd Function (Python forward and backward, ctx saving
tensors). Repeats without divergence.
"""
import torch

from corpus_common import checksum, device


class ClampSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(-1, 1)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * (x.abs() < 2).to(grad_out.dtype)


torch.manual_seed(17)
dev = device()
lin1, lin2 = torch.nn.Linear(4, 16).to(dev), torch.nn.Linear(16, 1).to(dev)
opt = torch.optim.SGD(list(lin1.parameters()) + list(lin2.parameters()), lr=0.05)
x = torch.randn(40, 4)
y = x.abs().sum(1, keepdim=True) / 4
x, y = x.to(dev), y.to(dev)
for step in range(30):
    opt.zero_grad()
    loss = (lin2(ClampSTE.apply(lin1(x))) - y).pow(2).mean()
    loss.backward()
    opt.step()
    print(step, loss.item())
checksum(lin1, lin2)
