"""Environment variables, read in one place and at call time (never at import), so that
a change made by a test or a notebook takes effect on the next call.

huggingface_hub's own variables (``HF_HOME``, ``HF_HUB_CACHE``, ``HF_ENDPOINT``,
``HF_HUB_OFFLINE``, ``HF_TOKEN``) keep the meaning huggingface_hub documents; manet-zoo
adds these:

``MANET_ZOO_MANIFEST``
    Path of a manifest to use instead of the packaged ``weights_manifest.json``
    (private zoos, mirrors, tests).
``MANET_ZOO_WEIGHTS_DIR``
    An air-gapped folder holding weights files named as in the manifest; they are
    verified by sha256 and nothing is downloaded.
``MANET_ZOO_CACHE``
    manet-zoo's own cache (exported ONNX graphs); default ``$XDG_CACHE_HOME/manet_zoo``
    or ``~/.cache/manet_zoo``.
``MANET_ZOO_ONNX_CACHE``
    ``0`` turns the ONNX graph cache off: every ONNX Runtime session exports its graph
    again, in memory.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "on", "yes", "true"}


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def manifest_override() -> Path | None:
    value = _env("MANET_ZOO_MANIFEST")
    return Path(value).expanduser() if value else None


def weights_dir() -> Path | None:
    value = _env("MANET_ZOO_WEIGHTS_DIR")
    return Path(value).expanduser() if value else None


def hf_endpoint() -> str:
    return (_env("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hf_offline() -> bool:
    return (_env("HF_HUB_OFFLINE") or "").lower() in _TRUE


def hf_token() -> str | None:
    return _env("HF_TOKEN")


def hf_cache_dir() -> Path:
    """huggingface_hub's cache folder, resolved as huggingface_hub resolves it."""
    explicit = _env("HF_HUB_CACHE") or _env("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    home = _env("HF_HOME")
    if home:
        return Path(home).expanduser() / "hub"
    return _user_cache() / "huggingface" / "hub"


def cache_dir() -> Path:
    explicit = _env("MANET_ZOO_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    return _user_cache() / "manet_zoo"


def _user_cache() -> Path:
    xdg = _env("XDG_CACHE_HOME")
    return Path(xdg).expanduser() if xdg else Path.home() / ".cache"


def onnx_cache_enabled() -> bool:
    return (_env("MANET_ZOO_ONNX_CACHE") or "1").lower() not in {"0", "off", "no", "false"}
