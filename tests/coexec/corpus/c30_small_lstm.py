"""A small LSTM language model on a synthetic token stream, truncated BPTT with a
hidden state carried (detached) from step to step.

Hard cases: state carried across iterations via detach(); Adam. Repeats without
divergence after the first step (the carried state's provenance settles).
"""
import torch
import torch.nn.functional as F

from corpus_common import checksum, device

torch.manual_seed(30)
dev = device()
VOCAB, SEQ, BATCH = 12, 8, 4
stream = (torch.arange(BATCH * SEQ * 25) * 7 % VOCAB).view(BATCH, -1).to(dev)
embed = torch.nn.Embedding(VOCAB, 16).to(dev)
lstm = torch.nn.LSTM(16, 24, batch_first=True).to(dev)
head = torch.nn.Linear(24, VOCAB).to(dev)
params = [*embed.parameters(), *lstm.parameters(), *head.parameters()]
opt = torch.optim.Adam(params, lr=5e-3)
state = None
for step in range(20):
    chunk = stream[:, step * SEQ:(step + 1) * SEQ + 1]
    inputs, targets = chunk[:, :-1], chunk[:, 1:]
    opt.zero_grad()
    out, state = lstm(embed(inputs), state)
    state = tuple(s.detach() for s in state)
    loss = F.cross_entropy(head(out).reshape(-1, VOCAB), targets.reshape(-1))
    loss.backward()
    opt.step()
    print(step, loss.item())
checksum(embed, lstm, head)
