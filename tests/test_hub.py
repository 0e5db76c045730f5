"""Verified downloads against a real HTTP server on 127.0.0.1 speaking the Hub's
resolve protocol, with a test manifest selected through MANET_ZOO_MANIFEST."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import manet_zoo
from manet_zoo import (
    DownloadError,
    IntegrityError,
    WeightsNotPublishedError,
    WeightsUnavailableOfflineError,
    create_model,
    manet,
    save_weights,
)
from manet_zoo.cli import main as cli_main
from manet_zoo.weights import CANONICAL_LABELS
from tests.hub_server import FakeHub, HubServer

ROOT = Path(__file__).resolve().parents[1]
REPO_ID = "manet-zoo-test/manet-rafdb"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
FILENAME = "manet_rafdb.safetensors"
LABELS = list(CANONICAL_LABELS[:7])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> bytes:
    """A 7-class MA-Net in manet-zoo's safetensors format, with fixed random weights."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / FILENAME
    save_weights(manet(num_classes=7).state_dict(), path, labels=LABELS)
    return path.read_bytes()


def write_manifest(path: Path, data: bytes, *, name: str = "manet_rafdb", **file_overrides):
    record = json.loads((ROOT / "manet_zoo" / "weights_manifest.json").read_text())["models"][
        "manet_rafdb"
    ]
    record["published"] = True
    record["file"] = {
        "filename": FILENAME,
        "repo_id": REPO_ID,
        "revision": COMMIT,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        **file_overrides,
    }
    unpublished = json.loads((ROOT / "manet_zoo" / "weights_manifest.json").read_text())["models"]
    models = {"manet_sfew": unpublished["manet_sfew"], name: record}
    path.write_text(json.dumps({"schema_version": 1, "models": models}))
    return path


@pytest.fixture
def hub(tmp_path, monkeypatch, checkpoint):
    """The fake Hub serving the checkpoint, and the environment pointing at it."""
    fake = FakeHub()
    fake.add(REPO_ID, FILENAME, checkpoint, COMMIT)
    with HubServer(fake) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv(
            "MANET_ZOO_MANIFEST", str(write_manifest(tmp_path / "m.json", checkpoint))
        )
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("MANET_ZOO_WEIGHTS_DIR", raising=False)
        fake.url = url
        yield fake


@pytest.fixture
def no_backoff(monkeypatch):
    """huggingface_hub retries failed requests with sleeps of up to 8 s; the requests
    still happen, only the waiting is skipped."""
    monkeypatch.setattr(time, "sleep", lambda seconds: None)


def snapshot_files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "cache").rglob("snapshots/*/*") if p.exists()]


def test_first_download_then_cached_load_makes_zero_requests(hub, tmp_path):
    model = manet_zoo.manet_rafdb(progress=False)
    assert model.labels == tuple(LABELS) and model.source == "manet_rafdb"
    resolve = [r for r in hub.requests if "/resolve/" in r[1]]
    assert ("GET", f"/{REPO_ID}/resolve/{COMMIT}/{FILENAME}") in resolve

    hub.reset_counts()
    again = manet_zoo.manet_rafdb(progress=False)
    assert hub.count() == 0
    assert torch.equal(again.head_local.weight, model.head_local.weight)


def test_cached_load_works_offline(hub, monkeypatch):
    manet_zoo.manet_rafdb(progress=False)
    hub.reset_counts()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert manet_zoo.load("manet_rafdb", progress=False).num_classes == 7
    assert hub.count() == 0


def test_offline_without_cache_names_the_file_and_where_to_put_it(hub, monkeypatch, checkpoint):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableOfflineError) as info:
        manet_zoo.manet_rafdb()
    message = str(info.value)
    assert FILENAME in message and hashlib.sha256(checkpoint).hexdigest() in message
    assert "MANET_ZOO_WEIGHTS_DIR" in message
    assert hub.count() == 0


def test_sha256_mismatch_is_refused_and_the_file_kept(hub, tmp_path, checkpoint):
    hub.files[(REPO_ID, COMMIT, FILENAME)].mode = "corrupt"
    with pytest.raises(IntegrityError) as info:
        manet_zoo.manet_rafdb(progress=False)
    assert info.value.expected == hashlib.sha256(checkpoint).hexdigest()
    kept = Path(info.value.path)
    assert kept.is_file() and kept.stat().st_size == len(checkpoint)  # nothing removed
    # Checked again before every load from cache: still refused, and offline too.
    hub.reset_counts()
    with pytest.raises(IntegrityError):
        manet_zoo.manet_rafdb(progress=False)
    assert hub.count() == 0


def test_wrong_size_in_cache_is_refused(hub, tmp_path, checkpoint):
    manet_zoo.manet_rafdb(progress=False)
    [cached] = snapshot_files(tmp_path)
    blob = cached.resolve()
    blob.write_bytes(checkpoint[:-10])
    with pytest.raises(IntegrityError, match="truncated or not the published one"):
        manet_zoo.manet_rafdb(progress=False)


def test_truncated_body_is_a_download_error(hub, tmp_path, no_backoff):
    hub.files[(REPO_ID, COMMIT, FILENAME)].mode = "truncated"
    with pytest.raises(DownloadError, match="failed"):
        manet_zoo.manet_rafdb(progress=False)
    assert snapshot_files(tmp_path) == []  # no partial file where a load would find it


@pytest.mark.parametrize(("mode", "match"), [("404", "was not found"), ("500", "500")])
def test_http_errors_are_download_errors(hub, tmp_path, no_backoff, mode, match):
    hub.files[(REPO_ID, COMMIT, FILENAME)].mode = mode
    with pytest.raises(DownloadError, match=match):
        manet_zoo.manet_rafdb(progress=False)
    assert snapshot_files(tmp_path) == []


def test_four_processes_download_at_once(hub, tmp_path, checkpoint):
    code = (
        "import manet_zoo, sys; m = manet_zoo.manet_rafdb(progress=False); "
        "print(m.num_classes, m.labels[0])"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err.decode()[-2000:]
        assert out.decode().split() == ["7", "neutral"]
    blobs = list((tmp_path / "cache").rglob("blobs/*"))
    assert [b for b in blobs if not b.name.endswith(".lock")] and all(
        hashlib.sha256(b.read_bytes()).hexdigest() == hashlib.sha256(checkpoint).hexdigest()
        for b in blobs
        if not b.name.endswith((".lock", ".incomplete"))
    )
    assert len([b for b in blobs if not b.name.endswith((".lock", ".incomplete"))]) == 1


def test_air_gapped_weights_dir(hub, tmp_path, monkeypatch, checkpoint):
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv("MANET_ZOO_WEIGHTS_DIR", str(folder))
    with pytest.raises(WeightsUnavailableOfflineError, match=FILENAME):
        manet_zoo.manet_rafdb()
    (folder / FILENAME).write_bytes(checkpoint)
    model = manet_zoo.manet_rafdb()
    assert model.labels == tuple(LABELS)
    (folder / FILENAME).write_bytes(checkpoint[:-1] + bytes([checkpoint[-1] ^ 1]))
    with pytest.raises(IntegrityError):
        manet_zoo.manet_rafdb()
    assert hub.count() == 0


def test_torch_hub_load_local_with_pretrained(hub):
    model = torch.hub.load(
        str(ROOT), "manet_rafdb", source="local", pretrained=True, progress=False
    )
    assert isinstance(model, manet_zoo.MANet) and model.labels == tuple(LABELS)
    assert any("/resolve/" in path for _, path in hub.requests)


def test_torch_hub_help_from_a_github_style_cache(tmp_path, monkeypatch):
    """torch.hub.help only takes GitHub repos: lay this checkout out as torch.hub caches
    one (``<hub_dir>/<owner>_<repo>_<ref>``) so that it runs without network."""
    import shutil

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    cached = tmp_path / "someone_manet-zoo_main"
    cached.mkdir()
    shutil.copy(ROOT / "hubconf.py", cached)
    shutil.copytree(ROOT / "manet_zoo", cached / "manet_zoo")
    repo = "someone/manet-zoo:main"
    doc = torch.hub.help(repo, "manet_rafdb", trust_repo=True, skip_validation=True)
    assert "RAF-DB" in doc and "88.40" in doc
    entrypoints = set(torch.hub.list(repo, trust_repo=True, skip_validation=True))
    assert entrypoints == {"manet", *manet_zoo.list_models()}


def test_unpublished_record_explains_what_to_do(hub):
    with pytest.raises(WeightsNotPublishedError) as info:
        manet_zoo.manet_sfew()
    message = str(info.value)
    assert "manet-zoo train --recipe sfew" in message
    assert "manet_sfew(weights=" in message and "pretrained=False" in message
    assert hub.count() == 0


def test_num_classes_swaps_heads_and_says_so(hub):
    with pytest.warns(UserWarning, match="replaced both heads"):
        model = manet_zoo.manet_rafdb(num_classes=3, progress=False)
    assert model.head_global.out_features == 3 and model.labels is None


def test_local_file_for_a_record(hub, tmp_path, checkpoint):
    path = tmp_path / "mine.safetensors"
    path.write_bytes(checkpoint)
    model = manet_zoo.manet_rafdb(weights=path)
    assert model.labels == tuple(LABELS) and hub.count() == 0
    torch.manual_seed(1)
    save_weights(manet(num_classes=8).state_dict(), tmp_path / "eight.safetensors")
    with pytest.raises(manet_zoo.CheckpointError, match="8 classes but 'manet_rafdb' has 7"):
        manet_zoo.manet_rafdb(weights=tmp_path / "eight.safetensors")


def test_load_hf_hub_spec(hub, checkpoint):
    hub.add("someone/manet-custom", "model.safetensors", checkpoint, COMMIT)
    model = manet_zoo.load(f"hf-hub:someone/manet-custom@{COMMIT}", progress=False)
    assert model.labels == tuple(LABELS)  # from the file's metadata
    assert model.source == f"hf-hub:someone/manet-custom@{COMMIT}"


def test_load_unknown_spec():
    with pytest.raises(manet_zoo.UnknownModelError, match="manet_rafdb"):
        manet_zoo.load("manet_rafbd")


def test_no_network_and_no_heavy_imports_at_import(hub):
    heavy = [
        "huggingface_hub",
        "torchvision",
        "onnx",
        "onnxruntime",
        "facenet_pytorch",
        "matplotlib",
    ]
    code = (
        "import manet_zoo, sys; manet_zoo.list_models(); manet_zoo.get_weights('manet_rafdb'); "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"  # optional dependencies load only when used
    assert hub.count() == 0


def test_cli_download_info_verify(hub, tmp_path, capsys):
    assert cli_main(["download", "manet_rafdb"]) == 0
    assert "sha256 verified" in capsys.readouterr().out
    assert cli_main(["verify", "manet_rafdb"]) == 0
    assert "OK" in capsys.readouterr().out
    assert cli_main(["info", "manet_rafdb"]) == 0
    info = capsys.readouterr().out
    assert "published" in info and "neutral, happiness" in info and "no mean/std" in info
    assert cli_main(["info", "manet_rafdb", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["file"]["revision"] == COMMIT
    assert cli_main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "manet_rafdb" in listing and "snapshots" in listing  # shows the cached file
    [cached] = snapshot_files(tmp_path)
    assert cli_main(["verify", str(cached)]) == 0
    assert "matches 'manet_rafdb'" in capsys.readouterr().out
    cached.resolve().write_bytes(b"x" * 10)
    assert cli_main(["verify"]) == 1
    assert "FAILED" in capsys.readouterr().err


def test_cli_download_unpublished_fails_clearly(hub, capsys):
    assert cli_main(["download", "manet_sfew"]) == 1
    assert "No published checkpoint" in capsys.readouterr().err
    assert cli_main(["download", "--all"]) == 0
    assert "manet_sfew: skipped (not published)" in capsys.readouterr().out


def test_create_model_untrained_carries_record(hub):
    model = create_model("manet_sfew", pretrained=False)
    assert model.labels == tuple(LABELS) and model.training
    assert model.preprocessing.face == "box"


def test_hf_home_and_hf_token_are_respected(hub, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_TOKEN", "hf_manet_zoo_test_token")
    manet_zoo.manet_rafdb(progress=False)
    cached = list((tmp_path / "hf-home" / "hub").rglob(f"snapshots/{COMMIT}/{FILENAME}"))
    assert len(cached) == 1  # HF_HOME/hub is the cache when HF_HUB_CACHE is unset
    resolve = [a for (_, path), a in zip(hub.requests, hub.authorizations, strict=True)
               if "/resolve/" in path]  # fmt: skip
    assert resolve and all(a == "Bearer hf_manet_zoo_test_token" for a in resolve)
