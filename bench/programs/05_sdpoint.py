"""SDPoint: a ResNet whose downsampling point and ratio are drawn every iteration.

Python features: `random.randint` / `random.choice` inside `forward` pick
where (which block) and how much (ratio) the feature map is downsampled, so the
graph takes a different path, with different shapes, from one iteration to the
next (Kuen et al., "Stochastic Downsampling for Cost-Adjustable Inference").
"""

import random

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.kit import IterationClock, prepare_model, program_arguments, seed_everything


class Block(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        skip = x if self.proj is None else self.proj(x)
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + skip)


class SDPointResNet(nn.Module):
    def __init__(self, classes=10, ratios=(0.5, 0.75)):
        super().__init__()
        self.ratios = ratios
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.ModuleList([Block(16, 16), Block(16, 32, 2), Block(32, 32), Block(32, 64, 2), Block(64, 64)])
        self.fc = nn.Linear(64, classes)
        self.last_point = None

    def forward(self, x):
        point, ratio = len(self.blocks), 1.0
        if self.training:
            # the stochastic downsampling point: a block index (or none) and a ratio
            point = random.randint(0, len(self.blocks))
            ratio = random.choice(self.ratios)
        self.last_point = (point, ratio)
        x = self.stem(x)
        for i, block in enumerate(self.blocks):
            if i == point:
                x = F.interpolate(x, scale_factor=ratio, mode="bilinear", align_corners=False)
            x = block(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def batches(rng, batch_size, classes=10):
    prototypes = rng.standard_normal((classes, 3, 32, 32)).astype(np.float32)
    while True:
        labels = rng.integers(0, classes, batch_size)
        images = prototypes[labels] + rng.standard_normal((batch_size, 3, 32, 32)).astype(np.float32)
        yield torch.from_numpy(images), torch.from_numpy(labels)


def main(argv=None):
    args = program_arguments(__doc__, default_iters=30).parse_args(argv)
    seed_everything(args.seed)
    data = batches(np.random.default_rng(args.seed), batch_size=32)
    model = SDPointResNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    net = prepare_model(model, args, (next(data)[0],))
    clock = IterationClock(args)
    for it in range(args.iters):
        images, labels = next(data)
        loss = F.cross_entropy(net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"iter {it} loss {loss.item()!r} point {model.last_point}")
        clock.tick()
    clock.finish()


if __name__ == "__main__":
    main()
