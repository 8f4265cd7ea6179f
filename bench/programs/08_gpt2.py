"""GPT-2-style character language model with periodic autoregressive sampling.

Python features: training steps with dropout; every few steps `eval()` +
`no_grad()` and a Python sampling loop (top-k, temperature, `torch.multinomial`
with an explicit `torch.Generator`) that grows the sequence one token at a time
(a new shape each step) and stops early at the end-of-text token.
"""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.kit import IterationClock, prepare_model, program_arguments, seed_everything

ALPHABET = "\nabcdefghijklmnopqrstuvwxyz .,"
EOT, VOCAB, CONTEXT = 0, len(ALPHABET), 64
SAMPLE_EVERY, SAMPLE_TOKENS, TOP_K = 4, 24, 5


class CausalSelfAttention(nn.Module):
    def __init__(self, dim, heads, dropout):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)
        self.register_buffer("causal", torch.tril(torch.ones(CONTEXT, CONTEXT, dtype=torch.bool)))

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)
        scores = scores.masked_fill(~self.causal[:n, :n], float("-inf"))
        attention = self.drop(scores.softmax(-1))
        return self.proj((attention @ v).transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, dim, heads, dropout):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attention = CausalSelfAttention(dim, heads, dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout))

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, dim=128, heads=4, layers=3, dropout=0.1):
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, dim)
        self.positions = nn.Embedding(CONTEXT, dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([Block(dim, heads, dropout) for _ in range(layers)])
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, VOCAB, bias=False)
        self.head.weight = self.tokens.weight  # tied embeddings, as in GPT-2
        nn.init.normal_(self.tokens.weight, std=0.02)
        nn.init.normal_(self.positions.weight, std=0.02)

    def forward(self, idx):
        positions = torch.arange(idx.shape[1]).unsqueeze(0)
        x = self.drop(self.tokens(idx) + self.positions(positions))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def corpus(rng, size=20000):
    """Sentences from a small vocabulary of words; each sentence ends with EOT."""
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "and", "slept", "big", "red", "sun"]
    text = []
    while len(text) < size:
        sentence = " ".join(rng.choice(words, int(rng.integers(3, 8)))) + "."
        text.extend(ALPHABET.index(c) for c in sentence)
        text.append(EOT)
    return np.array(text, dtype=np.int64)


def batches(rng, text, batch_size):
    while True:
        starts = rng.integers(0, len(text) - CONTEXT - 1, batch_size)
        chunk = np.stack([text[s : s + CONTEXT + 1] for s in starts])
        yield torch.from_numpy(chunk[:, :-1]), torch.from_numpy(chunk[:, 1:])


def sample(model, prompt, generator):
    """Top-k sampling, one token at a time, until EOT or SAMPLE_TOKENS tokens."""
    idx = torch.tensor([prompt])
    for _ in range(SAMPLE_TOKENS):
        logits = model(idx[:, -CONTEXT:])[:, -1, :] / 0.8
        values, indices = torch.topk(logits, TOP_K)
        choice = torch.multinomial(F.softmax(values, dim=-1), 1, generator=generator)
        token = indices.gather(-1, choice)
        if token.item() == EOT:
            break
        idx = torch.cat([idx, token], dim=1)
    return "".join(ALPHABET[t] for t in idx[0].tolist())


def main(argv=None):
    args = program_arguments(__doc__, default_iters=30).parse_args(argv)
    seed_everything(args.seed)
    rng = np.random.default_rng(args.seed)
    data = batches(rng, corpus(rng), batch_size=16)
    model = GPT()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    generator = torch.Generator().manual_seed(args.seed)
    net = prepare_model(model, args, (next(data)[0],))
    clock = IterationClock(args)
    for it in range(args.iters):
        x, y = next(data)
        logits = net(x)
        loss = F.cross_entropy(logits.view(-1, VOCAB), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        print(f"iter {it} loss {loss.item()!r}")
        if (it + 1) % SAMPLE_EVERY == 0:
            net.eval()
            with torch.no_grad():
                text = sample(net, [ALPHABET.index("t")], generator)
            net.train()
            print(f"sample {it}: {text!r}")
        clock.tick()
    clock.finish()


if __name__ == "__main__":
    main()
