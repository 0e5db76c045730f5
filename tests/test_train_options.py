"""Engine options that change how a run uses the machine but not what it computes:
gradient accumulation, bf16 autocast with channels_last, class-balanced oversampling."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from manet_zoo.cli import main
from manet_zoo.train.sampling import balanced_weights, epoch_order
from tests import train_fakes as fake
from tests.test_train_engine import checkpoint_model, history, one_thread, run_args

__all__ = ["one_thread"]  # the fixture, re-used: one intra-op thread for these runs too


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return fake.two_class_folder(tmp_path_factory.mktemp("data"), {"train": 5, "test": 2})


def test_accumulation_reaches_the_same_weights_as_the_full_batch(data, tmp_path):
    """Two micro-batches of 4 per step equal one batch of 8 (BatchNorm frozen, since its
    batch statistics are the one thing accumulation changes)."""
    common = ("--epochs", "1", "--batch-size", "8", "--freeze-bn", "--no-export")
    assert main(run_args(data, tmp_path / "full", *common)) == 0
    assert main(run_args(data, tmp_path / "accum", *common, "--accumulation", "2")) == 0
    assert main(run_args(data, tmp_path / "other", *common, "--lr", "0.01")) == 0
    full, accum = checkpoint_model(tmp_path / "full"), checkpoint_model(tmp_path / "accum")
    other = checkpoint_model(tmp_path / "other")  # finetune's default lr is 0.005
    for key, value in full.items():
        torch.testing.assert_close(accum[key], value, rtol=1e-4, atol=1e-6, msg=key)
    # A wrongly scaled accumulation would look like another learning rate: that shows.
    assert any(
        not torch.allclose(other[k], full[k], rtol=1e-4, atol=1e-6) for k in full if "head" in k
    )


def test_bf16_autocast_with_channels_last_trains_and_exports(data, tmp_path):
    out = tmp_path / "bf16"
    assert main(run_args(data, out, "--epochs", "1", "--amp", "bf16", "--channels-last")) == 0
    [row] = history(out)
    assert torch.isfinite(torch.tensor(row["train_loss"]))
    exported = (out / "model.safetensors").read_bytes()
    assert len(exported) > 100_000_000  # the whole float32 MA-Net, not a bf16 copy


def test_oversampling_balances_the_classes():
    targets = [0] * 90 + [1] * 10
    weights = balanced_weights(targets)
    assert weights[0] == pytest.approx(1 / 90) and weights[-1] == pytest.approx(1 / 10)
    order = epoch_order(len(targets), epoch=0, seed=0, weights=weights)
    assert len(order) == len(targets)  # one epoch is still len(dataset) draws
    drawn = Counter(targets[i] for e in range(20) for i in epoch_order(100, e, 0, weights))
    assert 0.45 < drawn[1] / sum(drawn.values()) < 0.55  # the rare class, drawn half the time
    assert epoch_order(100, 0, 0, weights) == order  # fixed by (seed, epoch)
    assert epoch_order(100, 1, 0, weights) != order


def test_an_empty_validation_split_fails_before_training(tmp_path, capsys):
    """One image per class leaves nothing to hold out: say so at once, not after training."""
    data = fake.rafdb(tmp_path / "raf")
    out = tmp_path / "run"
    args = ["train", "--recipe", "rafdb", "--data", str(data), "--out", str(out),
            "--init", "none", "--epochs", "1", "--input-size", "32", "--workers", "0",
            "--no-progress", "--device", "cpu"]  # fmt: skip
    with pytest.warns(UserWarning, match="partial or modified copy"):
        assert main(args) == 1
    assert "validation split is empty" in capsys.readouterr().err
    assert not (out / "checkpoint.pt").exists()
