"""BERT-style extractive question answering with Python post-processing of spans.

Python features: start/end logits fetched with `.tolist()` every iteration and
turned into answer spans by Python loops (n-best starts x ends, length limit,
end >= start, only context positions), exact-match and F1 computed in Python;
padding masks over question + context of varying length.
"""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.kit import IterationClock, prepare_model, program_arguments, seed_everything

VOCAB, PAD, CLS, SEP, SEQ = 512, 0, 1, 2, 64
MAX_ANSWER, N_BEST = 8, 5


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


class BertForQA(nn.Module):
    def __init__(self, dim=128, heads=4, hidden=512, layers=3):
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, dim)
        self.segments = nn.Embedding(2, dim)
        self.positions = nn.Embedding(SEQ, dim)
        self.norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList([EncoderLayer(dim, heads, hidden) for _ in range(layers)])
        self.span = nn.Linear(dim, 2)

    def forward(self, tokens, segments, mask):
        positions = torch.arange(tokens.shape[1]).unsqueeze(0)
        x = self.norm(self.tokens(tokens) + self.segments(segments) + self.positions(positions))
        for layer in self.layers:
            x = layer(x, mask)
        start, end = self.span(x).unbind(-1)
        return start, end


def qa_batches(rng, batch_size):
    """The question names the answer's first and last token; the context contains them once."""
    while True:
        tokens = np.full((batch_size, SEQ), PAD, dtype=np.int64)
        segments = np.zeros((batch_size, SEQ), dtype=np.int64)
        spans = np.zeros((batch_size, 2), dtype=np.int64)
        for i in range(batch_size):
            first, last = rng.choice(np.arange(3, VOCAB), 2, replace=False)
            context_len = int(rng.integers(24, SEQ - 4))
            context = rng.integers(3, VOCAB, context_len)
            context = np.where((context == first) | (context == last), 3, context)
            length = int(rng.integers(1, MAX_ANSWER + 1))
            start = int(rng.integers(0, context_len - length))
            context[start], context[start + length - 1] = first, last
            question = [CLS, first, last, SEP]
            sequence = question + context.tolist() + [SEP]
            tokens[i, : len(sequence)] = sequence
            segments[i, len(question) : len(sequence)] = 1
            spans[i] = (len(question) + start, len(question) + start + length - 1)
        yield torch.from_numpy(tokens), torch.from_numpy(segments), torch.from_numpy(tokens != PAD), spans


def best_span(start_logits, end_logits, context):
    """Highest-scoring valid span from the n best starts and ends (SQuAD post-processing)."""
    starts = sorted(range(len(start_logits)), key=lambda i: -start_logits[i])[:N_BEST]
    ends = sorted(range(len(end_logits)), key=lambda i: -end_logits[i])[:N_BEST]
    best, best_score = (0, 0), -math.inf
    for s in starts:
        for e in ends:
            if not (context[s] and context[e]) or e < s or e - s + 1 > MAX_ANSWER:
                continue
            score = start_logits[s] + end_logits[e]
            if score > best_score:
                best, best_score = (s, e), score
    return best


def span_f1(predicted, gold):
    overlap = max(0, min(predicted[1], gold[1]) - max(predicted[0], gold[0]) + 1)
    if overlap == 0:
        return 0.0
    precision = overlap / (predicted[1] - predicted[0] + 1)
    recall = overlap / (gold[1] - gold[0] + 1)
    return 2 * precision * recall / (precision + recall)


def main(argv=None):
    args = program_arguments(__doc__, default_iters=30).parse_args(argv)
    seed_everything(args.seed)
    data = qa_batches(np.random.default_rng(args.seed), batch_size=16)
    model = BertForQA()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    tokens, segments, mask, _ = next(data)
    net = prepare_model(model, args, (tokens, segments, mask))
    clock = IterationClock(args)
    for it in range(args.iters):
        tokens, segments, mask, spans = next(data)
        start_logits, end_logits = net(tokens, segments, mask)
        gold = torch.from_numpy(spans)
        loss = (F.cross_entropy(start_logits, gold[:, 0]) + F.cross_entropy(end_logits, gold[:, 1])) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        context = (segments.bool() & (tokens != SEP)).tolist()
        exact, f1 = 0, 0.0
        for s_row, e_row, ctx, span in zip(start_logits.tolist(), end_logits.tolist(), context, spans.tolist()):
            predicted = best_span(s_row, e_row, ctx)
            exact += int(predicted == tuple(span))
            f1 += span_f1(predicted, span)
        print(f"iter {it} loss {loss.item()!r} em {exact / len(spans)!r} f1 {f1 / len(spans)!r}")
        clock.tick()
    clock.finish()


if __name__ == "__main__":
    main()
