"""State dicts of model and optimizer saved to a temporary file mid-training and loaded
into fresh objects that continue training.

Hard cases: state dicts saved and loaded (torch.save to a temp file, torch.load;
the save must see real values, the loaded tensors are new state).
"""
import os
import tempfile

import torch

from corpus_common import checksum, device


def make():
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).to(device())
    return model, torch.optim.Adam(model.parameters(), lr=1e-2)


def train(model, opt, x, y, steps, label):
    for step in range(steps):
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
        print(label, step, loss.item())


torch.manual_seed(27)
x = torch.randn(24, 4)
y = torch.stack([x[:, 0] - x[:, 1], x[:, 2] * 0.5], 1)
x, y = x.to(device()), y.to(device())
model, opt = make()
train(model, opt, x, y, 12, "before")
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "ckpt.pt")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, path)
    train(model, opt, x, y, 5, "diverted")  # changes the live objects, not the file
    state = torch.load(path)
model2, opt2 = make()
model2.load_state_dict(state["model"])
opt2.load_state_dict(state["opt"])
train(model2, opt2, x, y, 12, "after")
checksum(model2)
checksum(model)
