"""A GRU over sequences whose length changes every step (cycling through 3 lengths).

Hard cases: variable sequence lengths (the graph branches per length, then each
branch co-executes).
"""
import torch

from corpus_common import checksum, device

torch.manual_seed(12)
dev = device()
gru = torch.nn.GRU(input_size=4, hidden_size=8, batch_first=True).to(dev)
head = torch.nn.Linear(8, 1).to(dev)
opt = torch.optim.Adam(list(gru.parameters()) + list(head.parameters()), lr=0.01)
LENGTHS = [5, 9, 7]
for step in range(24):
    length = LENGTHS[step % len(LENGTHS)]
    positions = torch.arange(length, dtype=torch.float32, device=dev)
    seq = torch.sin(positions * 0.3 + step).view(1, length, 1)
    seq = seq.repeat(3, 1, 4) * torch.tensor([1.0, 0.5, -0.5, 2.0], device=dev)
    target = seq[:, -1, :1]
    opt.zero_grad()
    out, hidden = gru(seq[:, :-1])
    loss = (head(out[:, -1]) - target).pow(2).mean()
    loss.backward()
    opt.step()
    print(step, length, loss.item())
checksum(gru, head)
