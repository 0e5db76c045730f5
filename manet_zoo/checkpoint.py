"""Reading and writing MA-Net weights.

Two formats meet here:

* the authors' release: a ``torch.save``\\ d dict whose ``state_dict`` entry (or a bare
  state_dict) uses the official key layout, often with every key prefixed ``module.``
  because it was saved from ``nn.DataParallel``. Read only through
  :func:`read_official_checkpoint`, with ``torch.load(weights_only=True)``;
* manet-zoo's own: a safetensors file in the package's key layout, whose metadata
  records the class count, the labels when known, and where the weights came from.

Every function checks keys and shapes against the architecture and raises a
:class:`~manet_zoo.errors.CheckpointError` subclass that lists what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from manet_zoo.errors import CheckpointError, StateDictMismatchError, UnsafeCheckpointError
from manet_zoo.models.manet import MANet
from manet_zoo.models.official import (
    DATA_PARALLEL_PREFIX,
    native_to_official_map,
    official_to_native_map,
)
from manet_zoo.preprocessing import Preprocessing

StateDict = dict[str, Tensor]

#: safetensors metadata keys written by manet-zoo (values are strings, as the format requires).
META_FORMAT = "format"
META_LAYOUT = "manet_zoo.layout"
META_NUM_CLASSES = "manet_zoo.num_classes"
META_LABELS = "manet_zoo.labels"
META_SOURCE = "manet_zoo.source"
META_SOURCE_SHA256 = "manet_zoo.source_sha256"
META_PREPROCESSING = "manet_zoo.preprocessing"
LAYOUT_VERSION = "manet_zoo/1"

_HEAD_KEY = "head_local.weight"
_GLOBAL_HEAD_KEY = "head_global.weight"
_OFFICIAL_HEAD_KEY = "fc_1.weight"


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _strip_data_parallel(state_dict: Mapping[str, Tensor]) -> StateDict:
    keys = list(state_dict)
    if keys and all(k.startswith(DATA_PARALLEL_PREFIX) for k in keys):
        return {k[len(DATA_PARALLEL_PREFIX) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def num_classes_of(state_dict: Mapping[str, Tensor], what: str = "the checkpoint") -> int:
    """Class count of a native-layout state_dict, read off its heads."""
    if _HEAD_KEY not in state_dict or _GLOBAL_HEAD_KEY not in state_dict:
        raise StateDictMismatchError(
            what, missing=[k for k in (_HEAD_KEY, _GLOBAL_HEAD_KEY) if k not in state_dict]
        )
    local, glob = state_dict[_HEAD_KEY].shape, state_dict[_GLOBAL_HEAD_KEY].shape
    if len(local) != 2 or local != glob:
        raise CheckpointError(
            f"{what} has heads of different shapes: local {tuple(local)}, global {tuple(glob)}; "
            "MA-Net's two heads have the same (num_classes, 512) shape."
        )
    return int(local[0])


def expected_shapes(num_classes: int) -> dict[str, tuple[int, ...]]:
    """Shape of every state_dict entry of an MA-Net with ``num_classes`` classes."""
    with torch.device("meta"):
        model = MANet(num_classes=num_classes)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_state_dict(
    state_dict: Mapping[str, Tensor], num_classes: int, what: str = "the checkpoint"
) -> None:
    """Raise :class:`StateDictMismatchError` unless keys and shapes match MA-Net exactly."""
    expected = expected_shapes(num_classes)
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        (k, tuple(v.shape), expected[k])
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != expected[k]
    ]
    if missing or unexpected or shapes:
        raise StateDictMismatchError(
            f"{what} ({num_classes} classes)",
            missing=missing,
            unexpected=unexpected,
            shape_mismatches=shapes,
        )


def official_to_native(state_dict: Mapping[str, Tensor], what: str = "the checkpoint") -> StateDict:
    """Rename an official-layout state_dict (``module.`` prefix allowed) to manet-zoo's layout.

    Keys, shapes and the two heads are checked; any problem raises
    :class:`StateDictMismatchError` listing every offending key.
    """
    official = _strip_data_parallel(state_dict)
    key_map = official_to_native_map()
    unknown = [k for k in official if k not in key_map]
    missing = [k for k in key_map if k not in official]
    if unknown or missing:
        raise StateDictMismatchError(
            f"{what} (official MA-Net layout)",
            missing=missing,
            unexpected=unknown,
            hint="Expected the keys of the official MA-Net code (conv1, layer3_1_p1, fc_1, ...).",
        )
    native = {key_map[k]: v for k, v in official.items()}
    check_state_dict(native, num_classes_of(native, what), what)
    # Module order, so that a round trip reproduces the official file key for key.
    return {k: native[k] for k in key_map.values()}


def native_to_official(
    state_dict: Mapping[str, Tensor], *, data_parallel: bool = False
) -> StateDict:
    """Rename a manet-zoo state_dict to the official layout (``module.``-prefixed if asked)."""
    check_state_dict(state_dict, num_classes_of(state_dict))
    prefix = DATA_PARALLEL_PREFIX if data_parallel else ""
    return {
        prefix + official: state_dict[native]
        for native, official in native_to_official_map().items()
    }


def to_native(state_dict: Mapping[str, Tensor], what: str = "the checkpoint") -> StateDict:
    """A state_dict in manet-zoo's layout, whichever of the two layouts it came in."""
    plain = _strip_data_parallel(state_dict)
    if _OFFICIAL_HEAD_KEY in plain and _HEAD_KEY not in plain:
        return official_to_native(plain, what)
    check_state_dict(plain, num_classes_of(plain, what), what)
    return plain


def read_official_checkpoint(path: str | os.PathLike[str]) -> StateDict:
    """Load the authors' ``.pth``/``.pth.tar`` file safely and return its state_dict
    in manet-zoo's layout.

    Uses ``torch.load(weights_only=True)``: tensors, numbers, strings and containers
    load; arbitrary pickled objects are refused with :class:`UnsafeCheckpointError`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # Only a pickle naming a Python object is "unsafe"; other failures are damage.
        if "Unsupported global" not in str(exc):
            raise CheckpointError(
                f"{path} is not a readable PyTorch checkpoint ({exc}). "
                "The file may be truncated or corrupted: download it again."
            ) from exc
        raise UnsafeCheckpointError(
            f"{path} needs arbitrary Python objects to unpickle, and manet-zoo only loads "
            "pickles with torch.load(weights_only=True) because unpickling can run any code. "
            "If you trust the file, load it yourself and hand over just the weights: "
            "sd = torch.load(path, weights_only=False)['state_dict']; "
            "manet_zoo.checkpoint.save_weights(manet_zoo.checkpoint.official_to_native(sd), "
            "'out.safetensors')."
        ) from exc
    except Exception as exc:  # torch.load fails in many ways on a damaged file
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc}). "
            "The file may be truncated or corrupted: download it again."
        ) from exc
    state_dict = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    if not isinstance(state_dict, dict) or not all(
        isinstance(v, Tensor) for v in state_dict.values()
    ):
        found = f"a dict with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, dict) else ""
        raise CheckpointError(
            f"{path} holds neither a state_dict nor a dict with a 'state_dict' entry "
            f"(found {found or type(obj).__name__})."
        )
    return official_to_native(state_dict, what=str(path))


def save_weights(
    state_dict: Mapping[str, Tensor],
    path: str | os.PathLike[str],
    *,
    labels: list[str] | tuple[str, ...] | None = None,
    preprocessing: Preprocessing | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a manet-zoo state_dict as safetensors, atomically (temp file, then rename).

    The class count, ``labels`` and ``preprocessing`` (when given) go into the file's
    metadata, so that :func:`load_weights` can rebuild the right model and feed it the
    right input.
    """
    path = Path(path)
    num_classes = num_classes_of(state_dict)
    check_state_dict(state_dict, num_classes)
    if labels is not None and len(labels) != num_classes:
        raise ValueError(f"{len(labels)} labels given for a {num_classes}-class model")
    meta = {META_FORMAT: "pt", META_LAYOUT: LAYOUT_VERSION, META_NUM_CLASSES: str(num_classes)}
    if labels is not None:
        meta[META_LABELS] = json.dumps(list(labels))
    if preprocessing is not None:
        meta[META_PREPROCESSING] = preprocessing.to_json()
    meta.update(metadata or {})
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".incomplete")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The safetensors metadata of a weights file (empty when it has none)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from exc


def load_weights(path: str | os.PathLike[str]) -> tuple[StateDict, dict[str, str]]:
    """Read a safetensors weights file: ``(state_dict in manet-zoo layout, metadata)``.

    Pickled files (``.pth``, ``.pth.tar``, ``.pt``) are refused: convert them once with
    ``manet-zoo convert``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No weights file at {path}")
    if path.suffix in {".pth", ".pt", ".tar", ".bin", ".pkl"}:
        raise CheckpointError(
            f"{path} is a pickled checkpoint; manet-zoo loads safetensors only. Convert it "
            f"once with `manet-zoo convert {path} {path.with_suffix('.safetensors').name}` "
            "(or manet_zoo.convert_official_checkpoint) and load the result."
        )
    metadata = read_metadata(path)
    try:
        state_dict = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from exc
    state_dict = to_native(state_dict, what=str(path))
    declared = metadata.get(META_NUM_CLASSES)
    if declared is not None and int(declared) != num_classes_of(state_dict):
        raise CheckpointError(
            f"{path} declares {declared} classes in its metadata but its heads have "
            f"{num_classes_of(state_dict)}: the file is inconsistent."
        )
    return state_dict, metadata


def labels_from_metadata(metadata: Mapping[str, str]) -> tuple[str, ...] | None:
    """The ordered label list stored in a weights file, if any."""
    raw = metadata.get(META_LABELS)
    return tuple(json.loads(raw)) if raw else None


def preprocessing_from_metadata(metadata: Mapping[str, str]) -> Preprocessing | None:
    """The preprocessing stored in a weights file, if any."""
    raw = metadata.get(META_PREPROCESSING)
    return Preprocessing.from_dict(json.loads(raw)) if raw else None


def convert_official_checkpoint(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Convert the authors' checkpoint (e.g. ``Pretrained_on_MSCeleb.pth.tar``) to safetensors.

    The output uses manet-zoo's key layout and records the class count, the source file
    name and its sha256 in the metadata. Load it with ``manet(weights=dst)``.

    Example:
        >>> from manet_zoo import convert_official_checkpoint, manet
        >>> convert_official_checkpoint("Pretrained_on_MSCeleb.pth.tar", "msceleb.safetensors")
        ...                                                    # doctest: +SKIP
        >>> model = manet(weights="msceleb.safetensors")       # doctest: +SKIP
        >>> model.num_classes                                  # doctest: +SKIP
        12666
    """
    src, dst = Path(src), Path(dst)
    if dst.suffix != ".safetensors":
        raise ValueError(f"The output must be a .safetensors file, got {dst}")
    state_dict = read_official_checkpoint(src)
    return save_weights(
        state_dict,
        dst,
        metadata={META_SOURCE: f"official:{src.name}", META_SOURCE_SHA256: sha256_file(src)},
    )
