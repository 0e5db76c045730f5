"""The training engine on MA-Net itself, at 32 px on a few synthetic images (seconds):
loss falls, train -> evaluate -> export -> load -> publish round trip, SIGKILL + resume
is bit-exact, and 2-process DDP (gloo, launched by torch.distributed.run) equals one
process with the same global batch."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from manet_zoo.cli import main
from tests import train_fakes as fake

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--input-size", "32", "--workers", "0", "--no-progress", "--device", "cpu"]


def run_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train", "--recipe", "finetune", "--data", str(data), "--out", str(out),
        "--init", "none", "--batch-size", "4", "--epochs", "2", "--val-fraction", "0.2",
        *TINY, *extra,
    ]  # fmt: skip


def checkpoint_model(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]


def history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e["OMP_NUM_THREADS"] = "1"  # as the test process (see one_thread)
    e.update(extra)
    return e


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread, here and in the subprocesses: the same float arithmetic in
    every process (the resume test compares bits), and no OpenMP spinning when the
    machine's few cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """5 bright 'happy' and 5 dark 'sad' training images (1 + 1 held out), 2 + 2 test."""
    return fake.two_class_folder(tmp_path_factory.mktemp("data"), {"train": 5, "test": 2})


@pytest.fixture(scope="module")
def finished_run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "ref"
    assert main(run_args(data, out)) == 0
    return out


def test_loss_falls_on_a_learnable_task(data, tmp_path):
    out = tmp_path / "learn"
    args = run_args(data, out, "--epochs", "5", "--batch-size", "8", "--lr", "0.02",
                    "--no-hflip", "--rrc-scale", "1,1", "--no-export")  # fmt: skip
    assert main(args) == 0
    losses = [row["train_loss"] for row in history(out)]
    assert losses[-1] < 0.6 * losses[0], losses


def test_round_trip_train_evaluate_export_load_publish(finished_run, data, tmp_path, capsys):
    import manet_zoo
    from manet_zoo.checkpoint import sha256_file
    from manet_zoo.weights import Weights

    run = finished_run
    for name in ("recipe.json", "metrics.csv", "metrics.jsonl", "summary.json", "curves.png",
                 "model.safetensors", "manifest_record.json", "README.md", "splits/splits.sha256",
                 "test_selected_confusion.png"):  # fmt: skip
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["sizes"] == {"train": 8, "val": 2, "test": 4} and summary["epochs"] == 2
    assert "official-style" in summary["best_on_test"]["note"]
    assert len((run / "metrics.csv").read_text().splitlines()) == 3

    model = manet_zoo.load(run / "model.safetensors")
    assert model.labels == ("happiness", "sadness") and model.preprocessing.input_size == (32, 32)

    capsys.readouterr()
    assert main(["evaluate", "--weights", str(run / "model.safetensors"), "--dataset", "custom",
                 "--data", str(data), "--split", "test", "--out", str(tmp_path)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "mean class accuracy" in printed and "happiness" in printed
    result = json.loads((tmp_path / "eval_custom_test.json").read_text())
    assert result["total"] == 4 and (tmp_path / "eval_custom_test_confusion.png").is_file()
    selected = summary["test_acc_selected"]
    assert result["accuracy"] == pytest.approx(selected, abs=1e-3)  # same weights, same test set

    exported = json.loads((run / "manifest_record.json").read_text())
    record = exported["record"]
    assert record["file"]["sha256"] == sha256_file(run / "model.safetensors")
    prov = record["metrics"]["provenance"]
    assert prov["split_sha256"] == summary["split_sha256"] and prov["seed"] == 0
    assert record["metrics"]["top1"] == round(selected, 2)
    card = (run / "README.md").read_text()
    assert card.startswith("---\n") and "model-index:" in card and "\n---\n" in card

    capsys.readouterr()
    assert main(["publish", str(run), "--repo-id", "org/manet-test", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "dry run" in printed
    pasted = json.loads(printed[printed.index("{") :])
    ((name, rec),) = pasted.items()
    assert rec["file"]["repo_id"] == "org/manet-test" and rec["file"]["revision"] is None
    rec["file"]["revision"] = "0" * 40  # what a real upload fills in
    Weights.from_dict(name, rec)  # the manifest schema accepts it


def test_resume_after_sigkill_mid_epoch_is_bit_exact(finished_run, data, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "manet_zoo.cli", *run_args(data, out, "--checkpoint-every", "1")]
    proc = subprocess.Popen(
        cmd, env=env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    info = out / "checkpoint.json"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if info.is_file() and json.loads(info.read_text())["step"] > 0:
                break  # a mid-epoch checkpoint exists
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        output = proc.communicate()[0].decode()
    assert proc.returncode == -signal.SIGKILL, output
    position = json.loads(info.read_text())
    assert position["step"] > 0 and position["epoch"] == 0, position
    assert not (out / "summary.json").exists()

    assert main(run_args(data, out, "--resume")) == 0
    reference, resumed = checkpoint_model(finished_run), checkpoint_model(out)
    assert reference.keys() == resumed.keys()
    for key in reference:
        assert torch.equal(reference[key], resumed[key]), key
    assert [r["train_loss"] for r in history(out)] == [
        r["train_loss"] for r in history(finished_run)
    ]
    ref_best = (finished_run / "model.safetensors").read_bytes()
    assert (out / "model.safetensors").read_bytes()[-1000:] == ref_best[-1000:]


def test_ddp_two_processes_equal_one_process(data, tmp_path):
    """gloo on CPU has no SyncBatchNorm, so both runs keep BatchNorm frozen (eval mode):
    each sample's gradient is then independent of its batch, and 2 x 2 images must give
    what 1 x 4 gives, up to float summation order."""
    common = ["--freeze-bn", "--epochs", "1", "--no-export"]
    single = tmp_path / "single"
    assert main(run_args(data, single, *common)) == 0
    double = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "manet_zoo.cli", *run_args(data, double, *common)]  # fmt: skip
    done = subprocess.run(
        cmd, env=env(OMP_NUM_THREADS="1"), cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads((double / "summary.json").read_text())["world_size"] == 2
    a, b = checkpoint_model(single), checkpoint_model(double)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6, msg=key)
    first = torch.load(single / "checkpoint.pt", weights_only=True)
    assert first["epoch"] == 1
    assert history(single)[0]["train_loss"] == pytest.approx(
        history(double)[0]["train_loss"], rel=1e-5
    )


def test_evaluate_on_fedro_and_a_ran_list_matches_labels_by_name(finished_run, tmp_path, capsys):
    weights = str(finished_run / "model.safetensors")  # a 2-class model: happiness, sadness
    fedro = fake.fedro(tmp_path / "fedro")
    with pytest.warns(UserWarning, match="left out 5 images"):
        assert main(["evaluate", "--weights", weights, "--dataset", "fedro", "--data", str(fedro),
                     "--out", str(tmp_path / "e1")]) == 0  # fmt: skip
    result = json.loads((tmp_path / "e1" / "eval_fedro_test.json").read_text())
    assert result["total"] == 2 and result["dropped"] == 5
    rafdb = fake.rafdb(tmp_path / "raf")
    lists = fake.ran_rafdb_lists(rafdb)
    with pytest.warns(UserWarning):
        assert main(["evaluate", "--weights", weights, "--dataset", "rafdb_occlusion",
                     "--data", str(rafdb), "--list", str(lists / "rafdb_occlusion_list.txt")]) == 0  # fmt: skip  # noqa: E501
    assert "rafdb_occlusion test: 1 images" in capsys.readouterr().out


def test_fp16_gradient_scaler_is_checkpointed_and_resumed_exactly(data, tmp_path):
    """fp16 with a gradient scaler (the CUDA recipes' path; PyTorch runs it on a CPU too):
    every step is taken, the scaler's state is checkpointed, and a run resumed after its
    first epoch ends bit for bit where an uninterrupted one does. BatchNorm is frozen:
    at 32 px the last maps are 1 x 1 and batch statistics over 4 of them push gradients
    past fp16's range at any loss scale, an artefact of tiny inputs."""
    fp16 = ["--amp", "fp16", "--freeze-bn", "--no-export"]
    straight = tmp_path / "straight"
    with pytest.warns(UserWarning, match="use --amp bf16"):
        assert main(run_args(data, straight, *fp16)) == 0
    state = torch.load(straight / "checkpoint.pt", weights_only=True)
    # 2 epochs x 2 steps, none skipped for overflow (a skip halves the scale, resets this)
    assert state["scaler"]["scale"] == 2.0**16 and state["scaler"]["_growth_tracker"] == 4
    assert all(math.isfinite(r["train_loss"]) for r in history(straight))

    halves = tmp_path / "halves"
    with pytest.warns(UserWarning):
        assert main(run_args(data, halves, *fp16, "--epochs", "1")) == 0
        assert main(run_args(data, halves, *fp16, "--resume")) == 0
    resumed = torch.load(halves / "checkpoint.pt", weights_only=True)
    assert resumed["scaler"] == state["scaler"]
    for key, value in state["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
