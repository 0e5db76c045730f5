"""Functions that build an MA-Net: untrained, from a local file, from the zoo, or from
any Hugging Face repo.

Each zoo checkpoint has a two-line factory (``manet_rafdb`` ...) with the same
signature; :func:`load` takes a zoo name, a local path or ``hf-hub:org/repo[@rev]``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from manet_zoo.checkpoint import (
    labels_from_metadata,
    load_weights,
    num_classes_of,
    preprocessing_from_metadata,
)
from manet_zoo.errors import CheckpointError, UnknownModelError
from manet_zoo.models.manet import DEFAULT_FUSION_WEIGHT, MANet
from manet_zoo.weights import Weights, get_weights, list_models

PathLike = str | os.PathLike[str]
Device = str | torch.device | None


def model_from_state_dict(
    state_dict: dict[str, torch.Tensor],
    *,
    fusion_weight: float = DEFAULT_FUSION_WEIGHT,
    labels: tuple[str, ...] | None = None,
) -> MANet:
    """An MA-Net holding ``state_dict`` (manet-zoo layout, already checked), loaded strictly.

    The model is built on the meta device and the tensors are assigned, so no time is
    spent on a random initialisation that would be overwritten.
    """
    with torch.device("meta"):
        model = MANet(num_classes=num_classes_of(state_dict), fusion_weight=fusion_weight)
    model.load_state_dict(state_dict, strict=True, assign=True)
    model.labels = labels
    return model.eval()


def swap_heads(model: MANet, num_classes: int | None, source: str) -> MANet:
    """Replace both heads for ``num_classes`` classes (if it differs) and say so."""
    if num_classes is not None and num_classes != model.num_classes:
        warnings.warn(
            f"{source} has {model.num_classes} classes; replaced both heads with new, "
            f"untrained {num_classes}-class heads (the rest of the network keeps its weights).",
            stacklevel=3,
        )
        model.reset_classifier(num_classes)
    return model


def manet(
    num_classes: int | None = None,
    *,
    fusion_weight: float = DEFAULT_FUSION_WEIGHT,
    weights: PathLike | None = None,
    device: Device = None,
) -> MANet:
    """Build MA-Net, untrained or from a local safetensors file.

    Args:
        num_classes: classes of both heads. Default: the file's class count with
            ``weights``, else 7. A count different from the file's loads the file, then
            replaces both heads with untrained ones (with a warning).
        fusion_weight: lambda of ``lambda * local + (1 - lambda) * global`` (paper: 0.6).
        weights: a ``.safetensors`` file in manet-zoo's (or the official) key layout,
            loaded strictly; its labels and preprocessing come along when its metadata
            has them. Convert the authors' ``.pth.tar`` first with ``manet-zoo convert``.
        device: where to put the model.

    Returns:
        The model, in eval mode when weights were loaded, in train mode otherwise.

    Example:
        >>> from manet_zoo import manet
        >>> model = manet(num_classes=7)
        >>> sum(p.numel() for p in model.parameters())
        50547214
    """
    if weights is None:
        model = MANet(7 if num_classes is None else num_classes, fusion_weight=fusion_weight)
        return model.to(device) if device is not None else model
    state_dict, metadata = load_weights(weights)
    model = model_from_state_dict(
        state_dict, fusion_weight=fusion_weight, labels=labels_from_metadata(metadata)
    )
    model.preprocessing = preprocessing_from_metadata(metadata) or model.preprocessing
    model.source = str(weights)
    swap_heads(model, num_classes, source=Path(weights).name)
    return model.to(device) if device is not None else model


def create_model(
    name: str,
    pretrained: bool = True,
    *,
    weights: PathLike | None = None,
    num_classes: int | None = None,
    cache_dir: PathLike | None = None,
    progress: bool = True,
    device: Device = None,
) -> MANet:
    """Build the zoo model ``name`` with its record's labels and preprocessing.

    Args:
        name: a manifest record, e.g. ``"manet_rafdb"`` (see :func:`list_models`).
        pretrained: download (or take from the cache) the published checkpoint, verified
            by sha256. ``False`` builds the untrained architecture.
        weights: a local ``.safetensors`` file to load instead of the published one
            (e.g. one you trained with the record's recipe).
        num_classes: replace both heads after loading if it differs (with a warning).
        cache_dir: Hugging Face cache folder (default: ``HF_HUB_CACHE``/``HF_HOME``).
        progress: show a progress bar while downloading.
        device: where to put the model.

    Raises:
        WeightsNotPublishedError: ``pretrained=True`` for a record without a published file.
        IntegrityError: the file's sha256 or size differs from the record.
    """
    from manet_zoo.hub import resolve_file

    record = get_weights(name)
    if weights is None and not pretrained:
        model = MANet(record.num_classes, fusion_weight=record.fusion_weight)
        model.labels, model.preprocessing, model.source = record.labels, record.preprocessing, None
    else:
        path = Path(weights) if weights is not None else None
        if path is None:
            path = resolve_file(record, cache_dir=cache_dir, progress=progress)
        model = _load_for_record(path, record)
    swap_heads(model, num_classes, source=name)
    return model.to(device) if device is not None else model


def _load_for_record(path: Path, record: Weights) -> MANet:
    state_dict, metadata = load_weights(path)
    found = num_classes_of(state_dict, str(path))
    if found != record.num_classes:
        raise CheckpointError(
            f"{path} has {found} classes but '{record.name}' has {record.num_classes}. "
            f"Load it with manet_zoo.manet(weights='{path}') instead."
        )
    file_labels = labels_from_metadata(metadata)
    if file_labels is not None and record.labels is not None and file_labels != record.labels:
        raise CheckpointError(
            f"{path} stores the labels {list(file_labels)} but '{record.name}' has "
            f"{list(record.labels)}: refusing to guess which order the heads use."
        )
    model = model_from_state_dict(
        state_dict, fusion_weight=record.fusion_weight, labels=record.labels
    )
    model.preprocessing = record.preprocessing
    model.source = record.name
    return model


def load(
    spec: PathLike,
    *,
    num_classes: int | None = None,
    cache_dir: PathLike | None = None,
    progress: bool = True,
    device: Device = None,
) -> MANet:
    """Load a model from a zoo name, a local ``.safetensors`` path, or
    ``hf-hub:org/repo[@revision]`` (reads ``model.safetensors`` there).

    Example:
        >>> import manet_zoo
        >>> model = manet_zoo.load("my_finetuned.safetensors")  # doctest: +SKIP
        >>> model = manet_zoo.load("hf-hub:org/manet-custom@main")  # doctest: +SKIP
    """
    text = os.fspath(spec)
    if text.startswith("hf-hub:"):
        from manet_zoo.hub import download_from_repo

        repo_id, _, revision = text[len("hf-hub:") :].partition("@")
        path = download_from_repo(
            repo_id, revision=revision or None, cache_dir=cache_dir, progress=progress
        )
        model = manet(weights=path, num_classes=num_classes, device=device)
        model.source = text
        return model
    if text in list_models():
        return create_model(
            text,
            pretrained=True,
            num_classes=num_classes,
            cache_dir=cache_dir,
            progress=progress,
            device=device,
        )
    if Path(text).suffix == ".safetensors" or Path(text).exists():
        return manet(weights=text, num_classes=num_classes, device=device)
    raise UnknownModelError(
        f"{text!r} is neither a zoo model ({', '.join(list_models())}), nor a local "
        ".safetensors file, nor an 'hf-hub:org/repo[@revision]' spec."
    )


# One factory per manifest record. Same signature everywhere; see create_model.


def manet_msceleb(
    pretrained: bool = True,
    *,
    weights: PathLike | None = None,
    num_classes: int | None = None,
    cache_dir: PathLike | None = None,
    progress: bool = True,
    device: Device = None,
) -> MANet:
    """The authors' backbone, trained on MS-Celeb-1M (12,666 identities); fine-tune from it."""
    return create_model("manet_msceleb", pretrained, weights=weights, num_classes=num_classes, cache_dir=cache_dir, progress=progress, device=device)  # fmt: skip  # noqa: E501


def manet_rafdb(
    pretrained: bool = True,
    *,
    weights: PathLike | None = None,
    num_classes: int | None = None,
    cache_dir: PathLike | None = None,
    progress: bool = True,
    device: Device = None,
) -> MANet:
    """MA-Net on RAF-DB basic, 7 expressions (paper: 88.40% on the test set)."""
    return create_model("manet_rafdb", pretrained, weights=weights, num_classes=num_classes, cache_dir=cache_dir, progress=progress, device=device)  # fmt: skip  # noqa: E501


def manet_affectnet7(
    pretrained: bool = True,
    *,
    weights: PathLike | None = None,
    num_classes: int | None = None,
    cache_dir: PathLike | None = None,
    progress: bool = True,
    device: Device = None,
) -> MANet:
    """MA-Net on AffectNet, 7 expressions (paper: 64.53% on validation)."""
    return create_model("manet_affectnet7", pretrained, weights=weights, num_classes=num_classes, cache_dir=cache_dir, progress=progress, device=device)  # fmt: skip  # noqa: E501


def manet_affectnet8(
    pretrained: bool = True,
    *,
    weights: PathLike | None = None,
    num_classes: int | None = None,
    cache_dir: PathLike | None = None,
    progress: bool = True,
    device: Device = None,
) -> MANet:
    """MA-Net on AffectNet, 8 expressions with contempt (paper: 60.29% on validation)."""
    return create_model("manet_affectnet8", pretrained, weights=weights, num_classes=num_classes, cache_dir=cache_dir, progress=progress, device=device)  # fmt: skip  # noqa: E501


def manet_caers(
    pretrained: bool = True,
    *,
    weights: PathLike | None = None,
    num_classes: int | None = None,
    cache_dir: PathLike | None = None,
    progress: bool = True,
    device: Device = None,
) -> MANet:
    """MA-Net on CAER-S, trained from scratch, 7 expressions (paper: 88.42% on test)."""
    return create_model("manet_caers", pretrained, weights=weights, num_classes=num_classes, cache_dir=cache_dir, progress=progress, device=device)  # fmt: skip  # noqa: E501


def manet_sfew(
    pretrained: bool = True,
    *,
    weights: PathLike | None = None,
    num_classes: int | None = None,
    cache_dir: PathLike | None = None,
    progress: bool = True,
    device: Device = None,
) -> MANet:
    """MA-Net on SFEW 2.0 from the FER2013 model, 7 expressions (paper: 59.40% on val)."""
    return create_model("manet_sfew", pretrained, weights=weights, num_classes=num_classes, cache_dir=cache_dir, progress=progress, device=device)  # fmt: skip  # noqa: E501


def manet_fer2013(
    pretrained: bool = True,
    *,
    weights: PathLike | None = None,
    num_classes: int | None = None,
    cache_dir: PathLike | None = None,
    progress: bool = True,
    device: Device = None,
) -> MANet:
    """MA-Net on FER2013, 7 expressions: the initialisation of the SFEW model."""
    return create_model("manet_fer2013", pretrained, weights=weights, num_classes=num_classes, cache_dir=cache_dir, progress=progress, device=device)  # fmt: skip  # noqa: E501


def manet_fedro(
    pretrained: bool = True,
    *,
    weights: PathLike | None = None,
    num_classes: int | None = None,
    cache_dir: PathLike | None = None,
    progress: bool = True,
    device: Device = None,
) -> MANet:
    """MA-Net on RAF-DB + AffectNet-7, for occluded and posed faces (paper: 70.00% on FED-RO)."""
    return create_model("manet_fedro", pretrained, weights=weights, num_classes=num_classes, cache_dir=cache_dir, progress=progress, device=device)  # fmt: skip  # noqa: E501


ZOO_FACTORIES = {
    f.__name__: f
    for f in (
        manet_msceleb,
        manet_rafdb,
        manet_affectnet7,
        manet_affectnet8,
        manet_caers,
        manet_sfew,
        manet_fer2013,
        manet_fedro,
    )
}
