"""A user exception raised inside `loss.backward()` by a hook, caught; training goes on.

Hard cases: a user exception in mid-iteration, caught, training continues; hooks. The
exception leaves the backward pass half done: gradients the autograd engine accumulated
before the raise are kept, the others stay as they were, exactly as in eager. A module's
full backward hook raises every 5th step, a tensor hook every 7th; the handler prints
every gradient, and the step skips its optimizer update.
"""
import torch

from corpus_common import checksum, device


class HookRefused(Exception):
    pass


torch.manual_seed(38)
dev = device()
model = torch.nn.Sequential(
    torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU(),
    torch.nn.Linear(8, 1)).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
state = {"step": 0}


def refuse_some_steps(module, grad_input, grad_output):
    if state["step"] % 5 == 3:
        raise HookRefused(f"module hook refuses step {state['step']}")


def tensor_hook(grad):
    if state["step"] % 7 == 6:
        raise HookRefused(f"tensor hook refuses step {state['step']}")
    return grad * 1.0


model[2].register_full_backward_hook(refuse_some_steps)
g = torch.Generator().manual_seed(38)
for step in range(25):
    state["step"] = step
    x = torch.randn(6, 4, generator=g).to(dev)
    opt.zero_grad()
    hidden = model[0](x)
    hidden.register_hook(tensor_hook)
    loss = model[4](model[3](model[2](model[1](hidden)))).pow(2).mean()
    try:
        loss.backward()
    except HookRefused as error:
        grads = [None if p.grad is None else round(p.grad.abs().sum().item(), 6)
                 for p in model.parameters()]
        print("caught:", error, grads)
        continue
    opt.step()
    print(step, loss.item())
checksum(model)
