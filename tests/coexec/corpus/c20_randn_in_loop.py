"""Fresh random noise every step from the global generator (noisy inputs).

Hard cases: torch.randn inside the loop (the same RNG stream as eager, in
order). Repeats without divergence.
"""
import torch

from corpus_common import checksum, device

torch.manual_seed(20)
dev = device()
model = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.ReLU(), torch.nn.Linear(12, 6)).to(dev)
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
clean = torch.randn(24, 6).to(dev)
for step in range(30):
    noisy = clean + 0.1 * torch.randn(24, 6, device=dev)
    mask = torch.rand(24, 6, device=dev) > 0.1
    opt.zero_grad()
    loss = ((model(noisy * mask) - clean) ** 2).mean()
    loss.backward()
    opt.step()
    print(step, loss.item())
print("next random", torch.randn(3, device=dev))
checksum(model)
