"""Image classifiers for ``[batch, channels, height, width]`` float inputs, written in-tree.

torchvision cannot be installed beside the CPU torch build used here, so the
ResNets (He et al., 2015) are written out: basic blocks for ResNet-18, bottleneck
blocks for ResNet-50. ``small_input=True`` (the default) swaps the ImageNet stem
(7x7 stride-2 conv + max-pool) for a 3x3 stride-1 conv, as usual for 8x8 and
28x28 digits. Each model lists its residual blocks in ``recompute_blocks()``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Two conv-BN-ReLU-pool stages and a linear head: fast, and ~99% on mnist-5k-sized data."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 32, dropout: float = 0.2) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(in_channels, width, 3, 1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
            _conv_bn(width, 2 * width, 3, 1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x).flatten(1)))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn(in_planes, planes, 3, stride), nn.ReLU(inplace=True), _conv_bn(planes, planes, 3, 1)
        )
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn(in_planes, planes, 1, 1),
            nn.ReLU(inplace=True),
            _conv_bn(planes, planes, 3, stride),
            nn.ReLU(inplace=True),
            _conv_bn(planes, planes * self.expansion, 1, 1),
        )
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        in_channels: int,
        num_classes: int,
        width: int = 64,
        small_input: bool = True,
    ) -> None:
        super().__init__()
        if small_input:
            self.stem = nn.Sequential(_conv_bn(in_channels, width, 3, 1), nn.ReLU(inplace=True))
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 7, 2, 3, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1),
            )
        stages, in_planes = [], width
        for i, count in enumerate(layers):
            planes = width * 2**i
            blocks = []
            for j in range(count):
                blocks.append(block(in_planes, planes, 2 if i > 0 and j == 0 else 1))
                in_planes = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(in_planes, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def recompute_blocks(self) -> Iterator[nn.Module]:
        for stage in self.stages:
            yield from stage

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.stages(self.stem(x))).flatten(1))


def resnet18(in_channels: int, num_classes: int, width: int = 64, small_input: bool = True) -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels, num_classes, width, small_input)


def resnet50(in_channels: int, num_classes: int, width: int = 64, small_input: bool = True) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), in_channels, num_classes, width, small_input)


def _conv_bn(in_planes: int, planes: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_planes, planes, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(planes))


def _shortcut(in_planes: int, planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == planes:
        return nn.Identity()
    return _conv_bn(in_planes, planes, 1, stride)
