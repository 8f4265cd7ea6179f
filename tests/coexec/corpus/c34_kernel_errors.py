"""Kernels that raise on some steps' values, each error caught by the program.

Hard case: an op whose CPU kernel raises on the values it reads (an index out of range,
a target class that does not exist, a matrix that is not positive-definite, an integer
division by zero). Eager raises at that op, inside the program's try; co-execution must
raise there too (not at a later op, past the handler), with eager's message, and leave
every tensor as eager would.
"""
import torch
import torch.nn.functional as F

from corpus_common import checksum, device

torch.manual_seed(34)
dev = device()
embed = torch.nn.Embedding(10, 6).to(dev)
head = torch.nn.Linear(6, 4).to(dev)
params = list(embed.parameters()) + list(head.parameters())
opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
tokens = torch.randint(0, 10, (40, 5))
labels = torch.randint(0, 4, (40,))
tokens[13, 2] = 10  # not a row of the embedding
labels[21] = 4  # not a class of the head
tokens, labels = tokens.to(dev), labels.to(dev)
counts = torch.arange(1, 5, device=dev)
caught = []
for step in range(40):
    opt.zero_grad()
    try:
        features = embed(tokens[step]).mean(0, keepdim=True)
        loss = F.cross_entropy(head(features), labels[step:step + 1])
        loss.backward()
        opt.step()
    except (IndexError, RuntimeError) as error:
        caught.append((step, type(error).__name__, str(error).splitlines()[0]))
    with torch.no_grad():
        spread = head.weight @ head.weight.T - (2.0 if step % 10 == 9 else 0.0) * torch.eye(4, device=dev)
        try:
            factor = torch.linalg.cholesky(spread)
        except RuntimeError as error:
            caught.append((step, "cholesky", str(error).splitlines()[0]))
            factor = torch.linalg.cholesky(spread + 3.0 * torch.eye(4, device=dev))
        try:
            shares = torch.arange(4, device=dev) // (counts - int(step % 4 == 3))
        except RuntimeError as error:
            caught.append((step, "division", str(error)))
            shares = torch.zeros(4, dtype=torch.long, device=dev)
        head.bias.add_(factor.diagonal() * 1e-3 + shares * 1e-4)
    if step % 8 == 0:
        print(step, round(loss.item(), 6))
for entry in caught:
    print(*entry)
checksum(embed, head)
