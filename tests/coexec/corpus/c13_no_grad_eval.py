"""Evaluation under torch.no_grad() every k steps inside the step loop.

Hard cases: no_grad evaluation every k steps (a branch of the step region).
Repeats apart from the evaluation steps.
"""
import torch
import torch.nn.functional as F

from corpus_common import checksum, device

torch.manual_seed(13)
dev = device()
model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x_train, x_val = torch.randn(64, 6), torch.randn(32, 6)
y_train, y_val = x_train[:, :3].argmax(1), x_val[:, :3].argmax(1)
x_train, x_val, y_train, y_val = (t.to(dev) for t in (x_train, x_val, y_train, y_val))
for step in range(30):
    opt.zero_grad()
    loss = F.cross_entropy(model(x_train), y_train)
    loss.backward()
    opt.step()
    print(step, loss.item())
    if step % 5 == 4:
        with torch.no_grad():
            logits = model(x_val)
            accuracy = (logits.argmax(1) == y_val).float().mean()
            print("eval", step, accuracy.item(), F.cross_entropy(logits, y_val).item())
checksum(model)
