"""Shared fixtures: the reference weights of ``tests/reference`` (copied from the
project's shared reference folder) in the official checkpoint format."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import REFERENCE_DIR

sys.path.insert(0, str(REFERENCE_DIR))

from reference_weights import reference_input, reference_state_dict


@pytest.fixture(scope="session")
def official_state_dict() -> dict[str, torch.Tensor]:
    """Deterministic weights in the official layout (seed 0), without ``module.``."""
    return reference_state_dict(0)


@pytest.fixture(scope="session")
def official_checkpoint(tmp_path_factory, official_state_dict) -> Path:
    """The reference weights saved the way the authors released theirs: a
    ``torch.save``d dict whose ``state_dict`` keys carry ``nn.DataParallel``'s prefix."""
    path = tmp_path_factory.mktemp("official") / "reference.pth.tar"
    prefixed = {f"module.{k}": v for k, v in official_state_dict.items()}
    torch.save({"epoch": 40, "state_dict": prefixed, "best_acc": torch.tensor(88.4)}, path)
    return path


@pytest.fixture(scope="session")
def converted_weights(tmp_path_factory, official_checkpoint) -> Path:
    """The official-format reference checkpoint converted to manet-zoo's safetensors."""
    from manet_zoo import convert_official_checkpoint

    return convert_official_checkpoint(
        official_checkpoint, tmp_path_factory.mktemp("converted") / "reference.safetensors"
    )


@pytest.fixture(scope="session")
def parity_input() -> torch.Tensor:
    return reference_input(0)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """manet-zoo's own cache (exported ONNX graphs) in a temporary folder, never in the
    user's ~/.cache; subprocesses inherit it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MANET_ZOO_CACHE", str(tmp_path_factory.mktemp("manet_zoo_cache")))
        yield
