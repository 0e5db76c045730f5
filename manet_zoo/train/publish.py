"""Turning a finished run into a zoo checkpoint: ``model.safetensors``, a manifest
record, a model card; and uploading them to the Hugging Face Hub.

``export_run(run_dir)`` is offline and runs at the end of every training run.
``publish_run(run_dir, repo_id)`` uploads the three files in **one** commit (so the
record pins a single revision) and returns the record to paste into
``manet_zoo/weights_manifest.json``; with ``dry_run=True`` it uploads nothing and
prints the same record, its ``revision`` left empty until a real upload gives one.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from manet_zoo._version import __version__
from manet_zoo.checkpoint import load_weights, save_weights, sha256_file
from manet_zoo.errors import ManifestError, PublishError, UnknownModelError
from manet_zoo.train.engine import BEST, TrainingError
from manet_zoo.train.recipes import Recipe

MODEL_FILE = "model.safetensors"
RECORD_FILE = "manifest_record.json"
CARD_FILE = "README.md"
PAPER = "Zhao, Liu, Wang. Learning Deep Global Multi-scale and Local Attention Features for Facial Expression Recognition in the Wild. IEEE TIP 30:6544-6556, 2021."  # noqa: E501


def git_commit() -> dict[str, Any]:
    """The commit of the manet-zoo checkout this code runs from (``None`` when it is not
    a git checkout, e.g. an installed wheel) and whether tracked files were modified."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(dirty)}


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise PublishError(f"{path} is missing: is {path.parent} a finished manet-zoo run?")
    return json.loads(path.read_text())


def _base_record(recipe: Recipe) -> Any:
    if recipe.record is None:
        return None
    from manet_zoo.weights import get_weights

    try:
        return get_weights(recipe.record)
    except UnknownModelError:
        return None


def export_run(run_dir: str | os.PathLike[str], name: str | None = None) -> Path:
    """Write ``model.safetensors`` (the weights selected on validation), the manifest
    record ``manifest_record.json`` and the model card ``README.md`` into ``run_dir``."""
    run = Path(run_dir)
    setup = _read_json(run / "recipe.json")
    summary = _read_json(run / "summary.json")
    recipe = Recipe.from_dict(setup["recipe"])
    best = run / BEST
    if not best.is_file() or "selected_epoch" not in summary:
        raise TrainingError(f"{run} has no selected weights ({BEST}): train at least one epoch")
    state_dict, metadata = load_weights(best)
    base = _base_record(recipe)
    name = name or recipe.record or f"manet_{recipe.name}_{run.name}"
    git = git_commit()
    metadata.update(
        {
            "manet_zoo.source": f"trained:{name}",
            "manet_zoo.recipe": recipe.name,
            "manet_zoo.version": __version__,
            "manet_zoo.git_commit": str(git["commit"]),
            "manet_zoo.split_sha256": summary["split_sha256"],
        }
    )
    from manet_zoo.checkpoint import labels_from_metadata, preprocessing_from_metadata

    labels = labels_from_metadata(metadata)
    preprocessing = preprocessing_from_metadata(metadata)
    model_path = save_weights(
        state_dict, run / MODEL_FILE, labels=labels, preprocessing=preprocessing,
        metadata={k: v for k, v in metadata.items() if k.startswith("manet_zoo.") and k not in {
            "manet_zoo.labels", "manet_zoo.preprocessing", "manet_zoo.num_classes",
            "manet_zoo.layout"}},
    )  # fmt: skip
    per_class = None
    if summary.get("test_confusion_selected") is not None:
        from manet_zoo.train.evaluate import EvalResult

        result = EvalResult(
            labels=tuple(summary["classes"]),
            confusion=tuple(tuple(r) for r in summary["test_confusion_selected"]),
            dataset=summary["test_set"],
        )
        per_class = {
            k: (round(v, 2) if v is not None else None) for k, v in result.per_class.items()
        }
        from manet_zoo.train.evaluate import write_result

        write_result(result, run, stem="test_selected")
    sizes = summary["sizes"]
    val_text = (
        f"{sizes['val']:,} held out from the training data (stratified, {recipe.val_fraction:g}, "
        f"seed {recipe.val_seed})"
        if recipe.val == "holdout"
        else f"{sizes['val']:,} ({recipe.val})"
    )  # fmt: skip
    metrics: dict[str, Any] = {
        "top1": _round(summary.get("test_acc_selected")),
        "mean_class_accuracy": _round(summary.get("test_mean_class_acc_selected")),
        "top1_last_epoch": _round(summary.get("test_acc_last")),
        "top1_best_on_test": _round((summary.get("best_on_test") or {}).get("test_acc")),
        "val_top1": _round(summary["val_acc_selected"]),
        "selected_epoch": summary["selected_epoch"],
        "epochs": summary["epochs"],
        "test_set": summary.get("test_set"),
        "per_class_accuracy": per_class,
        "note": "top1 is measured at the epoch selected on the validation split; "
        "top1_best_on_test is the official-style best test epoch (optimistic)",
        "provenance": {
            "recipe": recipe.to_dict(),
            "seed": recipe.seed,
            "manet_zoo_version": __version__,
            "git_commit": git["commit"],
            "git_dirty": git["dirty"],
            "split_sha256": summary["split_sha256"],
            "world_size": summary["world_size"],
            "torch_version": setup.get("torch_version"),
        },
    }
    record = {
        "description": base.description
        if base
        else f"MA-Net fine-tuned with manet-zoo ({recipe.description})",
        "task": "expression",
        "architecture": {"num_classes": len(labels or ()), "fusion_weight": recipe.fusion_weight},
        "labels": list(labels) if labels else None,
        "preprocessing": preprocessing.to_dict() if preprocessing else None,
        "dataset": base.dataset
        if base
        else ", ".join(f"{k}: {Path(v).name}" for k, v in setup["data"].items()),
        "protocol": f"train {sizes['train']:,} / val {val_text} / test {sizes['test']:,}",
        "recipe": recipe.name,
        "init": Path(recipe.init).name if recipe.init and os.sep in recipe.init else recipe.init,
        "paper": base.to_dict()["paper"] if base else None,
        "metrics": metrics,
        "license": base.license
        if base
        else "Check the license of the training data before using these weights.",
        "source": f"trained with manet-zoo {__version__} (git {git['commit'] or 'unknown'}), "
        f"recipe '{recipe.name}', seed {recipe.seed}",
        "published": True,
        "file": {
            "filename": f"{name}.safetensors",
            "repo_id": None,
            "revision": None,
            "sha256": sha256_file(model_path),
            "size": model_path.stat().st_size,
        },
    }
    (run / RECORD_FILE).write_text(json.dumps({"name": name, "record": record}, indent=2) + "\n")
    (run / CARD_FILE).write_text(model_card(name, record, summary))
    return model_path


def _round(value: Any) -> Any:
    return round(float(value), 2) if value is not None else None


def _yaml(value: Any) -> str:
    return json.dumps(value)  # a JSON scalar is a valid YAML scalar


def model_card(name: str, record: dict[str, Any], summary: dict[str, Any]) -> str:
    """A Hugging Face model card with YAML front matter (model-index with the metrics)."""
    m = record["metrics"]
    results = []
    if m.get("top1") is not None:
        results.append(("accuracy", m["top1"], "Top-1 at the epoch selected on validation"))
        results.append(("accuracy", m["top1_last_epoch"], "Top-1 at the last epoch"))
        results.append(("accuracy", m["mean_class_accuracy"], "Mean class accuracy (selected)"))
    front = [
        "---",
        "library_name: manet-zoo",
        "license: other",
        "pipeline_tag: image-classification",
        "tags:",
        "- facial-expression-recognition",
        "- image-classification",
        "- pytorch",
        "- manet",
        "metrics:",
        "- accuracy",
    ]
    if results:
        front += [
            "model-index:",
            f"- name: {_yaml(name)}",
            "  results:",
            "  - task:",
            "      type: image-classification",
            "      name: Facial expression recognition",
            "    dataset:",
            f"      name: {_yaml(record['dataset'])}",
            f"      type: {_yaml(record['recipe'])}",
            f"      split: {_yaml(m['test_set'])}",
            "    metrics:",
        ]
        for kind, value, label in results:
            front += [f"    - type: {kind}", f"      value: {value}", f"      name: {_yaml(label)}"]
    front.append("---")
    labels = ", ".join(record["labels"] or [])
    pre = record["preprocessing"] or {}
    rows = [
        ("Top-1, epoch selected on validation", m.get("top1")),
        ("Mean class accuracy (selected)", m.get("mean_class_accuracy")),
        ("Top-1, last epoch", m.get("top1_last_epoch")),
        ("Top-1, best epoch on test (official-style, optimistic)", m.get("top1_best_on_test")),
        ("Validation top-1 (selected)", m.get("val_top1")),
    ]
    paper = record.get("paper")
    table = "\n".join(f"| {k} | {v if v is not None else 'n/a'} |" for k, v in rows)
    prov = m["provenance"]
    body = f"""
# {name}

MA-Net (global multi-scale and local attention network) for facial expression
recognition, trained with [manet-zoo](https://github.com/) recipe `{record["recipe"]}`.

- **Labels (output order):** {labels}
- **Input:** {pre.get("input_size")} RGB in [0, 1], resize `{pre.get("resize")}`, no mean/std
  normalisation; faces: `{pre.get("face")}`
- **Data:** {record["dataset"]} - {record["protocol"]}
- **Init:** {record["init"] or "from scratch"}

## Results on {m.get("test_set") or "no test set"}

| metric | % |
|---|---|
{table}
{f"| Paper (best on test) | {paper['top1']} |" if paper else ""}

The checkpoint is the epoch with the best accuracy on a validation split held out from
the training data; the "best on test" number picks the epoch on the test set, as the
official code does, and is shown only for comparison with the paper.

## Use

```python
import manet_zoo
model = manet_zoo.load("{record["file"]["filename"]}")  # or "hf-hub:ORG/REPO"
```

## Provenance

manet-zoo {prov["manet_zoo_version"]}, git {prov["git_commit"]}, seed {prov["seed"]},
{prov["world_size"]} process(es), split lists sha256 `{prov["split_sha256"]}`,
weights sha256 `{record["file"]["sha256"]}`.

## License

{record["license"]}

## Citation

{PAPER}
"""
    return "\n".join(front) + "\n" + body


def publish_run(
    run_dir: str | os.PathLike[str],
    repo_id: str,
    *,
    dry_run: bool = False,
    private: bool = False,
    token: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Upload a run's export to ``repo_id`` and return ``{"name", "record", "uploaded"}``,
    the record completed with the repo and the commit of the upload (validated against
    the manifest schema, before and after the upload). ``dry_run`` uploads nothing;
    ``progress=False`` hides huggingface_hub's upload bars.

    Raises:
        PublishError: the run is incomplete, or the upload failed (the message names
            the repo, the endpoint and the fix); ``published_record.json`` is then not
            written and nothing in ``run_dir`` changes.
    """
    from manet_zoo.weights import _REPO_ID, Weights

    run = Path(run_dir)
    if not _REPO_ID.match(repo_id):
        raise PublishError(f"--repo-id must look like ORG/NAME, got {repo_id!r}")
    exported = _read_json(run / RECORD_FILE)
    name, record = exported["name"], exported["record"]
    model = run / MODEL_FILE
    if not model.is_file():
        raise PublishError(f"{model} is missing: export the run first")
    if sha256_file(model) != record["file"]["sha256"]:
        raise PublishError(f"{model} does not match the sha256 of {RECORD_FILE}: re-export the run")
    record["file"]["repo_id"] = repo_id
    files = {record["file"]["filename"]: model, MODEL_FILE: model, CARD_FILE: run / CARD_FILE}
    # The manifest schema, checked before anything leaves the machine: the commit hash is
    # the one field the upload fills in.
    try:
        Weights.from_dict(name, {**record, "file": {**record["file"], "revision": "0" * 40}})
    except ManifestError as exc:
        raise PublishError(f"{run / RECORD_FILE}: {exc}. Re-export the run.") from exc
    if dry_run:
        return {"name": name, "record": record, "uploaded": False, "files": sorted(files)}
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    from manet_zoo import config

    endpoint = config.hf_endpoint()
    api = HfApi(endpoint=endpoint, token=token or config.hf_token())
    bars_were_off = are_progress_bars_disabled()
    if not progress:
        disable_progress_bars()
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.create_commit(
            repo_id,
            operations=[
                CommitOperationAdd(path_in_repo=k, path_or_fileobj=str(v)) for k, v in files.items()
            ],
            commit_message=f"{name}: manet-zoo {__version__}, recipe {record['recipe']}",
        )
    except Exception as exc:  # HTTP errors, the HTTP client's own, a README the Hub rejects
        raise _upload_error(exc, repo_id, endpoint) from exc
    finally:
        if not progress and not bars_were_off:
            enable_progress_bars()  # a process-wide switch: leave it as it was
    record["file"]["revision"] = info.oid
    Weights.from_dict(name, record)  # the manifest schema, before anyone pastes it
    published = run / "published_record.json"
    tmp = published.with_name(published.name + ".incomplete")  # never a half-written file
    tmp.write_text(json.dumps({name: record}, indent=2) + "\n")
    os.replace(tmp, published)
    return {"name": name, "record": record, "uploaded": True, "files": sorted(files)}


def _upload_error(exc: BaseException, repo_id: str, endpoint: str) -> PublishError:
    """A :class:`PublishError` that says what to do. huggingface_hub wraps some HTTP errors
    (an LFS upload's in a RuntimeError), so the status is looked for along the causes."""
    status, cause = None, exc
    while status is None and cause is not None:
        status = getattr(getattr(cause, "response", None), "status_code", None)
        cause = cause.__cause__
    what = f"uploading to {repo_id} at {endpoint} failed ({type(exc).__name__}: {exc})"
    if status in (401, 403):
        org = repo_id.split("/")[0]
        return PublishError(
            f"{what}\nHTTP {status}: no token, or one that cannot write there. Set HF_TOKEN "
            f"or run `hf auth login` with a write token for {org}."
        )
    return PublishError(
        f"{what}\nNothing was written to the run directory; fix the cause (network, "
        "HF_ENDPOINT, the repo id) and run the command again."
    )
