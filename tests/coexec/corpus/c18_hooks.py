"""Forward hooks, full backward hooks and tensor hooks appending to Python lists.

Hard cases: forward/backward hooks appending to Python lists (the hooks fetch
values of placeholders). Repeats without divergence.
"""
import torch

from corpus_common import checksum, device

torch.manual_seed(18)
dev = device()
model = torch.nn.Sequential(torch.nn.Linear(5, 10), torch.nn.ReLU(), torch.nn.Linear(10, 1)).to(dev)
activations, grad_norms, tensor_grads = [], [], []
model[1].register_forward_hook(lambda m, i, o: activations.append(o.detach().mean().item()))
model[2].register_full_backward_hook(
    lambda m, gi, go: grad_norms.append(go[0].norm().item()))
model[0].weight.register_hook(lambda g: tensor_grads.append(g.abs().max().item()))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
x = torch.randn(20, 5)
y = x[:, :1] ** 2
x, y = x.to(dev), y.to(dev)
for step in range(25):
    opt.zero_grad()
    loss = (model(x) - y).pow(2).mean()
    loss.backward()
    opt.step()
    print(step, loss.item(), activations[-1], grad_norms[-1], tensor_grads[-1])
print(len(activations), len(grad_norms), len(tensor_grads))
checksum(model)
