"""MA-Net: global multi-scale and local attention network (Zhao, Liu, Wang, IEEE TIP 2021).

Shape walk-through for a 3x224x224 input::

    stem             conv7x7/2, BN, ReLU, maxpool 3x3/2     -> 64 x 56 x 56
    layer1, layer2   2 + 2 BasicBlocks                      -> 128 x 28 x 28
    local branch     4 quadrants of 128 x 14 x 14, each with its own 4 attentive blocks
                     -> 4 x (512 x 7 x 7), re-assembled as a 2x2 mosaic, GAP, head_local
    global branch    4 multi-scale blocks                   -> 512 x 7 x 7, GAP, head_global
    logits           fusion_weight * local + (1 - fusion_weight) * global
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from manet_zoo.models.blocks import AttentiveBlock, BasicBlock, MultiScaleBlock
from manet_zoo.preprocessing import OFFICIAL, Preprocessing

QUADRANTS: tuple[str, ...] = ("top_left", "top_right", "bottom_left", "bottom_right")
FEATURE_DIM = 512
DEFAULT_FUSION_WEIGHT = 0.6


def _stage(
    block: type[nn.Module], in_channels: int, out_channels: int, stride: int
) -> nn.Sequential:
    """Two blocks; the first may change channels and resolution."""
    return nn.Sequential(
        block(in_channels, out_channels, stride), block(out_channels, out_channels, 1)
    )


class Stem(nn.Module):
    """conv 7x7/2 (no bias), BN, ReLU, maxpool 3x3/2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.maxpool(self.relu(self.bn(self.conv(x))))


class RegionBranch(nn.Module):
    """The attentive blocks of one quadrant: 2 at 256 ch (stride 2), 2 at 512 ch (stride 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer3 = _stage(AttentiveBlock, 128, 256, stride=2)
        self.layer4 = _stage(AttentiveBlock, 256, 512, stride=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer4(self.layer3(x))


class LocalAttentionBranch(nn.Module):
    """Splits the feature map into four quadrants, each with its own weights, and puts
    the four results back together as a 2x2 mosaic."""

    def __init__(self) -> None:
        super().__init__()
        self.regions = nn.ModuleDict({name: RegionBranch() for name in QUADRANTS})

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        top_left, top_right = x[..., :h, :w], x[..., :h, w:]
        bottom_left, bottom_right = x[..., h:, :w], x[..., h:, w:]
        r = self.regions
        top = torch.cat([r["top_left"](top_left), r["top_right"](top_right)], dim=3)
        bottom = torch.cat([r["bottom_left"](bottom_left), r["bottom_right"](bottom_right)], dim=3)
        return torch.cat([top, bottom], dim=2)


class GlobalMultiScaleBranch(nn.Module):
    """Four multi-scale blocks: 2 at 256 ch (stride 2), 2 at 512 ch (stride 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer3 = _stage(MultiScaleBlock, 128, 256, stride=2)
        self.layer4 = _stage(MultiScaleBlock, 256, 512, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer4(self.layer3(x))


def check_input_shape(shape: torch.Size | tuple[int, ...]) -> None:
    """Raise ``ValueError`` unless ``shape`` is (N, 3, H, W) with an even 1/8 feature map.

    The stem and layer2 reduce H and W to ceil(H/8) and ceil(W/8); the local branch
    halves that map into quadrants, so it has to be even (H, W = 112, 160, 224, 256 ...).
    """
    if len(shape) != 4 or shape[1] != 3:
        raise ValueError(
            f"MA-Net expects a batch of RGB images shaped (N, 3, H, W); got {tuple(shape)}. "
            "Add a batch axis with x.unsqueeze(0) for a single image."
        )
    h8, w8 = -(-shape[2] // 8), -(-shape[3] // 8)
    if h8 % 2 or w8 % 2 or h8 < 2 or w8 < 2:
        raise ValueError(
            f"MA-Net needs an input whose 1/8 feature map has even height and width, so the "
            f"local branch can split it into four quadrants; {shape[2]}x{shape[3]} gives "
            f"{h8}x{w8}. Resize to a multiple of 16, e.g. 112, 160, 224 (the trained size) or 256."
        )


class MANet(nn.Module):
    """MA-Net for facial expression recognition.

    Args:
        num_classes: number of output classes of both heads.
        fusion_weight: lambda in ``lambda * local + (1 - lambda) * global`` (0.6 in the paper).

    Inputs are RGB tensors shaped (N, 3, H, W) with values in [0, 1] and no mean/std
    normalisation, as in the official code. Three attributes travel with the weights:
    ``labels`` (ordered class names, ``None`` when unknown), ``preprocessing`` (how an
    image becomes input) and ``source`` (the record name or file the weights came from).

    Example:
        >>> import torch
        >>> from manet_zoo import manet
        >>> model = manet(num_classes=7).eval()
        >>> model(torch.rand(1, 3, 112, 112)).shape
        torch.Size([1, 7])
    """

    def __init__(
        self, num_classes: int = 7, *, fusion_weight: float = DEFAULT_FUSION_WEIGHT
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if not 0.0 <= fusion_weight <= 1.0:
            raise ValueError(f"fusion_weight must lie in [0, 1], got {fusion_weight}")
        self.num_classes = num_classes
        self.fusion_weight = float(fusion_weight)
        self.labels: tuple[str, ...] | None = None
        self.preprocessing: Preprocessing = OFFICIAL
        self.source: str | None = None
        self.fused = False
        self.stem = Stem()
        self.layer1 = _stage(BasicBlock, 64, 64, stride=1)
        self.layer2 = _stage(BasicBlock, 64, 128, stride=2)
        self.local_branch = LocalAttentionBranch()
        self.global_branch = GlobalMultiScaleBranch()
        self.head_local = nn.Linear(FEATURE_DIM, num_classes)
        self.head_global = nn.Linear(FEATURE_DIM, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # As the official code: He init (fan_out) for convs, BN weight 1 and bias 0;
        # linear layers keep PyTorch's default.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_feature_maps(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The local mosaic and the global map before pooling (512 x 14 x 14 and
        512 x 7 x 7 at 224 px), e.g. for class activation maps."""
        check_input_shape(x.shape)
        x = self.layer2(self.layer1(self.stem(x)))
        return self.local_branch(x), self.global_branch(x)

    def forward_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The two pooled 512-d vectors (local, global)."""
        local_map, global_map = self.forward_feature_maps(x)
        return local_map.mean(dim=(2, 3)), global_map.mean(dim=(2, 3))

    def forward_head(self, local_features: Tensor, global_features: Tensor) -> Tensor:
        """Fused logits from the two pooled feature vectors."""
        return self.fuse_logits(self.head_local(local_features), self.head_global(global_features))

    def fuse_logits(self, local_logits: Tensor, global_logits: Tensor) -> Tensor:
        """``fusion_weight * local + (1 - fusion_weight) * global``."""
        return self.fusion_weight * local_logits + (1.0 - self.fusion_weight) * global_logits

    def forward_branches(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits of each branch: (local, global), the official ``fc_1`` and ``fc_2``."""
        local_features, global_features = self.forward_features(x)
        return self.head_local(local_features), self.head_global(global_features)

    def forward(self, x: Tensor) -> Tensor:
        """Fused logits, shaped (N, num_classes)."""
        return self.fuse_logits(*self.forward_branches(x))

    def fuse(self) -> MANet:
        """A faster inference-only copy: every BatchNorm folded into its convolution.

        Same outputs (to float rounding); the copy cannot be put back in training mode,
        and its state_dict no longer has BatchNorm entries, so it cannot be saved as
        manet-zoo weights. Refused in training mode (``RuntimeError``).

        Example:
            >>> import torch
            >>> from manet_zoo import manet
            >>> fast = manet(num_classes=7).eval().fuse()
            >>> fast(torch.rand(1, 3, 112, 112)).shape
            torch.Size([1, 7])
        """
        from manet_zoo.models.fuse import fold_batchnorm

        return fold_batchnorm(self)

    def train(self, mode: bool = True) -> MANet:
        if mode and self.fused:
            raise RuntimeError(
                "this model was fused for inference (BatchNorm folded); train the "
                "original model instead of the one returned by fuse()"
            )
        return super().train(mode)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace both heads with new, untrained ones for ``num_classes`` classes."""
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        device = self.head_local.weight.device
        dtype = self.head_local.weight.dtype
        self.head_local = nn.Linear(FEATURE_DIM, num_classes, device=device, dtype=dtype)
        self.head_global = nn.Linear(FEATURE_DIM, num_classes, device=device, dtype=dtype)
        self.num_classes = num_classes
        self.labels = None
