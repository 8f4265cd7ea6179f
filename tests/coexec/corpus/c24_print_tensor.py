"""The program prints tensors themselves (repr, str, f-string, format) every step.

Hard cases: print(tensor) (repr/str/format fetch first). Repeats without
divergence.
"""
import torch

from corpus_common import checksum, device

torch.manual_seed(24)
torch.set_printoptions(precision=6)
dev = device()
layer = torch.nn.Linear(3, 2).to(dev)
opt = torch.optim.SGD(layer.parameters(), lr=0.1)
x = torch.randn(5, 3).to(dev)
target = torch.ones(5, 2, device=dev)
for step in range(20):
    opt.zero_grad()
    out = layer(x)
    loss = (out - target).pow(2).mean()
    loss.backward()
    opt.step()
    print(step, loss)
    print(out[:2])
    print(f"bias={layer.bias.data} grad={layer.bias.grad}")
    print(repr(layer.weight.grad.sum(0)), str(out.argmax(1)))
checksum(layer)
