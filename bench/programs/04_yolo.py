"""YOLO-style single-stage detector with three output scales on synthetic images.

Python features: a Python loop over scales; target assignment that depends on
tensor values (anchors chosen by the predicted boxes' IoU with the ground
truth, an ignore mask from predictions, `if` on a fetched count).
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.kit import IterationClock, prepare_model, program_arguments, seed_everything

IMAGE, CLASSES = 64, 3
ANCHORS = {8: [(10, 10), (16, 12)], 16: [(20, 20), (28, 18)], 32: [(40, 36), (56, 56)]}  # stride -> (w, h)
SIZE_RANGE = {8: (0, 16), 16: (16, 32), 32: (32, 1e9)}  # which objects each scale learns


def conv(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1))


class TinyYolo(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(conv(3, 16), conv(16, 32, 2), conv(32, 32), conv(32, 64, 2))
        self.down8 = nn.Sequential(conv(64, 64, 2), conv(64, 64))
        self.down16 = nn.Sequential(conv(64, 128, 2), conv(128, 128))
        self.down32 = nn.Sequential(conv(128, 128, 2), conv(128, 128))
        outputs = 2 * (5 + CLASSES)
        self.heads = nn.ModuleList([nn.Conv2d(64, outputs, 1), nn.Conv2d(128, outputs, 1), nn.Conv2d(128, outputs, 1)])

    def forward(self, x):
        p8 = self.down8(self.stem(x))
        p16 = self.down16(p8)
        p32 = self.down32(p16)
        return [head(p) for head, p in zip(self.heads, (p8, p16, p32))]


def synthetic_batch(rng, batch_size):
    images = 0.3 * rng.standard_normal((batch_size, 3, IMAGE, IMAGE)).astype(np.float32)
    targets = []
    for i in range(batch_size):
        boxes = []
        for _ in range(rng.integers(1, 4)):
            w, h = rng.uniform(8, 48, 2)
            x0, y0 = rng.uniform(0, IMAGE - w), rng.uniform(0, IMAGE - h)
            c = int(rng.integers(0, CLASSES))
            images[i, c, int(y0) : int(y0 + h), int(x0) : int(x0 + w)] += 1.0
            boxes.append([x0 + w / 2, y0 + h / 2, w, h, c])
        targets.append(np.array(boxes, dtype=np.float32))
    return torch.from_numpy(images), targets


def box_iou_cxcywh(a, b):
    """IoU of boxes given as (cx, cy, w, h), broadcasting over leading dims."""
    a0, a1 = a[..., :2] - a[..., 2:] / 2, a[..., :2] + a[..., 2:] / 2
    b0, b1 = b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2
    inter = (torch.min(a1, b1) - torch.max(a0, b0)).clamp(min=0).prod(-1)
    return inter / (a[..., 2:].prod(-1) + b[..., 2:].prod(-1) - inter + 1e-6)


def scale_loss(raw, stride, targets):
    """Loss of one output scale; targets go to the anchor whose prediction overlaps best."""
    n, _, h, w = raw.shape
    anchors = torch.tensor(ANCHORS[stride], dtype=torch.float32)
    pred = raw.view(n, 2, 5 + CLASSES, h, w).permute(0, 1, 3, 4, 2)
    grid_y, grid_x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    xy = (pred[..., :2].sigmoid() + torch.stack([grid_x, grid_y], -1)) * stride
    wh = pred[..., 2:4].clamp(-4, 4).exp() * anchors.view(1, 2, 1, 1, 2)
    boxes = torch.cat([xy, wh], -1).detach()
    obj_target = torch.zeros(n, 2, h, w)
    ignore = torch.zeros(n, 2, h, w, dtype=torch.bool)
    box_terms, cls_terms = [], []
    for i, gt in enumerate(targets):
        gt_t = torch.from_numpy(gt)
        # predictions already overlapping some object are not punished as background
        overlaps = box_iou_cxcywh(boxes[i].unsqueeze(-2), gt_t[:, :4])
        ignore[i] |= overlaps.max(-1).values > 0.5
        for box in gt_t:
            # only objects whose size suits this scale (value-dependent assignment)
            size = box[2:4].max().item()
            if not SIZE_RANGE[stride][0] <= size < SIZE_RANGE[stride][1]:
                continue
            gx, gy = int(box[0].item() // stride), int(box[1].item() // stride)
            a = int(box_iou_cxcywh(boxes[i, :, gy, gx], box[:4]).argmax().item())
            obj_target[i, a, gy, gx] = 1.0
            cell = pred[i, a, gy, gx]
            target_xy = box[:2] / stride - torch.tensor([gx, gy], dtype=torch.float32)
            target_wh = torch.log(box[2:4] / anchors[a])
            box_terms.append(F.mse_loss(cell[:2].sigmoid(), target_xy) + F.mse_loss(cell[2:4], target_wh))
            cls_terms.append(F.cross_entropy(cell[5:].unsqueeze(0), box[4:5].long()))
    weight = (~ignore | (obj_target > 0)).float()
    obj_loss = (F.binary_cross_entropy_with_logits(pred[..., 4], obj_target, reduction="none") * weight).sum() / n
    positives = int(obj_target.sum().item())
    if positives > 0:
        return obj_loss + torch.stack(box_terms).sum() / n + torch.stack(cls_terms).sum() / n, positives
    return obj_loss, positives


def main(argv=None):
    args = program_arguments(__doc__, default_iters=30).parse_args(argv)
    seed_everything(args.seed)
    rng = np.random.default_rng(args.seed)
    model = TinyYolo()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images, _ = synthetic_batch(rng, 8)
    net = prepare_model(model, args, (images,))
    clock = IterationClock(args)
    for it in range(args.iters):
        images, targets = synthetic_batch(rng, 8)
        outputs = net(images)
        loss, assigned = 0.0, []
        for stride, raw in zip(sorted(ANCHORS), outputs):
            part, positives = scale_loss(raw, stride, targets)
            loss = loss + part
            assigned.append(positives)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"iter {it} loss {loss.item()!r} assigned {assigned}")
        clock.tick()
    clock.finish()


if __name__ == "__main__":
    main()
