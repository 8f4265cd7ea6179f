"""Classifier trained with SGD + momentum + weight decay on mini-batches.

Hard cases: SGD momentum (state created at the first step), loss.backward().
Repeats without divergence.
"""
import torch
import torch.nn.functional as F

from corpus_common import checksum, device


def main():
    torch.manual_seed(1)
    dev = device()
    model = torch.nn.Sequential(
        torch.nn.Linear(10, 24), torch.nn.Tanh(), torch.nn.Linear(24, 3)).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    data = torch.randn(128, 10)
    labels = (data[:, 0] > 0).long() + (data[:, 1] > 0.5).long()
    data, labels = data.to(dev), labels.to(dev)
    for step in range(32):
        i = (step % 4) * 32
        xb, yb = data[i:i + 32], labels[i:i + 32]
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        print(f"step {step} loss {loss.item()!r}")
    checksum(model)


if __name__ == "__main__":
    main()
