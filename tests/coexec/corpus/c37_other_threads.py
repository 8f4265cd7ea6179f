"""Other Python threads reading what the training loop hands them.

Hard case: a logger thread fed through a queue.Queue reduces each step's output and a copy
of the stepped weights (a copy: the live parameter would be read whenever the logger gets to
it, after later steps, in eager too); a checkpoint thread, started and joined every 10 steps,
serialises the state dict, whose parameters the step just updated.
Eager computed those tensors before handing them over; co-executed, their ops may still be
queued, so the threads' reads must wait for them (without Terra's thread hook, a read of an
unfilled output crashes the process).
"""
import hashlib
import io
import queue
import threading

import torch

from corpus_common import checksum

torch.manual_seed(37)
model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x = torch.randn(64, 32)
y = torch.randn(64, 1)
handed = queue.Queue()
logged = []


def logger():
    while (item := handed.get()) is not None:
        out, weight = item
        logged.append(((out * out).mean().item(), float(weight.abs().sum())))


def save_checkpoint(state, digests):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    digests.append(hashlib.sha256(buffer.getvalue()).hexdigest()[:16])


thread = threading.Thread(target=logger)
thread.start()
digests = []
for step in range(30):
    opt.zero_grad()
    out = model(x)
    loss = (out - y).pow(2).mean()
    loss.backward()
    opt.step()
    handed.put((out.detach(), model[0].weight.detach().clone()))
    if step % 10 == 9:
        writer = threading.Thread(target=save_checkpoint, args=(model.state_dict(), digests))
        writer.start()
        writer.join()
handed.put(None)
thread.join()
for step, (energy, weight_sum) in enumerate(logged):
    print(step, f"{energy:.9g}", f"{weight_sum:.9g}")
print("checkpoints", digests)
checksum(model)
