"""A small CNN on synthetic 12x12 images: conv, max-pool, flatten, linear.

Hard cases: loss.backward() through convolutions; SGD momentum. Repeats without
divergence.
"""
import torch
import torch.nn.functional as F

from corpus_common import checksum, device


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(4, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8 * 3 * 3, 3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(torch.flatten(x, 1))


torch.manual_seed(29)
dev = device()
images = torch.randn(24, 1, 12, 12)
labels = torch.arange(24) % 3
images[labels == 1, :, :6] += 1.0
images[labels == 2, :, :, :6] -= 1.0
images, labels = images.to(dev), labels.to(dev)
net = Net().to(dev)
opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
for step in range(20):
    opt.zero_grad()
    loss = F.cross_entropy(net(images), labels)
    loss.backward()
    opt.step()
    print(step, loss.item())
checksum(net)
