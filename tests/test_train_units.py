"""Recipes, CLI overrides, selection, sampling, seeds aggregation, init errors, and the
core/train import boundary: no model training here."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from manet_zoo.cli import build_parser, main
from manet_zoo.train.cli_args import NOT_OVERRIDABLE, RECIPE_OVERRIDES, recipe_from_args
from manet_zoo.train.recipes import RECIPES, Recipe, get_recipe
from manet_zoo.train.sampling import ShardSampler, balanced_weights, epoch_order
from manet_zoo.train.selection import splits_digest, stratified_split
from manet_zoo.weights import list_models

PAPER = {  # dataset table of docs: batch, lr, step, gamma, epochs, init, oversample
    "rafdb": (128, 0.01, 15, 0.1, 100, "manet_msceleb", False),
    "affectnet7": (256, 0.01, 5, 0.1, 20, "manet_msceleb", True),
    "affectnet8": (256, 0.01, 5, 0.1, 20, "manet_msceleb", True),
    "caers": (128, 0.1, 50, 0.5, 400, None, False),
    "sfew": (128, 0.001, 10, 0.1, 100, "manet_fer2013", False),
    "fedro": (256, 0.01, 5, 0.1, 20, "manet_msceleb", False),
}


def test_one_recipe_per_expression_record_with_the_papers_schedule():
    from manet_zoo.weights import get_weights

    records = {n for n in list_models() if get_weights(n).task == "expression"}
    assert records == {r.record for r in RECIPES.values() if r.record}
    for name, (batch, lr, step, gamma, epochs, init, over) in PAPER.items():
        r = get_recipe(name)
        assert (r.batch_size, r.lr, r.lr_step, r.lr_gamma, r.epochs, r.init, r.oversample) == (
            batch, lr, step, gamma, epochs, init, over,
        ), name  # fmt: skip
    for r in RECIPES.values():
        assert (r.momentum, r.weight_decay, r.fusion_weight, r.input_size) == (0.9, 1e-4, 0.6, 224)
        assert r.rrc_scale == (0.08, 1.0) and r.hflip
        if r.record:
            w = get_weights(r.record)
            assert w.recipe == r.name and w.num_classes == r.num_classes and w.init == r.init
    assert get_recipe("fedro").data_kinds == ("rafdb", "affectnet7", "fedro")


def test_every_recipe_field_is_overridable_from_the_command_line():
    fields = {f.name for f in dataclasses.fields(Recipe)}
    assert set(RECIPE_OVERRIDES) == fields - NOT_OVERRIDABLE
    args = build_parser().parse_args(
        ["train", "--recipe", "caers", "--data", "x", "--epochs", "3", "--batch-size", "16",
         "--lr", "0.5", "--input-size", "112", "--init", "none", "--no-hflip",
         "--rrc-scale", "0.5,1", "--train-data", "caers,rafdb", "--seed", "7"]
    )  # fmt: skip
    r = recipe_from_args(args)
    assert (r.epochs, r.batch_size, r.lr, r.input_size, r.init, r.hflip, r.seed) == (
        3, 16, 0.5, 112, None, False, 7,
    )  # fmt: skip
    assert r.rrc_scale == (0.5, 1.0) and r.train_data == ("caers", "rafdb")
    untouched = recipe_from_args(build_parser().parse_args(["train", "--recipe", "rafdb"]))
    assert untouched == get_recipe("rafdb")
    args = build_parser().parse_args(["train", "--recipe", "rafdb", "--init", "my.safetensors"])
    assert recipe_from_args(args).init == "my.safetensors"


def test_show_recipe(capsys):
    assert main(["train", "--show-recipe", "caers"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["init"] is None and shown["lr_gamma"] == 0.5 and shown["epochs"] == 400


def test_stratified_split_is_fixed_by_the_seed():
    targets = [0] * 30 + [1] * 10 + [2] * 1
    train, val = stratified_split(targets, 0.1, seed=3)
    assert sorted(train + val) == list(range(41))
    assert [targets[i] for i in val].count(0) == 3 and [targets[i] for i in val].count(1) == 1
    assert 40 in train  # a single-image class stays in training
    assert stratified_split(targets, 0.1, seed=3) == (train, val)
    assert stratified_split(targets, 0.1, seed=4) != (train, val)
    assert splits_digest({"a": ["x\t1"]}) != splits_digest({"a": ["x\t2"]})


def test_shards_of_n_processes_make_up_the_global_batches():
    order = epoch_order(10, epoch=2, seed=0)
    assert sorted(order) == list(range(10)) and order != epoch_order(10, epoch=3, seed=0)
    one = list(ShardSampler(order, seed=0, epoch=2))
    r0 = list(ShardSampler(order, seed=0, epoch=2, rank=0, world_size=2))
    r1 = list(ShardSampler(order, seed=0, epoch=2, rank=1, world_size=2))
    assert sorted(r0[:2] + r1[:2]) == sorted(one[:4])  # global batch 4 = 2 x 2, same seeds
    resumed = list(ShardSampler(order, seed=0, epoch=2, start=4))
    assert resumed == one[4:]
    w = balanced_weights([0, 0, 0, 1] * 1000)  # every 4th image is of the rare class
    draws = epoch_order(4000, epoch=0, seed=0, weights=w)
    share = sum(1 for i in draws if i % 4 == 3) / len(draws)
    assert 0.4 < share < 0.6  # the rare class is drawn about half the time


def test_seed_aggregation():
    from manet_zoo.train.engine import aggregate_seeds

    runs = [
        {"seed": s, "val_acc_selected": v, "test_acc_selected": t, "test_acc_last": t,
         "test_mean_class_acc_selected": t, "best_on_test": {"test_acc": t + 1}}
        for s, v, t in ((0, 80.0, 70.0), (1, 82.0, 74.0))
    ]  # fmt: skip
    agg = aggregate_seeds(runs)
    assert agg["test_acc_selected"]["mean"] == 72.0
    assert agg["test_acc_selected"]["std"] == pytest.approx(2.8284, abs=1e-4)
    assert agg["best_on_test"]["mean"] == 73.0 and agg["seeds"] == [0, 1]


def test_unpublished_init_is_a_clear_error_and_a_file_works(tmp_path):
    import torch

    from manet_zoo.checkpoint import save_weights
    from manet_zoo.errors import WeightsNotPublishedError
    from manet_zoo.models.manet import MANet
    from manet_zoo.train.engine import build_model

    with pytest.raises(WeightsNotPublishedError, match="--init also takes a local file"):
        build_model("manet_msceleb", 7, ("a",) * 7, 0.6)
    torch.manual_seed(0)
    source = MANet(3)
    path = save_weights(
        source.state_dict(), tmp_path / "w.safetensors", labels=("neutral", "happiness", "anger")
    )
    model, note = build_model(str(path), 3, ("anger", "neutral", "happiness"), 0.6)
    assert "reordered" in note
    assert torch.equal(model.head_local.weight[0], source.head_local.weight[2])
    model, note = build_model(str(path), 2, ("x", "y"), 0.6)
    assert model.num_classes == 2 and "replaced" in note


def test_import_manet_zoo_does_not_import_the_training_subpackage():
    code = "import sys, manet_zoo; print(any(m.startswith('manet_zoo.train') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_publish_needs_a_finished_run(tmp_path, capsys):
    assert main(["publish", str(tmp_path), "--repo-id", "org/x", "--dry-run"]) == 1
    assert "manifest_record.json is missing" in capsys.readouterr().err
