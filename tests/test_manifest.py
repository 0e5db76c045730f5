"""The packaged manifest: every record valid, honest about what is published, and
reflected in the factories, torch.hub and the README."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import manet_zoo
from manet_zoo import ManifestError, Weights, get_weights, list_models
from manet_zoo.factories import ZOO_FACTORIES
from manet_zoo.weights import CANONICAL_LABELS, num_params, read_manifest

ROOT = Path(__file__).resolve().parents[1]
PACKAGED = ROOT / "manet_zoo" / "weights_manifest.json"
EXPECTED_RECORDS = {
    "manet_msceleb",
    "manet_rafdb",
    "manet_affectnet7",
    "manet_affectnet8",
    "manet_caers",
    "manet_sfew",
    "manet_fer2013",
    "manet_fedro",
}


def raw_record(name: str) -> dict:
    return copy.deepcopy(json.loads(PACKAGED.read_text())["models"][name])


def test_every_record_validates_and_the_expected_ones_exist():
    records = read_manifest(PACKAGED)
    assert set(records) == EXPECTED_RECORDS
    for name, w in records.items():
        assert isinstance(w, Weights) and w.name == name
        assert w.to_dict() == raw_record(name)  # lossless round trip of the schema


def test_top_level_manifest_is_the_packaged_one():
    assert (ROOT / "weights_manifest.json").read_text() == PACKAGED.read_text()


def test_nothing_is_published_and_no_hash_is_invented():
    assert list_models(pretrained=True) == []
    assert sorted(list_models(pretrained=False)) == sorted(EXPECTED_RECORDS)
    for name in EXPECTED_RECORDS:
        w = get_weights(name)
        assert not w.published and w.sha256 is None and w.file.size is None


def test_labels_follow_the_canonical_order():
    for name in EXPECTED_RECORDS - {"manet_msceleb"}:
        w = get_weights(name)
        assert w.labels == CANONICAL_LABELS[: w.num_classes]
    assert get_weights("manet_msceleb").labels is None
    assert get_weights("manet_msceleb").num_classes == 12666


def test_preprocessing_is_the_official_one():
    for name in EXPECTED_RECORDS:
        p = get_weights(name).preprocessing
        assert p.input_size == (224, 224) and p.resize == "squash"
        assert p.interpolation == "bilinear" and p.mean is None and p.std is None


def test_transforms_give_unnormalised_224_tensors():
    from PIL import Image

    x = get_weights("manet_rafdb").transforms()(Image.new("L", (100, 60), color=255))
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert torch.allclose(x, torch.ones_like(x))  # no mean/std: white stays 1.0


def test_paper_numbers_are_labelled_and_consistent():
    for name in EXPECTED_RECORDS:
        paper = get_weights(name).paper
        if paper and paper.correct:
            assert round(100 * paper.correct / paper.total, 2) == pytest.approx(
                paper.top1, abs=0.01
            )
    assert get_weights("manet_rafdb").paper.top1 == 88.40


def test_meta_counts_parameters_of_the_real_model():
    for classes in (7, 8, 12666):
        with torch.device("meta"):
            model = manet_zoo.MANet(num_classes=classes)
        assert num_params(classes) == sum(p.numel() for p in model.parameters())
    assert get_weights("manet_affectnet8").meta["num_params"] == num_params(8)


def test_a_factory_per_record():
    assert set(ZOO_FACTORIES) == EXPECTED_RECORDS
    for name, factory in ZOO_FACTORIES.items():
        assert getattr(manet_zoo, name) is factory and factory.__doc__


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(published=True), "needs repo_id, revision, sha256 and size"),
        (lambda r: r["file"].update(sha256="ab" * 32), "carries no sha256"),
        (lambda r: r.update(labels=r["labels"][:6]), "6 labels for 7 classes"),
        (lambda r: r.update(labels=[*r["labels"][:6], "joy"]), "canonical vocabulary"),
        (lambda r: r.update(extra=1), "unknown field"),
        (lambda r: r["file"].update(filename="w.pth"), ".safetensors"),
        (lambda r: r["preprocessing"].update(input_size=[100, 100]), "multiples of 16"),
        (
            lambda r: (
                r.update(published=True),
                r["file"].update(repo_id="o/n", revision="main", sha256="0" * 64, size=1),
            ),
            "40-hex commit hash",
        ),
    ],
)
def test_schema_violations_are_manifest_errors(change, message):
    record = raw_record("manet_rafdb")
    change(record)
    with pytest.raises(ManifestError, match=message):
        Weights.from_dict("manet_rafdb", record)


def test_manifest_override_and_bad_manifests(tmp_path, monkeypatch):
    path = tmp_path / "m.json"
    path.write_text(
        json.dumps({"schema_version": 1, "models": {"mine": raw_record("manet_rafdb")}})
    )
    monkeypatch.setenv("MANET_ZOO_MANIFEST", str(path))
    assert list_models() == ["mine"]
    path.write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        list_models()
    path.write_text(json.dumps({"schema_version": 99, "models": {}}))
    with pytest.raises(ManifestError, match="schema_version 99"):
        list_models()
    monkeypatch.setenv("MANET_ZOO_MANIFEST", str(tmp_path / "missing.json"))
    with pytest.raises(ManifestError, match="no weights manifest"):
        list_models()


def test_readme_model_table_is_generated_from_the_manifest():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "update_model_table.py"), "--check"],
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| `manet_rafdb` | 7 | RAF-DB basic |" in (ROOT / "README.md").read_text()
