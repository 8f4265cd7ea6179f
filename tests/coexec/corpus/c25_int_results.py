"""Integer results of tensors used as Python ints: indexing lists, ranges, counters.

Hard cases: integer results used as Python ints (argmax().item(), sum().item(),
int(t), len(t.nonzero())). Repeats without divergence in the tensor ops.
"""
import torch
import torch.nn.functional as F

from corpus_common import checksum, device

torch.manual_seed(25)
dev = device()
NAMES = ["zero", "one", "two", "three"]
model = torch.nn.Linear(6, 4).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.2)
x = torch.randn(32, 6)
y = (x[:, :4]).argmax(1)
x, y = x.to(dev), y.to(dev)
counts = [0, 0, 0, 0]
for step in range(30):
    opt.zero_grad()
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    opt.step()
    correct = (logits.argmax(1) == y).sum().item()
    best = int(logits[0].argmax())
    counts[best] += 1
    ticks = "".join("#" for _ in range(correct // 4))
    print(step, correct, NAMES[best], ticks, loss.item())
print(counts)
checksum(model)
