"""A pointwise network over 36 MiB activations: memory, not arithmetic, dominates.

Hard cases: loss.backward() with large saved activations; SGD momentum. Every other
corpus program holds a few KiB of tensors, so its peak RSS is the interpreter's and
torch's own (about 780 MiB); here the live tensors of a step add about 220 MiB (some
six of 36 MiB), so the corpus' peak-RSS comparison shows whether co-execution frees
values after their last use as eager does. The tensors are larger than glibc's largest
dynamic mmap threshold (32 MiB), so each is its own mapping, returned to the system
when freed: peak RSS follows the live tensors, not the allocator's caching. Repeats
without divergence.
"""
import torch

from corpus_common import checksum, device

torch.manual_seed(33)
dev = device()
ROWS, WIDTH = 9 << 14, 64  # 36 MiB a float32 tensor
scales = [torch.nn.Parameter((torch.randn(WIDTH) * 0.5).to(dev)) for _ in range(3)]
shifts = [torch.nn.Parameter(torch.zeros(WIDTH, device=dev)) for _ in range(3)]
opt = torch.optim.SGD([*scales, *shifts], lr=0.5, momentum=0.9)
x = torch.randn(ROWS, WIDTH).to(dev)
y = torch.sin(x).to(dev)
for step in range(12):
    opt.zero_grad()
    h = torch.tanh(x * scales[0] + shifts[0])
    h = torch.tanh(h * scales[1] + shifts[1])
    h = torch.tanh(h * scales[2] + shifts[2])
    loss = (h - y).pow(2).mean()
    loss.backward()
    opt.step()
    print(step, loss.item())
checksum(*scales, *shifts)
