"""BERT-style encoder classifier on synthetic token sequences of varying length.

Python features: length-bucketed batches (a few distinct padded shapes), padding
masks, AdamW with a warm-up learning-rate schedule (a scalar that changes every
iteration), gradient clipping, and an accuracy counter in plain Python.
"""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.kit import IterationClock, prepare_model, program_arguments, seed_everything

VOCAB, PAD, CLS, GROUPS = 512, 0, 1, 4
BUCKETS = (16, 32, 48, 64)


class SelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x, mask):
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)
        scores = scores.masked_fill(~mask[:, None, None, :], -1e9)
        return self.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d))


class EncoderLayer(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.attention = SelfAttention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x, mask):
        x = self.norm1(x + self.attention(x, mask))
        return self.norm2(x + self.ff(x))


class BertClassifier(nn.Module):
    def __init__(self, dim=128, heads=4, hidden=512, layers=2, max_len=64, classes=GROUPS):
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, dim)
        self.positions = nn.Embedding(max_len, dim)
        self.norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList([EncoderLayer(dim, heads, hidden) for _ in range(layers)])
        self.classifier = nn.Linear(dim, classes)

    def forward(self, tokens, mask):
        positions = torch.arange(tokens.shape[1]).unsqueeze(0)
        x = self.norm(self.tokens(tokens) + self.positions(positions))
        for layer in self.layers:
            x = layer(x, mask)
        return self.classifier(x[:, 0])


def bucketed_batches(rng, batch_size):
    """Each batch picks a length bucket; sequences inside it vary in length and are padded.

    The label is the token group (token % 4) that occurs most often.
    """
    while True:
        bucket = int(rng.choice(BUCKETS))
        lengths = rng.integers(max(bucket - 15, 4), bucket + 1, batch_size)
        tokens = np.full((batch_size, bucket), PAD, dtype=np.int64)
        labels = np.zeros(batch_size, dtype=np.int64)
        for i, n in enumerate(lengths):
            favourite = rng.integers(0, GROUPS)
            body = rng.integers(2, VOCAB, n - 1)
            boost = rng.random(n - 1) < 0.3
            body[boost] = body[boost] - body[boost] % GROUPS + favourite
            body = np.maximum(body, 2)
            tokens[i, 0], tokens[i, 1:n] = CLS, body
            labels[i] = np.bincount(body % GROUPS, minlength=GROUPS).argmax()
        yield torch.from_numpy(tokens), torch.from_numpy(tokens != PAD), torch.from_numpy(labels)


def main(argv=None):
    args = program_arguments(__doc__, default_iters=30).parse_args(argv)
    seed_everything(args.seed)
    data = bucketed_batches(np.random.default_rng(args.seed), batch_size=32)
    model = BertClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01)
    warmup = 10
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    tokens, mask, _ = next(data)
    net = prepare_model(model, args, (tokens, mask))
    correct = seen = 0
    clock = IterationClock(args)
    for it in range(args.iters):
        tokens, mask, labels = next(data)
        logits = net(tokens, mask)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
        print(f"iter {it} loss {loss.item()!r} len {tokens.shape[1]} acc {correct / seen!r}")
        clock.tick()
    clock.finish()


if __name__ == "__main__":
    main()
