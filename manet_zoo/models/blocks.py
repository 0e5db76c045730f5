"""Building blocks of MA-Net: ResNet BasicBlock, CBAM, the attentive block and the
symmetric multi-scale block.

Every block follows the official MA-Net code operation for operation (see
``docs/architecture.md``); only the module names are our own, and
:mod:`manet_zoo.models.official` maps them to and from the official checkpoint keys.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias, as in torchvision's ResNet."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class Shortcut(nn.Module):
    """1x1 convolution + BatchNorm projection for a residual whose shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))


def make_shortcut(in_channels: int, out_channels: int, stride: int) -> Shortcut | None:
    """A projection when channels or resolution change, else ``None`` (identity)."""
    if stride == 1 and in_channels == out_channels:
        return None
    return Shortcut(in_channels, out_channels, stride)


class BasicBlock(nn.Module):
    """ResNet BasicBlock: conv3x3-BN-ReLU-conv3x3-BN, + shortcut, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = make_shortcut(in_channels, out_channels, stride)

    def residual(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.relu(self.residual(x) + identity)


class ChannelGate(nn.Module):
    """CBAM channel attention: sigmoid(MLP(avg-pool) + MLP(max-pool)) scales each channel.

    Pooling reduces over the spatial axes directly instead of deriving kernel sizes
    from the tensor shape (as the official code does), so that exported graphs keep
    a dynamic batch axis. The result is the same.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(channels // reduction, channels)

    def mlp(self, pooled: Tensor) -> Tensor:
        return self.fc2(self.relu(self.fc1(pooled)))

    def forward(self, x: Tensor) -> Tensor:
        logits = self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3)))
        return x * torch.sigmoid(logits)[:, :, None, None]


class SpatialGate(nn.Module):
    """CBAM spatial attention: sigmoid(BN(conv7x7([max over C, mean over C]))).

    The BatchNorm uses momentum 0.01, as the CBAM and MA-Net code do.
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.bn(self.conv(pooled)))


class CBAM(nn.Module):
    """Convolutional Block Attention Module: channel gate, then spatial gate."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.channel_gate = ChannelGate(channels, reduction)
        self.spatial_gate = SpatialGate()

    def forward(self, x: Tensor) -> Tensor:
        return self.spatial_gate(self.channel_gate(x))


class AttentiveBlock(BasicBlock):
    """BasicBlock whose second BN output goes through CBAM before the shortcut add."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, stride)
        self.cbam = CBAM(out_channels)

    def residual(self, x: Tensor) -> Tensor:
        return self.cbam(super().residual(x))


class ConvBN(nn.Module):
    """conv3x3 + BatchNorm, the unit of each path of the multi-scale block."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = conv3x3(channels, channels)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))


class MultiScaleBlock(nn.Module):
    """Symmetric Res2Net-style block of MA-Net's global branch (scale n = 4).

    conv3x3(stride)-BN-ReLU gives X, split into four channel groups X1..X4. The left
    path runs top-down: L1 = f(X1), Li = f(ReLU(L(i-1)) + Xi). The right path runs
    bottom-up: R4 = f(X4), Ri = f(ReLU(R(i+1)) + Xi). Each f is its own conv3x3 + BN.
    Out = ReLU(cat(L) + cat(R) + shortcut(x)), with L and R taken before activation.

    ``left[i]`` and ``right[i]`` produce channel group ``i`` (0-based), so both paths
    are stored in the order of the groups they write.
    """

    scale = 4

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if out_channels % self.scale:
            raise ValueError(f"out_channels must be divisible by {self.scale}, got {out_channels}")
        width = out_channels // self.scale
        self.width = width
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.left = nn.ModuleList(ConvBN(width) for _ in range(self.scale))
        self.right = nn.ModuleList(ConvBN(width) for _ in range(self.scale))
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = make_shortcut(in_channels, out_channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        groups = torch.split(self.relu(self.bn1(self.conv1(x))), self.width, dim=1)
        last = self.scale - 1

        left: list[Tensor] = []
        for i, unit in enumerate(self.left):
            left.append(unit(groups[i] if i == 0 else torch.relu(left[-1]) + groups[i]))

        right: list[Tensor] = [groups[0]] * self.scale  # placeholders, all overwritten
        for i in range(last, -1, -1):
            carry = groups[i] if i == last else torch.relu(right[i + 1]) + groups[i]
            right[i] = self.right[i](carry)

        return self.relu(torch.cat(left, dim=1) + torch.cat(right, dim=1) + identity)
