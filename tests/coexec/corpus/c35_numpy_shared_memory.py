"""Tensors that share memory with numpy arrays the program keeps writing.

Hard case: memory written without the dispatcher. A numpy buffer refilled every step and
wrapped by torch.from_numpy (and one by torch.as_tensor), a large one (past the size the
engine copies), a numpy view of a tensor taken once (Tensor.numpy()) and written through
every step, and an in-place op on numpy memory whose result numpy reads at once. Eager
reads and writes that memory when each op runs; so must co-execution.
"""
import numpy as np
import torch

from corpus_common import checksum

torch.manual_seed(35)
rng = np.random.default_rng(35)
model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.02)
batch = np.zeros((24, 16), dtype=np.float32)
target = np.zeros((24, 1), dtype=np.float32)
large = np.zeros((320, 1024), dtype=np.float32)  # 1.25 MiB
projection = torch.randn(1024, 16) * 0.01
mask = torch.ones(16)
mask_view = mask.numpy()
scale = np.ones(16, dtype=np.float32)
scale_tensor = torch.from_numpy(scale)
for step in range(30):
    batch[:] = rng.standard_normal((24, 16))
    target[:] = batch[:, :3].sum(1, keepdims=True)
    large[:] = rng.standard_normal((320, 1024)) if step % 2 else 0.5
    x = torch.from_numpy(batch) * mask
    y = torch.as_tensor(target)
    extra = (torch.from_numpy(large) @ projection).mean(0)
    loss = (model(x + extra) - y).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    mask_view[step % 16] = 0.5 if step % 3 else 1.0
    scale_tensor.mul_(0.99)
    if step % 6 == 0:
        print(step, round(loss.item(), 6), round(float(scale.sum()), 6))
checksum(model, mask, scale_tensor)
