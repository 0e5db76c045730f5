"""The training engine on MA-Net itself, at 32 px on a few synthetic images (seconds):
loss falls, train -> evaluate -> export -> load -> publish round trip, SIGKILL + resume
is bit-exact, and 2-process DDP (gloo, launched by torch.distributed.run) equals one
process with the same global batch. The finished run is then really published to a
fake Hub on 127.0.0.1 (tests/hub_server.py) and loaded back from it by name."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants

from manet_zoo.cli import main
from manet_zoo.errors import PublishError
from manet_zoo.train.publish import publish_run
from tests import train_fakes as fake
from tests.hub_server import FakeHub, HubServer

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(nodes: int) -> list[list[str]]:
    """The launcher command lines for 2 processes: one node with 2, or 2 nodes with one
    each (two torchrun agents meeting at a c10d rendezvous on 127.0.0.1, each process
    LOCAL_RANK 0, as on two machines)."""
    launcher = [sys.executable, "-m", "torch.distributed.run"]
    if nodes == 1:
        return [[*launcher, "--standalone", "--nproc-per-node", "2"]]
    endpoint = f"127.0.0.1:{free_port()}"
    agent = [*launcher, "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
             "--rdzv-endpoint", endpoint, "--rdzv-id", "manet-zoo-test"]  # fmt: skip
    return [agent, agent]


@pytest.mark.parametrize("nodes", [1, 2], ids=["1-node-2-procs", "2-nodes-1-proc"])
def test_ddp_two_processes_equal_one_process(data, tmp_path, nodes):
    """gloo on CPU has no SyncBatchNorm, so both runs keep BatchNorm frozen (eval mode):
    each sample's gradient is then independent of its batch, and 2 x 2 images must give
    what 1 x 4 gives, up to float summation order."""
    common = ["--freeze-bn", "--epochs", "1", "--no-export"]
    single = tmp_path / "single"
    assert main(run_args(data, single, *common)) == 0
    double = tmp_path / "ddp"
    launchers = torchrun(nodes)
    logs = [tmp_path / f"agent{i}.log" for i in range(len(launchers))]
    agents = [  # output to files: a full pipe would stall one agent and so both
        subprocess.Popen(
            [*launcher, "-m", "manet_zoo.cli", *run_args(data, double, *common)],
            env=env(OMP_NUM_THREADS="1"),
            cwd=ROOT,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        for launcher, log in zip(launchers, logs, strict=True)
    ]
    for agent, log in zip(agents, logs, strict=True):
        assert agent.wait(timeout=300) == 0, log.read_text()[-3000:]
    assert json.loads((double / "summary.json").read_text())["world_size"] == 2
    a, b = checkpoint_model(single), checkpoint_model(double)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6, msg=key)
    first = torch.load(single / "checkpoint.pt", weights_only=True)
    assert first["epoch"] == 1
    assert history(single)[0]["train_loss"] == pytest.approx(
        history(double)[0]["train_loss"], rel=1e-5
    )


def test_compile_trains_like_eager_and_checkpoints_plain_keys(data, tmp_path):
    """``--compile`` (about a minute of compiling on 2 cores): the same weights as the
    eager run up to float rounding, saved under the model's own names (no
    ``_orig_mod.`` prefix), so the checkpoint loads anywhere."""
    common = ["--freeze-bn", "--epochs", "1", "--no-export"]
    assert main(run_args(data, tmp_path / "eager", *common)) == 0
    assert main(run_args(data, tmp_path / "compiled", *common, "--compile")) == 0
    eager, compiled = checkpoint_model(tmp_path / "eager"), checkpoint_model(tmp_path / "compiled")
    assert list(compiled) == list(eager)
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-4, atol=1e-6, msg=key)


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


# Publishing to a fake Hub that speaks the upload protocol (tests/hub_server.py).

REPO = "org/manet-test"
TOKEN = "hf_test_write"
PUBLISHED = ("manifest_record.json", "model.safetensors", "README.md")  # what publish reads


def hub_env(mp: pytest.MonkeyPatch, url: str, cache: Path, token: str | None) -> None:
    """Point manet-zoo and huggingface_hub at the fake Hub, with ``token`` or none at all."""
    # huggingface_hub uploads through hf_xet whenever it is importable, and its CAS server
    # cannot be faked here; this documented switch (read at call time) makes it use the
    # git-lfs "basic" protocol instead, which the Hub also takes and the fake speaks.
    mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
    mp.setattr(constants, "HF_TOKEN_PATH", str(cache / "no-stored-token"))  # no `hf auth login`
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_HUB_OFFLINE",
                "MANET_ZOO_WEIGHTS_DIR"):  # fmt: skip
        mp.delenv(var, raising=False)
    mp.setenv("HF_ENDPOINT", url)
    mp.setenv("HF_HUB_CACHE", str(cache))
    if token is not None:
        mp.setenv("HF_TOKEN", token)


def publishable_copy(run: Path, dest: Path) -> Path:
    """The files publish reads, in a folder of their own (the 200 MB model hard-linked)."""
    dest.mkdir()
    for name in PUBLISHED:
        try:
            os.link(run / name, dest / name)
        except OSError:
            shutil.copy2(run / name, dest / name)
    return dest


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.fixture(scope="module")
def published(finished_run, tmp_path_factory):
    """``manet-zoo publish`` of the finished run to a fake Hub that needs a write token:
    yields the hub, its URL and what the command printed."""
    hub = FakeHub(write_token=TOKEN)
    with HubServer(hub) as url:
        with pytest.MonkeyPatch.context() as mp:
            hub_env(mp, url, tmp_path_factory.mktemp("publish-cache"), TOKEN)
            printed, bars = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(bars):
                args = ["publish", str(finished_run), "--repo-id", REPO, "--no-progress"]
                assert main(args) == 0
        assert "Upload" not in bars.getvalue()  # huggingface_hub's bars were switched off
        yield hub, url, printed.getvalue()


def test_publish_uploads_the_run_in_one_commit_with_the_token(finished_run, published):
    from manet_zoo.weights import Weights

    hub, _, printed = published
    pasted = json.loads(printed[printed.index("{") :])
    ((name, record),) = pasted.items()
    assert f"uploaded README.md, {name}.safetensors, model.safetensors to {REPO}" in printed
    model_bytes = (finished_run / "model.safetensors").read_bytes()
    assert hub.repos[REPO] == {
        f"{name}.safetensors": model_bytes,
        "model.safetensors": model_bytes,
        "README.md": (finished_run / "README.md").read_bytes(),
    }
    f = record["file"]
    assert f["repo_id"] == REPO and f["filename"] == f"{name}.safetensors"
    assert f["sha256"] == hashlib.sha256(model_bytes).hexdigest() and f["size"] == len(model_bytes)
    assert hub.commits[REPO] == [f["revision"]]  # one commit, the one the server made
    assert len(hub.lfs) == 1 and hub.count("PUT") == 2  # two names, one oid, one batch
    Weights.from_dict(name, record)  # the manifest schema accepts the printed record
    assert json.loads((finished_run / "published_record.json").read_text()) == pasted

    calls = {(m, p.split("?")[0]) for m, p in hub.requests}
    assert {("POST", "/api/repos/create"), ("POST", "/api/validate-yaml"),
            ("POST", f"/api/models/{REPO}/preupload/main"),
            ("POST", f"/{REPO}.git/info/lfs/objects/batch"),
            ("POST", f"/api/models/{REPO}/commit/main")} <= calls  # fmt: skip
    # Every request carried the token, except the PUT of the LFS bytes to the href the
    # batch answer gave (a pre-signed storage URL on the real Hub).
    for (method, path), auth in zip(hub.requests, hub.authorizations, strict=True):
        if not (method == "PUT" and path.startswith("/lfs-objects/")):
            assert auth == f"Bearer {TOKEN}", (method, path)


def test_published_record_loads_back_by_name_and_by_commit(
    finished_run, published, tmp_path, monkeypatch
):
    import manet_zoo

    hub, url, printed = published
    pasted = json.loads(printed[printed.index("{") :])
    ((name, record),) = pasted.items()
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"schema_version": 1, "models": pasted}))
    hub_env(monkeypatch, url, tmp_path / "cache", token=None)  # downloads need no token
    monkeypatch.setenv("MANET_ZOO_MANIFEST", str(manifest))

    reference = manet_zoo.load(finished_run / "model.safetensors")
    sha = record["file"]["revision"]
    for spec in (name, f"hf-hub:{REPO}@{sha}"):
        model = manet_zoo.load(spec, progress=False)
        assert model.labels == reference.labels == ("happiness", "sadness"), spec
        theirs, ours = model.state_dict(), reference.state_dict()
        assert theirs.keys() == ours.keys()
        for key in ours:
            assert torch.equal(theirs[key], ours[key]), (spec, key)
    assert ("GET", f"/{REPO}/resolve/{sha}/{name}.safetensors") in hub.requests
    assert ("HEAD", f"/{REPO}/resolve/{sha}/model.safetensors") in hub.requests


@pytest.mark.parametrize("token", [None, "hf_read_only"])
def test_publish_without_a_write_token_says_to_set_hf_token(
    finished_run, tmp_path, monkeypatch, token
):
    run = publishable_copy(finished_run, tmp_path / "run")
    before = listing(run)
    hub = FakeHub(write_token=TOKEN)
    with HubServer(hub) as url:
        hub_env(monkeypatch, url, tmp_path / "cache", token)
        with pytest.raises(PublishError) as info:
            publish_run(run, REPO)
    message = str(info.value)
    assert "HF_TOKEN" in message and "hf auth login" in message and "HTTP 401" in message
    assert REPO in message and url in message
    assert hub.count() > 0 and not hub.repos and not hub.lfs  # refused, nothing written
    assert listing(run) == before  # no published_record.json, nothing touched


def test_publish_to_an_unreachable_endpoint_names_it(finished_run, tmp_path, monkeypatch):
    run = publishable_copy(finished_run, tmp_path / "run")
    url = f"http://127.0.0.1:{free_port()}"  # a port nothing listens on once closed
    hub_env(monkeypatch, url, tmp_path / "cache", TOKEN)
    with pytest.raises(PublishError) as info:
        publish_run(run, REPO)
    assert REPO in str(info.value) and url in str(info.value)
    assert not (run / "published_record.json").exists()


def test_a_record_outside_the_manifest_schema_is_refused_before_any_request(
    finished_run, tmp_path, monkeypatch
):
    run = publishable_copy(finished_run, tmp_path / "run")
    exported = json.loads((run / "manifest_record.json").read_text())
    exported["record"]["labels"] = exported["record"]["labels"][:1]  # 1 label, 2 classes
    (run / "manifest_record.json").unlink()  # a hard link: do not write through
    (run / "manifest_record.json").write_text(json.dumps(exported))
    hub = FakeHub(write_token=TOKEN)
    with HubServer(hub) as url:
        hub_env(monkeypatch, url, tmp_path / "cache", TOKEN)
        for dry_run in (True, False):
            with pytest.raises(PublishError, match="1 labels for 2 classes"):
                publish_run(run, REPO, dry_run=dry_run)
    assert hub.count() == 0 and not (run / "published_record.json").exists()


def test_the_fake_hub_rejects_a_model_card_with_broken_yaml(finished_run, tmp_path, monkeypatch):
    run = publishable_copy(finished_run, tmp_path / "run")
    card = (run / "README.md").read_text()
    assert "\nlicense: other\n" in card
    (run / "README.md").unlink()  # a hard link: do not write through to the finished run
    (run / "README.md").write_text(card.replace("\nlicense: other\n", "\nlicense: [other\n"))
    hub = FakeHub(write_token=TOKEN)
    with HubServer(hub) as url:
        hub_env(monkeypatch, url, tmp_path / "cache", TOKEN)
        with pytest.raises(PublishError) as info:
            publish_run(run, REPO)
    assert "Invalid metadata in README.md" in str(info.value)
    assert "YAML metadata is not valid" in str(info.value)  # the fake's yaml.safe_load error
    assert hub.commits[REPO] == [] and not hub.lfs  # refused before any upload
    assert not (run / "published_record.json").exists()


def test_the_fake_hub_refuses_wrong_lfs_bytes_and_a_commit_of_unuploaded_ones():
    """The fake checks what the Hub checks, so a client that skipped a step would fail."""
    import urllib.error
    import urllib.request

    hub = FakeHub(write_token=TOKEN)
    hub.repos[REPO], hub.commits[REPO] = {}, []
    oid = hashlib.sha256(b"weights").hexdigest()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    commit = b"\n".join(json.dumps(line).encode() for line in (
        {"key": "header", "value": {"summary": "s", "description": ""}},
        {"key": "lfsFile", "value": {"path": "w.safetensors", "algo": "sha256", "oid": oid}},
    ))  # fmt: skip

    def status(method: str, path: str, data: bytes, headers: dict[str, str]) -> int:
        request = urllib.request.Request(url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    with HubServer(hub) as url:
        assert status("POST", f"/api/models/{REPO}/commit/main", commit, {}) == 401
        assert status("POST", f"/api/models/{REPO}/commit/main", commit, auth) == 422
        assert status("PUT", f"/lfs-objects/{oid}", b"other bytes", {}) == 400
        assert status("PUT", f"/lfs-objects/{oid}", b"weights", {}) == 200
        assert status("POST", f"/api/models/{REPO}/commit/main", commit, auth) == 200
    assert hub.repos[REPO] == {"w.safetensors": b"weights"} and len(hub.commits[REPO]) == 1
