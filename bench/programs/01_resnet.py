"""ResNet-style CNN on synthetic images, with a numpy metrics logger.

Python features: a generator yielding batches, `.item()` values handed to a
numpy-based logger every iteration (running mean, exponential average).
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.kit import IterationClock, prepare_model, program_arguments, seed_everything


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, widths=(16, 32, 64), blocks=2, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        layers, cin = [], widths[0]
        for i, w in enumerate(widths):
            for b in range(blocks):
                layers.append(BasicBlock(cin, w, 2 if (b == 0 and i > 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class MetricsLogger:
    """Keeps per-iteration metrics in numpy, as a training script's logger would."""

    def __init__(self, window=5):
        self.window = window
        self.losses = np.zeros(0)
        self.accuracies = np.zeros(0)
        self.ema = None

    def log(self, loss, accuracy):
        self.losses = np.append(self.losses, loss)
        self.accuracies = np.append(self.accuracies, accuracy)
        self.ema = loss if self.ema is None else 0.9 * self.ema + 0.1 * loss
        return float(np.mean(self.losses[-self.window:])), float(np.mean(self.accuracies[-self.window:]))


def batches(rng, batch_size, classes=10):
    """Synthetic images whose class sets a colour pattern, plus noise."""
    prototypes = rng.standard_normal((classes, 3, 32, 32)).astype(np.float32)
    while True:
        labels = rng.integers(0, classes, batch_size)
        images = prototypes[labels] + 0.8 * rng.standard_normal((batch_size, 3, 32, 32)).astype(np.float32)
        yield torch.from_numpy(images), torch.from_numpy(labels)


def main(argv=None):
    args = program_arguments(__doc__, default_iters=30).parse_args(argv)
    seed_everything(args.seed)
    data = batches(np.random.default_rng(args.seed), batch_size=32)
    model = ResNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    images, labels = next(data)
    net = prepare_model(model, args, (images,))
    logger = MetricsLogger()
    clock = IterationClock(args)
    for it in range(args.iters):
        images, labels = next(data)
        logits = net(images)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        accuracy = (logits.argmax(1) == labels).float().mean()
        mean_loss, mean_acc = logger.log(loss.item(), accuracy.item())
        print(f"iter {it} loss {loss.item()!r} avg_loss {mean_loss!r} avg_acc {mean_acc!r}")
        clock.tick()
    clock.finish()


if __name__ == "__main__":
    main()
