"""Getting the bytes of a checkpoint: air-gapped folder, Hugging Face cache, download.

:func:`resolve_file` returns a local path to a file whose size and sha256 match the
manifest record, or raises. The order is:

1. ``MANET_ZOO_WEIGHTS_DIR`` set: the file named as in the manifest in that folder,
   and nothing else (no network).
2. The Hugging Face cache at the pinned revision: verified and returned with zero
   HTTP requests, whether or not ``HF_HUB_OFFLINE`` is set.
3. ``HF_HUB_OFFLINE`` set: :class:`WeightsUnavailableOfflineError` naming the file, its
   sha256 and where to put it.
4. ``huggingface_hub.hf_hub_download`` at the pinned revision (atomic, locked against
   concurrent downloads), then verified.

A file that fails verification raises :class:`IntegrityError`; it is never loaded
and never deleted (the error says how to fetch it again). huggingface_hub is imported
only when a download happens, so ``import manet_zoo`` stays light.
"""

from __future__ import annotations

import os
from pathlib import Path

from manet_zoo import config
from manet_zoo._version import __version__
from manet_zoo.checkpoint import sha256_file
from manet_zoo.errors import (
    DownloadError,
    IntegrityError,
    WeightsNotPublishedError,
    WeightsUnavailableOfflineError,
)
from manet_zoo.weights import Weights


def _not_published(record: Weights) -> WeightsNotPublishedError:
    if record.name == "manet_msceleb":
        how = (
            "Download the authors' Pretrained_on_MSCeleb.pth.tar (linked from the official "
            "MA-Net repository) and convert it: `manet-zoo convert Pretrained_on_MSCeleb.pth.tar "
            "manet_msceleb.safetensors`."
        )
    else:
        how = (
            f"Train it with the '{record.recipe}' recipe "
            f"(`manet-zoo train --recipe {record.recipe} --data PATH`, see docs/training.md), "
            f"or use a checkpoint you already have."
        )
    return WeightsNotPublishedError(
        f"No published checkpoint for '{record.name}' yet: its manifest record has no file "
        f"or sha256. {how} Then load your file with "
        f"`{record.name}(weights='{record.file.filename}')` or "
        f"`manet_zoo.load('{record.file.filename}')`, or build the untrained architecture "
        f"with `{record.name}(pretrained=False)`."
    )


def verify_file(path: str | os.PathLike[str], record: Weights) -> Path:
    """Check a file's size and sha256 against ``record``; return the path or raise
    :class:`IntegrityError` (the file is left untouched)."""
    path = Path(path)
    expected_size, expected_sha = record.file.size, record.file.sha256
    refetch = (
        f"Delete {path} (or run `manet-zoo download {record.name} --force`) to fetch it again; "
        "if the mismatch persists, the server or mirror serves a different file than the "
        "manifest pins."
    )
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        raise IntegrityError(
            f"{path} is {size:,} bytes but the manifest record '{record.name}' expects "
            f"{expected_size:,}: the file is truncated or not the published one. Not loaded. "
            + refetch,
            path=str(path),
            expected=str(expected_size),
            actual=str(size),
        )
    actual = sha256_file(path)
    if expected_sha is not None and actual != expected_sha:
        raise IntegrityError(
            f"{path} has sha256 {actual} but the manifest record '{record.name}' expects "
            f"{expected_sha}. Not loaded. " + refetch,
            path=str(path),
            expected=expected_sha,
            actual=actual,
        )
    return path


def cached_file(record: Weights, cache_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The file in the Hugging Face cache at the record's pinned revision, or ``None``.
    Makes no HTTP request."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(
        repo_id=record.file.repo_id or "",
        filename=record.file.filename,
        cache_dir=str(cache_dir or config.hf_cache_dir()),
        revision=record.file.revision,
    )
    return Path(found) if isinstance(found, str) else None


def _where_to_put(record: Weights, cache_dir: Path) -> str:
    f = record.file
    return (
        f"Put '{f.filename}' (sha256 {f.sha256}, {f.size:,} bytes; from "
        f"{config.hf_endpoint()}/{f.repo_id}/resolve/{f.revision}/{f.filename}) into a folder "
        f"and set MANET_ZOO_WEIGHTS_DIR to it, or run `manet-zoo download {record.name}` on a "
        f"machine with network and copy {cache_dir} over."
    )


def _download(record: Weights, cache_dir: Path, progress: bool, force: bool) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import silent_tqdm

    f = record.file
    url = f"{config.hf_endpoint()}/{f.repo_id}/resolve/{f.revision}/{f.filename}"
    try:
        path = hf_hub_download(
            repo_id=f.repo_id or "",
            filename=f.filename,
            revision=f.revision,
            cache_dir=str(cache_dir),
            endpoint=config.hf_endpoint(),
            token=config.hf_token(),
            force_download=force,
            library_name="manet-zoo",
            library_version=__version__,
            tqdm_class=None if progress else silent_tqdm,
        )
    except LocalEntryNotFoundError as exc:  # the server could not be reached or failed
        reason = exc.__cause__ or exc
        raise DownloadError(
            f"could not download {url} ({type(reason).__name__}: {reason}). "
            + _where_to_put(record, cache_dir)
        ) from exc
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as exc:
        raise DownloadError(
            f"{url} was not found ({type(exc).__name__}). The manifest record "
            f"'{record.name}' points at a file the server does not have; check "
            "MANET_ZOO_MANIFEST and HF_ENDPOINT, or a token (HF_TOKEN) for a private repo."
        ) from exc
    except Exception as exc:  # HTTP errors, and the HTTP client's own (broken connection)
        raise DownloadError(
            f"downloading {url} failed ({type(exc).__name__}: {exc}). Nothing was loaded; "
            "run the command again to retry (a partial download resumes)."
        ) from exc
    return Path(path)


def resolve_file(
    record: Weights,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    force_download: bool = False,
) -> Path:
    """A verified local path to ``record``'s checkpoint (see the module docstring)."""
    if not record.published:
        raise _not_published(record)
    air_gapped = config.weights_dir()
    if air_gapped is not None:
        candidate = air_gapped / record.file.filename
        if not candidate.is_file():
            raise WeightsUnavailableOfflineError(
                f"MANET_ZOO_WEIGHTS_DIR is {air_gapped} but it has no '{record.file.filename}' "
                f"(sha256 {record.file.sha256}). Copy the file there, or unset "
                "MANET_ZOO_WEIGHTS_DIR to use the Hugging Face cache."
            )
        return verify_file(candidate, record)

    cache = Path(cache_dir) if cache_dir is not None else config.hf_cache_dir()
    if not force_download:
        hit = cached_file(record, cache)
        if hit is not None:
            return verify_file(hit, record)
    if config.hf_offline():
        raise WeightsUnavailableOfflineError(
            f"HF_HUB_OFFLINE is set and '{record.file.filename}' for '{record.name}' is not "
            f"in the cache {cache}. " + _where_to_put(record, cache)
        )
    return verify_file(_download(record, cache, progress, force_download), record)


def download_from_repo(
    repo_id: str,
    filename: str = "model.safetensors",
    revision: str | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Path:
    """A file from any Hub repo (``hf-hub:`` specs). Without a manifest record there is no
    sha256 to check: safetensors cannot run code, and the loader still checks every
    key and shape."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    from huggingface_hub.utils import silent_tqdm

    try:
        return Path(
            hf_hub_download(
                repo_id=repo_id,
                filename=filename,
                revision=revision,
                cache_dir=str(cache_dir or config.hf_cache_dir()),
                endpoint=config.hf_endpoint(),
                token=config.hf_token(),
                local_files_only=config.hf_offline(),
                library_name="manet-zoo",
                library_version=__version__,
                tqdm_class=None if progress else silent_tqdm,
            )
        )
    except LocalEntryNotFoundError as exc:
        raise WeightsUnavailableOfflineError(
            f"hf-hub:{repo_id}/{filename}@{revision or 'main'} is not cached and cannot be "
            f"downloaded now ({exc})."
        ) from exc
    except (HfHubHTTPError, OSError) as exc:
        raise DownloadError(f"could not download {filename} from {repo_id}: {exc}") from exc
