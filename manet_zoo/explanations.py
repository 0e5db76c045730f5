"""Class activation maps (Zhou et al. 2016) of MA-Net's two branches, as in the paper's
Fig. 3 and 4: where the local attention branch and the global multi-scale branch see
evidence for a class.

Each branch ends in global average pooling and a linear head, so its logit for class
``k`` is exactly the mean over positions of ``w_k . f(x, y)`` plus the bias, where ``f`` is
the branch's feature map before pooling (:meth:`~manet_zoo.MANet.forward_feature_maps`:
the local 2x2 mosaic, 14x14 at 224 px, and the global map, 7x7) and ``w_k`` the head's
row for ``k``. That sum, per position, is the class activation map.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from manet_zoo.draw import captioned_row, overlay, save_image, stack_rows
from manet_zoo.images import describe
from manet_zoo.models.manet import MANet
from manet_zoo.predictor import DEFAULT_MODEL, FaceResult, Predictor


@dataclass(frozen=True)
class Explanation:
    """The class activation maps of one face.

    Attributes:
        source: the input's name.
        face: the prediction for this face.
        target: the class explained (by default the predicted one).
        image: the face as the model saw it, RGB uint8 at the model's input size.
        local_map, global_map: the branches' maps at ``image``'s size, in [0, 1]
            (negative evidence clipped, then divided by the maximum).
        local_raw, global_raw: the maps at the branches' own resolution, before clipping:
            their mean plus the head's bias is the branch's logit for ``target``.
    """

    source: str
    face: FaceResult
    target: str
    image: np.ndarray
    local_map: np.ndarray
    global_map: np.ndarray
    local_raw: np.ndarray
    global_raw: np.ndarray

    def to_image(self, alpha: float = 0.5) -> Image.Image:
        """The face, then the local and the global map laid over it, side by side."""
        return captioned_row(
            [
                self.image,
                overlay(self.image, self.local_map, alpha),
                overlay(self.image, self.global_map, alpha),
            ],
            [
                f"{self.face.label} {self.face.probability:.2f}",
                f"local: {self.target}",
                f"multi-scale: {self.target}",
            ],
        )


def class_activation_maps(
    model: MANet, x: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw CAMs of both branches for a batch.

    Args:
        model: the network.
        x: model inputs (N, 3, H, W).
        targets: class index per input (N,).

    Returns:
        ``(local_cam, global_cam, local_logits, global_logits)``: maps (N, h, w) at each
        branch's resolution and the branches' logits (N, C).
    """
    local_map, global_map = model.forward_feature_maps(x)
    local_logits = model.head_local(local_map.mean(dim=(2, 3)))
    global_logits = model.head_global(global_map.mean(dim=(2, 3)))
    local_cam = torch.einsum("nc,nchw->nhw", model.head_local.weight[targets], local_map)
    global_cam = torch.einsum("nc,nchw->nhw", model.head_global.weight[targets], global_map)
    return local_cam, global_cam, local_logits, global_logits


def _heatmap(raw: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    up = F.interpolate(raw[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    up = up.clamp(min=0)
    peak = up.flatten(1).amax(dim=1).clamp(min=1e-12)[:, None, None]
    return (up / peak).numpy()


def explain(
    image: Any,
    model: MANet | str | os.PathLike[str] | Predictor = DEFAULT_MODEL,
    *,
    target: str | int | None = None,
    color: str = "rgb",
    **kwargs: Any,
) -> list[Explanation]:
    """Class activation maps of both branches for each face in ``image``.

    Args:
        image: one input, as for :func:`manet_zoo.predict`.
        model: a model, zoo name, weights path, or a :class:`~manet_zoo.Predictor`.
        target: the class to explain (label or index); default: each face's prediction.
        color: channel order of a numpy array.
        **kwargs: passed to :class:`~manet_zoo.Predictor` (``detector``, ``device`` ...).

    Returns:
        One :class:`Explanation` per face, largest first; empty when no face is found.

    Example:
        >>> import manet_zoo
        >>> [e.to_image().save(f"cam{i}.png")
        ...  for i, e in enumerate(manet_zoo.explain("photo.jpg"))]   # doctest: +SKIP
    """
    predictor = model if isinstance(model, Predictor) else Predictor(model, **kwargs)
    net = predictor.model
    source = describe(image)
    prepared = predictor.preparer(color=color, keep_faces=True)(image, source, raise_errors=True)
    if prepared.crops is None or not len(prepared.crops):
        return []
    size = predictor.preprocessing.input_size
    x = prepared.crops.to(predictor.device)
    with torch.inference_mode():
        if target is None:
            targets = net(x).argmax(dim=1)
        else:
            targets = torch.full((len(x),), _target_index(target, predictor.labels))
        local_cam, global_cam, local_logits, global_logits = class_activation_maps(
            net, x, targets.to(predictor.device)
        )
    local_cam, global_cam = local_cam.float().cpu(), global_cam.float().cpu()
    local_maps, global_maps = _heatmap(local_cam, size), _heatmap(global_cam, size)
    interpolation = getattr(Image.Resampling, predictor.preprocessing.interpolation.upper())
    explanations = []
    for i, detection in enumerate(prepared.detections):
        face_image = prepared.faces[i].convert("RGB").resize(size[::-1], interpolation)  # type: ignore[index]
        explanations.append(
            Explanation(
                source=source,
                face=predictor.face_result(
                    detection, local_logits[i].float().cpu(), global_logits[i].float().cpu()
                ),
                target=predictor.labels[int(targets[i])],
                image=np.asarray(face_image),
                local_map=local_maps[i],
                global_map=global_maps[i],
                local_raw=local_cam[i].numpy(),
                global_raw=global_cam[i].numpy(),
            )
        )
    return explanations


def _target_index(target: str | int, labels: tuple[str, ...]) -> int:
    if isinstance(target, str):
        if target not in labels:
            raise ValueError(f"unknown target {target!r}; the model's labels are {list(labels)}")
        return labels.index(target)
    if not 0 <= int(target) < len(labels):
        raise ValueError(f"target index {target} out of range for {len(labels)} classes")
    return int(target)


def render(explanations: list[Explanation], alpha: float = 0.5) -> Image.Image:
    """All faces' explanations, one row each (see :meth:`Explanation.to_image`)."""
    if not explanations:
        raise ValueError("no explanation to render (no face found)")
    return stack_rows([e.to_image(alpha) for e in explanations])


def save_explanations(explanations: list[Explanation], path: str | os.PathLike[str]) -> str:
    """Write :func:`render`'s picture to ``path``; returns the path written."""
    return str(save_image(render(explanations), Path(path)))
