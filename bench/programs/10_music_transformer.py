"""Music-Transformer-style model: relative self-attention with the skewing trick.

Python features: relative position logits computed with the "skew" (pad,
reshape, slice) of Huang et al., the relative embeddings sliced to the current
length; every few steps a Python sampling loop that extends a melody event by
event (temperature sampling, growing shapes) and stops at the end event.
"""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.kit import IterationClock, prepare_model, program_arguments, seed_everything

PITCHES, SEQ = 48, 64
END, VOCAB = PITCHES, PITCHES + 1  # events: pitch 0..47, then the end-of-piece event
SAMPLE_EVERY, SAMPLE_EVENTS = 5, 20


class RelativeSelfAttention(nn.Module):
    def __init__(self, dim, heads, max_len=SEQ):
        super().__init__()
        self.heads, self.head_dim, self.max_len = heads, dim // heads, max_len
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.relative = nn.Parameter(torch.randn(max_len, dim // heads) * 0.02)  # E_r, distances -(L-1)..0

    def skew(self, qe):
        """(B, H, L, L) logits over relative distances -> logits over absolute key positions."""
        b, h, n, _ = qe.shape
        padded = F.pad(qe, (1, 0))
        return padded.reshape(b, h, n + 1, n)[:, :, 1:, :]

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        relative = self.skew(q @ self.relative[self.max_len - n :].transpose(0, 1))
        scores = (q @ k.transpose(-2, -1) + relative) / math.sqrt(self.head_dim)
        causal = torch.ones(n, n, dtype=torch.bool).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        return self.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d))


class DecoderLayer(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = RelativeSelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.ff(self.norm2(x))


class MusicTransformer(nn.Module):
    def __init__(self, dim=128, heads=4, layers=3):
        super().__init__()
        self.events = nn.Embedding(VOCAB, dim)
        self.layers = nn.ModuleList([DecoderLayer(dim, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, VOCAB)

    def forward(self, events):
        x = self.events(events) * math.sqrt(self.events.embedding_dim)
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x))


def melodies(rng, batch_size):
    """Random walks on a major scale with repeated motifs; pieces end with the END event."""
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    while True:
        batch = np.full((batch_size, SEQ + 1), END, dtype=np.int64)
        for i in range(batch_size):
            length = int(rng.integers(SEQ // 2, SEQ + 1))
            degree, notes = int(rng.integers(7, 14)), []
            while len(notes) < length:
                motif = rng.integers(-2, 3, int(rng.integers(2, 5)))
                for step in np.concatenate([motif, motif]):
                    degree = int(np.clip(degree + step, 0, 27))
                    notes.append(12 * (degree // 7) + scale[degree % 7])
            batch[i, :length] = notes[:length]
        yield torch.from_numpy(batch[:, :-1]), torch.from_numpy(batch[:, 1:])


def continue_melody(model, primer, generator, temperature=1.0):
    events = torch.tensor([primer])
    for _ in range(SAMPLE_EVENTS):
        logits = model(events)[0, -1] / temperature
        event = torch.multinomial(logits.softmax(-1), 1, generator=generator)
        if int(event) == END:
            break
        events = torch.cat([events, event.view(1, 1)], dim=1)
    return events[0, len(primer) :].tolist()


def main(argv=None):
    args = program_arguments(__doc__, default_iters=30).parse_args(argv)
    seed_everything(args.seed)
    data = melodies(np.random.default_rng(args.seed), batch_size=16)
    model = MusicTransformer()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4, betas=(0.9, 0.98))
    generator = torch.Generator().manual_seed(args.seed + 1)
    net = prepare_model(model, args, (next(data)[0],))
    clock = IterationClock(args)
    for it in range(args.iters):
        events, targets = next(data)
        loss = F.cross_entropy(net(events).reshape(-1, VOCAB), targets.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"iter {it} loss {loss.item()!r}")
        if (it + 1) % SAMPLE_EVERY == 0:
            net.eval()
            with torch.no_grad():
                print(f"melody {it}: {continue_melody(net, [24, 26, 28], generator)}")
            net.train()
        clock.tick()
    clock.finish()


if __name__ == "__main__":
    main()
