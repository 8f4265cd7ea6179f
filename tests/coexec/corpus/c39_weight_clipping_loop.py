"""Weight clipping after each step, in a loop over the parameters (as a WGAN critic's).

Hard cases: the loop level whose iterations repeat. The clipping loop repeats too (its
runs follow the same four paths every step) and is accepted first, but it is a small part
of the step: the step loop must be the region, with the clipping loop inside it
(terra/regions.py, MINOR_INNER_SHARE). Repeats without divergence.
"""
import torch

from corpus_common import checksum, device

torch.manual_seed(39)
dev = device()
critic = torch.nn.Sequential(
    torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
    torch.nn.Linear(64, 1)).to(dev)
opt = torch.optim.RMSprop(critic.parameters(), lr=5e-3)
real = (torch.randn(64, 16) + 1).to(dev)
fake = torch.randn(64, 16).to(dev)
for step in range(30):
    opt.zero_grad()
    loss = critic(fake).mean() - critic(real).mean()
    loss.backward()
    opt.step()
    for p in critic.parameters():
        p.data.clamp_(-0.05, 0.05)
    print(step, loss.item())
checksum(critic)
