"""A CNN-free BatchNorm network: running statistics update in train mode.

Hard cases: train()/eval() with BatchNorm running stats (buffers are state that
changes every iteration, in place). Repeats apart from the eval steps.
"""
import torch
import torch.nn.functional as F

from corpus_common import checksum, device

torch.manual_seed(15)
dev = device()
model = torch.nn.Sequential(
    torch.nn.Linear(6, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(), torch.nn.Linear(16, 2),
).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
data = torch.randn(96, 6) * 3 + 1
labels = (data[:, 0] * data[:, 1] > 1).long()
data, labels = data.to(dev), labels.to(dev)
for step in range(30):
    xb = data[(step % 3) * 32:(step % 3) * 32 + 32]
    yb = labels[(step % 3) * 32:(step % 3) * 32 + 32]
    model.train()
    opt.zero_grad()
    loss = F.cross_entropy(model(xb), yb)
    loss.backward()
    opt.step()
    bn = model[1]
    print(step, loss.item(), bn.running_mean[:3].tolist(), int(bn.num_batches_tracked))
    if step % 10 == 9:
        model.eval()
        with torch.no_grad():
            print("eval", step, F.cross_entropy(model(data), labels).item())
checksum(model)
