"""Every error manet-zoo raises on purpose, in one place.

All derive from :class:`ManetZooError`, so ``except manet_zoo.errors.ManetZooError``
catches them all. Each also derives from the built-in type a caller would expect
(``ValueError`` for bad input, ``FileNotFoundError`` for a missing file), so code written
against plain Python keeps working.
"""

from __future__ import annotations


class ManetZooError(Exception):
    """Base class of manet-zoo's errors."""


class CheckpointError(ManetZooError, ValueError):
    """A weights file cannot be read or does not describe an MA-Net."""


class UnsafeCheckpointError(CheckpointError):
    """A pickled checkpoint needs arbitrary Python objects to load, which we refuse."""


def _listing(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


class StateDictMismatchError(CheckpointError):
    """A state_dict's keys or shapes do not match the model.

    Attributes:
        missing: keys the model needs that the file lacks.
        unexpected: keys in the file the model does not have.
        shape_mismatches: ``(key, shape in file, shape in model)`` triples.
    """

    def __init__(
        self,
        what: str,
        *,
        missing: list[str] | None = None,
        unexpected: list[str] | None = None,
        shape_mismatches: list[tuple[str, tuple[int, ...], tuple[int, ...]]] | None = None,
        hint: str = "",
    ) -> None:
        self.missing = list(missing or [])
        self.unexpected = list(unexpected or [])
        self.shape_mismatches = list(shape_mismatches or [])
        parts = [f"{what} does not match MA-Net:"]
        if self.missing:
            parts.append(f"{len(self.missing)} missing key(s): {_listing(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected key(s): {_listing(self.unexpected)}")
        if self.shape_mismatches:
            shapes = [
                f"{k} is {tuple(f)} in the file but {tuple(m)} in the model"
                for k, f, m in self.shape_mismatches
            ]
            parts.append(f"{len(shapes)} shape mismatch(es): {_listing(shapes)}")
        if hint:
            parts.append(hint)
        super().__init__("\n  ".join(parts))


class ManifestError(ManetZooError, ValueError):
    """The weights manifest is missing, unreadable or breaks its schema."""


class UnknownModelError(ManetZooError, LookupError):
    """No record of that name in the manifest."""


class WeightsNotPublishedError(ManetZooError, LookupError):
    """The record exists but its checkpoint has not been published yet."""


class IntegrityError(ManetZooError, OSError):
    """A weights file's sha256 or size differs from its manifest record.

    The file is left where it is and never loaded.

    Attributes:
        path: the file checked.
        expected, actual: the sha256 (or size) from the manifest and the one measured.
    """

    def __init__(self, message: str, *, path: str, expected: str, actual: str) -> None:
        super().__init__(message)
        self.path, self.expected, self.actual = path, expected, actual


class DownloadError(ManetZooError, OSError):
    """A weights file could not be fetched (HTTP error, broken connection)."""


class WeightsUnavailableOfflineError(DownloadError, FileNotFoundError):
    """Offline (or air-gapped) and the file is not where it would be looked for."""


class InvalidImageError(ManetZooError, ValueError):
    """An input cannot be read as an image (unreadable file, wrong shape or type, too large).

    Attributes:
        source: how the input is named in results (a path, or e.g. ``"<array #2>"``).
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source, self.reason = source, reason


class MissingDependencyError(ManetZooError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


# Training (manet_zoo.train). Defined here so that every error of the package lives in one
# module; the training modules import them from here.


class TrainingError(ManetZooError, RuntimeError):
    """A run cannot start or continue as asked."""


class UnknownRecipeError(ManetZooError, LookupError):
    """No recipe of that name."""


class PublishError(ManetZooError, RuntimeError):
    """A run cannot be exported or uploaded.

    Upload failures name the repo and the endpoint; when the Hub refuses the token (HTTP
    401/403) the message says to set ``HF_TOKEN`` or run ``hf auth login`` with a write
    token. The original huggingface_hub error is the ``__cause__``.
    """


class DatasetError(ManetZooError, ValueError):
    """A dataset folder is not in the layout its loader expects."""


class SplitNotFoundError(DatasetError, LookupError):
    """The dataset has no such split (e.g. a custom folder without ``test/``)."""


class UnreadableImagesError(DatasetError):
    """Images that are missing or cannot be decoded, listed in ``paths``."""

    def __init__(self, message: str, paths: list[str] | tuple[str, ...]) -> None:
        self.paths = list(paths)
        shown = "\n  ".join(self.paths[:20])
        more = f"\n  ... and {len(self.paths) - 20} more" if len(self.paths) > 20 else ""
        super().__init__(
            f"{message}\n  {shown}{more}\n"
            "Pass bad_images='skip' (CLI: --bad-images skip) to skip and count them instead."
        )


class PartialDatasetWarning(UserWarning):
    """A split holds a different number of images than its owner documents."""
