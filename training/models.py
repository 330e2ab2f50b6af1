"""Base classifiers: a small CNN for 28x28-ish inputs, the CIFAR ResNet-18 (3x3 stem, no max
pool) for 32x32, and ResNet-50 for 224x224. Input channels = encoded channels.
No torchvision needed. Every model has `to_keras(g, x)` used by the TF.js exporter."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class SmallCNN(nn.Module):
    """conv-bn-relu x2, maxpool, conv-bn-relu x2, maxpool, fc-relu, fc."""

    def __init__(self, in_ch: int, num_classes: int, height: int, width: int,
                 widths=(32, 64), hidden: int = 128, gap: bool = False):
        super().__init__()
        c1, c2 = widths
        self.conv1, self.bn1 = nn.Conv2d(in_ch, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1)
        self.conv2, self.bn2 = nn.Conv2d(c1, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1)
        self.conv3, self.bn3 = nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2)
        self.conv4, self.bn4 = nn.Conv2d(c2, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2)
        self.fh, self.fw = height // 4, width // 4
        if self.fh < 1 or self.fw < 1:
            raise ValueError(f"SmallCNN needs at least 4x4 inputs, got {height}x{width}")
        # gap: global average pooling before fc1, so the weights do not grow with the image (224x224 fixtures)
        self.gap = gap
        self.fc1 = nn.Linear(c2 if gap else c2 * self.fh * self.fw, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.max_pool2d(x, 2)
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.relu(self.bn4(self.conv4(x)))
        x = F.max_pool2d(x, 2)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1) if self.gap else torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)

    def to_keras(self, g, x):
        x = g.conv(x, self.conv1, self.bn1, relu=True)
        x = g.conv(x, self.conv2, self.bn2, relu=True)
        x = g.maxpool(x, 2, 2)
        x = g.conv(x, self.conv3, self.bn3, relu=True)
        x = g.conv(x, self.conv4, self.bn4, relu=True)
        x = g.maxpool(x, 2, 2)
        if self.gap:
            x = g.dense(g.gap(x), self.fc1, relu=True)
        else:
            x = g.dense(g.flatten(x), self.fc1, relu=True, chw=(self.conv4.out_channels, self.fh, self.fw))
        return g.dense(x, self.fc2, name="logits")


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + sc)

    def to_keras(self, g, x):
        out = g.conv(x, self.conv1, self.bn1, relu=True)
        out = g.conv(out, self.conv2, self.bn2)
        sc = x if self.shortcut is None else g.conv(x, self.shortcut[0], self.shortcut[1])
        return g.relu(g.add(out, sc))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride=1):
        super().__init__()
        cout = planes * 4
        self.conv1, self.bn1 = nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        sc = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + sc)

    def to_keras(self, g, x):
        out = g.conv(x, self.conv1, self.bn1, relu=True)
        out = g.conv(out, self.conv2, self.bn2, relu=True)
        out = g.conv(out, self.conv3, self.bn3)
        sc = x if self.shortcut is None else g.conv(x, self.shortcut[0], self.shortcut[1])
        return g.relu(g.add(out, sc))


class ResNet(nn.Module):
    """cifar=True: 3x3 stride-1 stem, no max pool (the paper's CIFAR ResNet-18).
    cifar=False: ImageNet stem (7x7 stride 2, 3x3 max pool)."""

    def __init__(self, block, layers, in_ch, num_classes, cifar=True, widths=(64, 128, 256, 512)):
        super().__init__()
        self.cifar = cifar
        if cifar:
            self.conv1 = nn.Conv2d(in_ch, widths[0], 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_ch, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        blocks, cin = [], widths[0]
        for i, (planes, n) in enumerate(zip(widths, layers)):
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(cin, planes, stride))
                cin = planes * block.expansion
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        if not self.cifar:
            x = F.max_pool2d(x, 3, 2, 1)
        x = self.blocks(x)
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))

    def to_keras(self, g, x):
        x = g.conv(x, self.conv1, self.bn1, relu=True)
        if not self.cifar:
            x = g.maxpool(x, 3, 2, pad=1)  # zero padding == -inf padding after ReLU (inputs >= 0)
        for b in self.blocks:
            x = b.to_keras(g, x)
        x = g.gap(x)
        return g.dense(x, self.fc, name="logits")


class KeptViewNet(nn.Module):
    """A band-native base classifier: takes only the kept pixels of an ablation (column H x s, row
    s x W, block s x s, in wrap order from the ablation's position) and the position itself
    (B x 2 float, row and col), and costs about s/W of the dense network's multiply-adds.

    position="sincos": the absolute coordinate of every kept pixel enters as sin/cos channels of
    2*pi*(p + j)/W (and of the row for row/block schemes); periodic, so no modulo is needed at the
    seam. position="none": the position input is accepted and ignored (for the comparison)."""

    def __init__(self, body_arch: str, enc_ch: int, num_classes: int, kind: str, kept_h: int, kept_w: int,
                 height: int, width: int, position: str = "sincos"):
        super().__init__()
        if position not in POSITIONS:
            raise ValueError(f"unknown position encoding {position!r} (expected one of {', '.join(POSITIONS)})")
        self.position, self.height, self.width = position, height, width
        self.use_col = position == "sincos" and kind in ("column", "block")
        self.use_row = position == "sincos" and kind in ("row", "block")
        in_ch = enc_ch + 2 * (int(self.use_col) + int(self.use_row))
        self.body = build_model(body_arch, in_ch, num_classes, kept_h, kept_w)

    def forward(self, x, pos):
        feats = [x]
        ones = torch.ones_like(x[:, :1])
        if self.use_row:
            ang = (pos[:, 0:1] + torch.arange(x.shape[2], device=x.device, dtype=x.dtype)) * (2 * math.pi / self.height)
            feats += [ones * ang.sin()[:, None, :, None], ones * ang.cos()[:, None, :, None]]
        if self.use_col:
            ang = (pos[:, 1:2] + torch.arange(x.shape[3], device=x.device, dtype=x.dtype)) * (2 * math.pi / self.width)
            feats += [ones * ang.sin()[:, None, None, :], ones * ang.cos()[:, None, None, :]]
        if self.position == "none":
            return self.body(x) + 0 * pos[:, :1]  # keeps the position input in the exported graph
        return self.body(torch.cat(feats, dim=1))


POSITIONS = ("sincos", "none")
ARCHS = ("smallcnn", "tinycnn", "tinygap", "resnet18", "resnet18h", "resnet50")


def build_model(arch: str, in_ch: int, num_classes: int, height: int, width: int) -> nn.Module:
    if arch == "smallcnn":
        return SmallCNN(in_ch, num_classes, height, width)
    if arch == "tinycnn":  # fixtures: a few KB
        return SmallCNN(in_ch, num_classes, height, width, widths=(4, 8), hidden=16)
    if arch == "tinygap":  # 224x224 fixtures: tinycnn with global average pooling, still a few KB
        return SmallCNN(in_ch, num_classes, height, width, widths=(4, 8), hidden=16, gap=True)
    if arch == "resnet18":
        return ResNet(BasicBlock, (2, 2, 2, 2), in_ch, num_classes, cifar=True)
    if arch == "resnet18h":  # half width (32-64-128-256): a quarter of the multiply-adds
        return ResNet(BasicBlock, (2, 2, 2, 2), in_ch, num_classes, cifar=True, widths=(32, 64, 128, 256))
    if arch == "resnet50":
        return ResNet(Bottleneck, (3, 4, 6, 3), in_ch, num_classes, cifar=False)
    raise ValueError(f"unknown architecture {arch!r} (expected one of {', '.join(ARCHS)})")


def build_for_config(cfg: dict) -> nn.Module:
    """The network a training config (train.py's `config`, stored in checkpoints) describes."""
    from .ablation import Scheme, encoded_channels, kept_shape  # ablation imports nothing from here
    enc_ch = encoded_channels(cfg["encoding"], cfg["channels"])
    h, w, n = cfg["height"], cfg["width"], len(cfg["classes"])
    if cfg.get("view", "full") == "full":
        return build_model(cfg["arch"], enc_ch, n, h, w)
    scheme = Scheme(**cfg["scheme"])
    kh, kw = kept_shape(scheme, h, w)
    return KeptViewNet(cfg["arch"], enc_ch, n, scheme.kind, kh, kw, h, w, cfg.get("position", "sincos"))
