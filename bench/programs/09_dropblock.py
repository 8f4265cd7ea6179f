"""A CNN regularised by DropBlock, its block mask drawn with numpy every step.

Python features: the DropBlock layer draws its seed mask with a numpy
generator held by the module, hands it over with `torch.from_numpy`, and its
keep probability follows a per-iteration linear schedule set from the training
loop (identity while the probability is 1; Ghiasi et al., "DropBlock").
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.kit import IterationClock, prepare_model, program_arguments, seed_everything


class DropBlock2d(nn.Module):
    def __init__(self, block_size, seed):
        super().__init__()
        self.block_size = block_size
        self.keep_prob = 1.0
        self.rng = np.random.default_rng(seed)

    def forward(self, x):
        if not self.training or self.keep_prob >= 1.0:
            return x
        n, c, h, w = x.shape
        b = self.block_size
        gamma = (1.0 - self.keep_prob) / b**2 * (h * w) / ((h - b + 1) * (w - b + 1))
        seeds = (self.rng.random((n, c, h - b + 1, w - b + 1)) < gamma).astype(np.float32)
        seeds = np.pad(seeds, ((0, 0), (0, 0), (b // 2, (b - 1) // 2), (b // 2, (b - 1) // 2)))
        dropped = F.max_pool2d(torch.from_numpy(seeds), b, stride=1, padding=b // 2)[..., :h, :w]
        keep = 1.0 - dropped
        return x * keep * (keep.numel() / keep.sum().clamp(min=1.0))


def conv_bn(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class DropBlockNet(nn.Module):
    def __init__(self, classes=10, seed=0):
        super().__init__()
        self.stage1 = nn.Sequential(conv_bn(3, 16), conv_bn(16, 16))
        self.stage2 = nn.Sequential(conv_bn(16, 32, 2), conv_bn(32, 32))
        self.drop2 = DropBlock2d(block_size=5, seed=seed + 1)
        self.stage3 = nn.Sequential(conv_bn(32, 64, 2), conv_bn(64, 64))
        self.drop3 = DropBlock2d(block_size=3, seed=seed + 2)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.drop2(self.stage2(self.stage1(x)))
        x = self.drop3(self.stage3(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def batches(rng, batch_size, classes=10):
    prototypes = rng.standard_normal((classes, 3, 32, 32)).astype(np.float32)
    while True:
        labels = rng.integers(0, classes, batch_size)
        images = prototypes[labels] + rng.standard_normal((batch_size, 3, 32, 32)).astype(np.float32)
        yield torch.from_numpy(images), torch.from_numpy(labels)


def keep_probability(iteration, total, final=0.85):
    """Linear schedule from 1.0 (no dropping) at the start to `final` at the end."""
    return 1.0 - (1.0 - final) * iteration / max(total - 1, 1)


def main(argv=None):
    args = program_arguments(__doc__, default_iters=30).parse_args(argv)
    seed_everything(args.seed)
    data = batches(np.random.default_rng(args.seed), batch_size=32)
    model = DropBlockNet(seed=args.seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    net = prepare_model(model, args, (next(data)[0],))
    clock = IterationClock(args)
    for it in range(args.iters):
        keep = keep_probability(it, args.iters)
        for module in model.modules():
            if isinstance(module, DropBlock2d):
                module.keep_prob = keep
        images, labels = next(data)
        loss = F.cross_entropy(net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"iter {it} loss {loss.item()!r} keep {keep!r}")
        clock.tick()
    clock.finish()


if __name__ == "__main__":
    main()
