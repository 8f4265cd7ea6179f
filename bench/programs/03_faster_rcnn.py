"""Two-stage detector in the style of Faster R-CNN on synthetic images.

Python features: anchors, anchor matching, box encoding and non-maximum
suppression in numpy on fetched values; a variable number of boxes per image
and of proposals per image (new shapes each iteration); a Python loop over
proposals that crops the feature map (RoI pooling by slicing).
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.kit import IterationClock, prepare_model, program_arguments, seed_everything

IMAGE, STRIDE, CLASSES = 64, 8, 3  # CLASSES excludes the background class 0
SIZES, RATIOS = (16.0, 32.0), (0.5, 1.0, 2.0)


class RegionProposalNet(nn.Module):
    """Backbone (stride 8) plus the RPN head: objectness and box deltas per anchor."""

    def __init__(self, width=64, anchors=len(SIZES) * len(RATIOS)):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 48, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(48, width, 3, 2, 1), nn.ReLU(), nn.Conv2d(width, width, 3, 1, 1), nn.ReLU(),
        )
        self.head = nn.Conv2d(width, width, 3, 1, 1)
        self.objectness = nn.Conv2d(width, anchors, 1)
        self.deltas = nn.Conv2d(width, anchors * 4, 1)

    def forward(self, images):
        features = self.backbone(images)
        h = F.relu(self.head(features))
        n = images.shape[0]
        objectness = self.objectness(h).permute(0, 2, 3, 1).reshape(n, -1)
        deltas = self.deltas(h).permute(0, 2, 3, 1).reshape(n, -1, 4)
        return features, objectness, deltas


class RoIHead(nn.Module):
    def __init__(self, width=64, pooled=3):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(width * pooled * pooled, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
        self.classes = nn.Linear(256, CLASSES + 1)
        self.boxes = nn.Linear(256, 4)

    def forward(self, pooled):
        h = self.fc(pooled)
        return self.classes(h), self.boxes(h)


def make_anchors():
    centers = (np.arange(IMAGE // STRIDE) + 0.5) * STRIDE
    cy, cx = np.meshgrid(centers, centers, indexing="ij")
    shapes = [(s * np.sqrt(r), s / np.sqrt(r)) for s in SIZES for r in RATIOS]
    anchors = [[x - w / 2, y - h / 2, x + w / 2, y + h / 2] for y, x in zip(cy.ravel(), cx.ravel()) for w, h in shapes]
    return np.array(anchors, dtype=np.float32)


def iou(a, b):
    """IoU matrix of boxes a (N,4) and b (M,4), corners format."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-6)


def encode(boxes, reference):
    rw, rh = reference[:, 2] - reference[:, 0], reference[:, 3] - reference[:, 1]
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    dx = (boxes[:, 0] + bw / 2 - reference[:, 0] - rw / 2) / rw
    dy = (boxes[:, 1] + bh / 2 - reference[:, 1] - rh / 2) / rh
    return np.stack([dx, dy, np.log(bw / rw), np.log(bh / rh)], axis=1).astype(np.float32)


def decode(deltas, reference):
    rw, rh = reference[:, 2] - reference[:, 0], reference[:, 3] - reference[:, 1]
    cx = reference[:, 0] + rw / 2 + deltas[:, 0] * rw
    cy = reference[:, 1] + rh / 2 + deltas[:, 1] * rh
    w, h = rw * np.exp(np.clip(deltas[:, 2], -4, 4)), rh * np.exp(np.clip(deltas[:, 3], -4, 4))
    return np.clip(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1), 0, IMAGE)


def nms(boxes, scores, threshold):
    order, keep = np.argsort(-scores, kind="stable"), []
    while order.size > 0:
        best = order[0]
        keep.append(best)
        overlaps = iou(boxes[best : best + 1], boxes[order[1:]])[0]
        order = order[1:][overlaps < threshold]
    return np.array(keep, dtype=np.int64)


def match_anchors(anchors, gt, rng, samples=48):
    """RPN labels (1 fg, 0 bg, -1 ignored), subsampled, and regression targets."""
    overlaps = iou(anchors, gt)
    best = overlaps.max(axis=1)
    labels = np.full(len(anchors), -1, dtype=np.int64)
    labels[best < 0.3] = 0
    labels[best >= 0.5] = 1
    labels[overlaps.argmax(axis=0)] = 1
    for value, quota in ((1, samples // 2), (0, samples)):
        chosen = np.flatnonzero(labels == value)
        if value == 0:
            quota = samples - int((labels == 1).sum())
        if len(chosen) > quota:
            labels[rng.choice(chosen, len(chosen) - quota, replace=False)] = -1
    return labels, encode(gt[overlaps.argmax(axis=1)], anchors)


def synthetic_batch(rng, batch_size):
    """Noise images with 1-4 coloured rectangles each; the colour is the class."""
    images = 0.3 * rng.standard_normal((batch_size, 3, IMAGE, IMAGE)).astype(np.float32)
    targets = []
    for i in range(batch_size):
        count = rng.integers(1, 5)
        boxes, classes = [], []
        for _ in range(count):
            w, h = rng.uniform(12, 32, 2)
            x0, y0 = rng.uniform(0, IMAGE - w), rng.uniform(0, IMAGE - h)
            c = int(rng.integers(1, CLASSES + 1))
            images[i, c - 1, int(y0) : int(y0 + h), int(x0) : int(x0 + w)] += 1.0
            boxes.append([x0, y0, x0 + w, y0 + h])
            classes.append(c)
        targets.append((np.array(boxes, dtype=np.float32), np.array(classes)))
    return torch.from_numpy(images), targets


def roi_pool(features, box, size=3):
    """Crops one box from one image's feature map (by slicing) and pools it."""
    x0, y0, x1, y1 = (box / STRIDE).tolist()
    x0, y0 = int(np.floor(x0)), int(np.floor(y0))
    x1, y1 = max(int(np.ceil(x1)), x0 + 1), max(int(np.ceil(y1)), y0 + 1)
    return F.adaptive_avg_pool2d(features[:, y0:y1, x0:x1], size).flatten()


def main(argv=None):
    args = program_arguments(__doc__, default_iters=30).parse_args(argv)
    seed_everything(args.seed)
    rng = np.random.default_rng(args.seed)
    anchors = make_anchors()
    rpn_model, head_model = RegionProposalNet(), RoIHead()
    params = list(rpn_model.parameters()) + list(head_model.parameters())
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    images, _ = synthetic_batch(rng, 8)
    rpn = prepare_model(rpn_model, args, (images,))
    head = prepare_model(head_model, args, (torch.randn(8, 64 * 9),))
    clock = IterationClock(args)
    for it in range(args.iters):
        images, targets = synthetic_batch(rng, 8)
        features, objectness, deltas = rpn(images)
        rpn_losses, pooled, roi_labels, roi_targets = [], [], [], []
        proposals_per_image = []
        for i, (gt, gt_classes) in enumerate(targets):
            labels, box_targets = match_anchors(anchors, gt, rng)
            sampled = torch.from_numpy(np.flatnonzero(labels >= 0))
            positive = torch.from_numpy(np.flatnonzero(labels == 1))
            obj_loss = F.binary_cross_entropy_with_logits(
                objectness[i, sampled], torch.from_numpy(labels[labels >= 0].astype(np.float32))
            )
            box_loss = F.smooth_l1_loss(deltas[i, positive], torch.from_numpy(box_targets[labels == 1]))
            rpn_losses.append(obj_loss + box_loss)
            # proposals: decode, keep the best, suppress overlaps, add ground truth
            scores = objectness[i].detach().sigmoid().numpy()
            boxes = decode(deltas[i].detach().numpy(), anchors)
            top = np.argsort(-scores, kind="stable")[:50]
            keep = top[nms(boxes[top], scores[top], 0.6)][:8]
            proposals = np.concatenate([boxes[keep], gt])
            proposals = proposals[(proposals[:, 2] - proposals[:, 0] > 1) & (proposals[:, 3] - proposals[:, 1] > 1)]
            proposals_per_image.append(len(proposals))
            overlaps = iou(proposals, gt)
            matched = overlaps.argmax(axis=1)
            classes = np.where(overlaps.max(axis=1) >= 0.5, gt_classes[matched], 0)
            roi_labels.append(classes)
            roi_targets.append(encode(gt[matched], proposals))
            pooled.extend(roi_pool(features[i], torch.from_numpy(box)) for box in proposals)
        class_logits, box_deltas = head(torch.stack(pooled))
        roi_labels = torch.from_numpy(np.concatenate(roi_labels))
        roi_targets = torch.from_numpy(np.concatenate(roi_targets))
        foreground = roi_labels > 0
        cls_loss = F.cross_entropy(class_logits, roi_labels)
        box_loss = F.smooth_l1_loss(box_deltas[foreground], roi_targets[foreground]) if foreground.any() else 0.0
        loss = torch.stack(rpn_losses).mean() + cls_loss + box_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"iter {it} loss {loss.item()!r} rois {sum(proposals_per_image)}")
        clock.tick()
    clock.finish()


if __name__ == "__main__":
    main()
