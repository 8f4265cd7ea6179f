"""DCGAN on synthetic 32x32 images: generator and discriminator, two optimizers.

Python features: two models and two Adam optimizers stepped alternately,
`detach()` between the discriminator and generator steps, `.item()` losses.
"""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.kit import IterationClock, prepare_model, program_arguments, seed_everything

LATENT = 64


class Generator(nn.Module):
    def __init__(self, width=64):
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(LATENT, width * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(width * 4), nn.ReLU(True),
            nn.ConvTranspose2d(width * 4, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), nn.ReLU(True),
            nn.ConvTranspose2d(width * 2, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),
            nn.ConvTranspose2d(width, 3, 4, 2, 1, bias=False), nn.Tanh(),
        )

    def forward(self, z):
        return self.net(z)


class Discriminator(nn.Module):
    def __init__(self, width=64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width * 2, width * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 4), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width * 4, 1, 4, 1, 0, bias=False),
        )

    def forward(self, x):
        return self.net(x).flatten()


def init_weights(module):
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def real_images(rng, batch_size):
    """Smooth random colour gradients: an easy 'dataset' for the discriminator."""
    ys, xs = np.mgrid[0:32, 0:32] / 31.0
    while True:
        a = rng.uniform(-1, 1, (batch_size, 3, 1, 1))
        b = rng.uniform(-1, 1, (batch_size, 3, 1, 1))
        images = np.tanh(a * xs + b * ys + 0.1 * rng.standard_normal((batch_size, 3, 32, 32)))
        yield torch.from_numpy(images.astype(np.float32))


def main(argv=None):
    args = program_arguments(__doc__, default_iters=30).parse_args(argv)
    seed_everything(args.seed)
    data = real_images(np.random.default_rng(args.seed), batch_size=32)
    generator, discriminator = Generator(), Discriminator()
    generator.apply(init_weights)
    discriminator.apply(init_weights)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    z = torch.randn(32, LATENT, 1, 1)
    G = prepare_model(generator, args, (z,))
    D = prepare_model(discriminator, args, (next(data),))
    ones, zeros = torch.ones(32), torch.zeros(32)
    clock = IterationClock(args)
    for it in range(args.iters):
        real = next(data)
        z = torch.randn(32, LATENT, 1, 1)
        fake = G(z)
        # discriminator step: real against detached fakes
        d_loss = F.binary_cross_entropy_with_logits(D(real), ones) + F.binary_cross_entropy_with_logits(
            D(fake.detach()), zeros
        )
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        # generator step: fool the updated discriminator
        g_loss = F.binary_cross_entropy_with_logits(D(fake), ones)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        d, g = d_loss.item(), g_loss.item()
        if math.isnan(d) or math.isnan(g):
            raise FloatingPointError(f"GAN diverged at iteration {it}")
        print(f"iter {it} loss {d + g!r} d {d!r} g {g!r}")
        clock.tick()
    clock.finish()


if __name__ == "__main__":
    main()
