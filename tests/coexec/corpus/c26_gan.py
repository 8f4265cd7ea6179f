"""A tiny GAN on 1-D data: two networks, two optimizers, detach() between them.

Hard cases: two optimizers (GAN); torch.randn inside the loop. Repeats without
divergence.
"""
import torch

from corpus_common import checksum, device

torch.manual_seed(26)
dev = device()
G = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)).to(dev)
D = torch.nn.Sequential(
    torch.nn.Linear(1, 16), torch.nn.LeakyReLU(0.2), torch.nn.Linear(16, 1)).to(dev)
opt_g = torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.5, 0.999))
opt_d = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.5, 0.999))
bce = torch.nn.BCEWithLogitsLoss()
ones, zeros = torch.ones(32, 1, device=dev), torch.zeros(32, 1, device=dev)
for step in range(30):
    real = torch.randn(32, 1, device=dev) * 0.5 + 2.0
    fake = G(torch.randn(32, 2, device=dev))
    opt_d.zero_grad()
    loss_d = bce(D(real), ones) + bce(D(fake.detach()), zeros)
    loss_d.backward()
    opt_d.step()
    opt_g.zero_grad()
    loss_g = bce(D(fake), ones)
    loss_g.backward()
    opt_g.step()
    print(step, loss_d.item(), loss_g.item(), fake.mean().item())
checksum(G, D)
