"""A recursive network over Python trees (nested tuples), TreeRNN style.

Hard cases: recursion over Python data (the recursive function issues the tensor
ops; the training loop over the fixed list of trees is the region). Each step uses
another tree shape, so iterations repeat only once all trees were seen.
"""
import torch

from corpus_common import checksum, device

torch.manual_seed(10)
dev = device()
embed = torch.nn.Embedding(10, 8).to(dev)
combine = torch.nn.Linear(16, 8).to(dev)
readout = torch.nn.Linear(8, 1).to(dev)
params = list(embed.parameters()) + list(combine.parameters()) + list(readout.parameters())
opt = torch.optim.Adam(params, lr=0.01)
TREES = [((1, 2), 3), (4, (5, (6, 7))), ((8, 9), (1, 0))]


def encode(tree):
    if isinstance(tree, int):
        return embed(torch.tensor(tree, device=dev))
    left, right = tree
    return torch.tanh(combine(torch.cat([encode(left), encode(right)])))


def count_leaves(tree):
    return 1 if isinstance(tree, int) else count_leaves(tree[0]) + count_leaves(tree[1])


for step in range(24):
    tree = TREES[step % len(TREES)]
    opt.zero_grad()
    prediction = readout(encode(tree)).squeeze()
    loss = (prediction - count_leaves(tree) / 4.0) ** 2
    loss.backward()
    opt.step()
    print(step, loss.item())
checksum(embed, combine, readout)
