"""Key map between manet-zoo's module names and the official MA-Net state_dict layout.

The official code names modules after their position (``layer3_1_p1``, ``conv2_2_3``);
manet-zoo names them after what they are (``local_branch.regions.top_left.layer3``,
``right.2``). The map is one function, :func:`to_official_key`, applied to every key
of the model; its inverse is read off the same table, so the two directions cannot
drift apart.

| manet-zoo                                   | official                       |
|---------------------------------------------|--------------------------------|
| ``stem.conv`` / ``stem.bn``                 | ``conv1`` / ``bn1``            |
| ``*.shortcut.conv`` / ``*.shortcut.bn``     | ``*.downsample.0`` / ``.1``    |
| ``local_branch.regions.<quadrant>.layerN``  | ``layerN_1_p{1..4}``           |
| ``global_branch.layerN``                    | ``layerN_2``                   |
| ``*.cbam.channel_gate.fc1`` / ``fc2``       | ``*.cbam.ChannelGate.mlp.1`` / ``.3`` |
| ``*.cbam.spatial_gate.conv`` / ``bn``       | ``*.cbam.SpatialGate.spatial.conv`` / ``.bn`` |
| ``*.left.i.conv`` / ``bn``  (group i)       | ``*.conv1_2_{i+1}`` / ``bn1_2_{i+1}`` |
| ``*.right.i.conv`` / ``bn`` (group i)       | ``*.conv2_2_{i+1}`` / ``bn2_2_{i+1}`` |
| ``head_local`` / ``head_global``            | ``fc_1`` / ``fc_2``            |

Both paths number their convolutions by the channel group they read, although the
right path runs from the last group up (checked against the official logits in
``tests/test_parity.py``).
"""

from __future__ import annotations

import functools
import re

import torch

from manet_zoo.models.manet import QUADRANTS, MANet

DATA_PARALLEL_PREFIX = "module."

_FIXED_PREFIXES = (
    ("stem.conv.", "conv1."),
    ("stem.bn.", "bn1."),
    ("head_local.", "fc_1."),
    ("head_global.", "fc_2."),
)
_FIXED_INFIXES = (
    (".shortcut.conv.", ".downsample.0."),
    (".shortcut.bn.", ".downsample.1."),
    (".cbam.channel_gate.fc1.", ".cbam.ChannelGate.mlp.1."),
    (".cbam.channel_gate.fc2.", ".cbam.ChannelGate.mlp.3."),
    (".cbam.spatial_gate.conv.", ".cbam.SpatialGate.spatial.conv."),
    (".cbam.spatial_gate.bn.", ".cbam.SpatialGate.spatial.bn."),
)
_REGION = re.compile(r"^local_branch\.regions\.(\w+?)\.layer([34])\.")
_GLOBAL = re.compile(r"^global_branch\.layer([34])\.")
_PATH = re.compile(r"\.(left|right)\.(\d)\.(conv|bn)\.")


def _path_to_official(match: re.Match[str]) -> str:
    side, group, kind = match.group(1), int(match.group(2)), match.group(3)
    path = 1 if side == "left" else 2
    return f".{kind}{path}_2_{group + 1}."


def to_official_key(key: str) -> str:
    """The official state_dict key for one of manet-zoo's keys.

    >>> to_official_key("global_branch.layer3.0.right.3.conv.weight")
    'layer3_2.0.conv2_2_4.weight'
    """
    out = key
    for ours, theirs in _FIXED_PREFIXES:
        if out.startswith(ours):
            out = theirs + out[len(ours) :]
    out = _REGION.sub(lambda m: f"layer{m.group(2)}_1_p{QUADRANTS.index(m.group(1)) + 1}.", out)
    out = _GLOBAL.sub(lambda m: f"layer{m.group(1)}_2.", out)
    out = _PATH.sub(_path_to_official, out)
    for ours, theirs in _FIXED_INFIXES:
        out = out.replace(ours, theirs)
    return out


@functools.cache
def _native_keys() -> tuple[str, ...]:
    # Built on the meta device: no memory, no initialisation cost.
    with torch.device("meta"):
        return tuple(MANet(num_classes=1).state_dict())


@functools.cache
def official_to_native_map() -> dict[str, str]:
    """``{official key: manet-zoo key}`` for every entry of the state_dict, in module order."""
    return {to_official_key(k): k for k in _native_keys()}


def native_to_official_map() -> dict[str, str]:
    """``{manet-zoo key: official key}`` for every entry of the state_dict, in module order."""
    return {native: official for official, native in official_to_native_map().items()}
